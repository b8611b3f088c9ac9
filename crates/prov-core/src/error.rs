//! The one error type at the connector boundary.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::TargetId;

/// What went wrong, as the engine needs to know it to decide what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The account or entitlement does not exist.
    NotFound,
    /// A create found the object already there.
    AlreadyExists,
    /// The object changed underneath (etag mismatch, concurrent modification).
    Conflict,
    /// The credentials are valid but not allowed to do this.
    PermissionDenied,
    /// The credentials were refused.
    Unauthenticated,
    /// The request was refused as malformed (a constraint, a syntax, a missing field).
    InvalidInput,
    /// The connector or the target cannot do this at all.
    Unsupported,
    /// The target asked us to slow down; see [`Error::retry_after`].
    RateLimited,
    /// The target is down, busy or unreachable for now.
    Unavailable,
    /// The operation did not finish in time; it may or may not have happened.
    Timeout,
    /// The connector is misconfigured.
    Config,
    /// Anything else; kept with the backend's detail for a human.
    Unexpected,
}

impl ErrorKind {
    /// Whether an operation that failed this way may succeed when repeated unchanged.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited | ErrorKind::Unavailable | ErrorKind::Timeout
        )
    }

    /// The kind's name in snake case.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::Conflict => "conflict",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Config => "config",
            ErrorKind::Unexpected => "unexpected",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The connector operation an error happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Operation {
    /// [`Connector::check`](crate::Connector::check)
    Check,
    /// [`Connector::list_accounts`](crate::Connector::list_accounts)
    ListAccounts,
    /// [`Connector::get_account`](crate::Connector::get_account)
    GetAccount,
    /// [`Connector::create_account`](crate::Connector::create_account)
    CreateAccount,
    /// [`Connector::update_account`](crate::Connector::update_account)
    UpdateAccount,
    /// [`Connector::set_enabled`](crate::Connector::set_enabled)
    SetEnabled,
    /// [`Connector::delete_account`](crate::Connector::delete_account)
    DeleteAccount,
    /// [`Connector::list_entitlements`](crate::Connector::list_entitlements)
    ListEntitlements,
    /// [`Connector::list_members`](crate::Connector::list_members)
    ListMembers,
    /// [`Connector::grant`](crate::Connector::grant)
    Grant,
    /// [`Connector::revoke`](crate::Connector::revoke)
    Revoke,
    /// [`Connector::changes_since`](crate::Connector::changes_since)
    ChangesSince,
    /// [`Connector::create_entitlement`](crate::Connector::create_entitlement)
    CreateEntitlement,
    /// [`Connector::delete_entitlement`](crate::Connector::delete_entitlement)
    DeleteEntitlement,
}

impl Operation {
    /// The operation's name in snake case.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Check => "check",
            Operation::ListAccounts => "list_accounts",
            Operation::GetAccount => "get_account",
            Operation::CreateAccount => "create_account",
            Operation::UpdateAccount => "update_account",
            Operation::SetEnabled => "set_enabled",
            Operation::DeleteAccount => "delete_account",
            Operation::ListEntitlements => "list_entitlements",
            Operation::ListMembers => "list_members",
            Operation::Grant => "grant",
            Operation::Revoke => "revoke",
            Operation::ChangesSince => "changes_since",
            Operation::CreateEntitlement => "create_entitlement",
            Operation::DeleteEntitlement => "delete_entitlement",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the backend itself said, kept verbatim for a human and for the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BackendDetail {
    /// The backend's code: an LDAP result code (`68`), an HTTP status with a
    /// SCIM `scimType` (`409 uniqueness`), a cloud error code (`EntityAlreadyExists`).
    pub code: Option<String>,
    /// The backend's own message (LDAP diagnostic message, SCIM `detail`).
    pub message: Option<String>,
    /// The backend's request id, for support tickets.
    pub request_id: Option<String>,
}

impl BackendDetail {
    /// A detail with a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        BackendDetail {
            code: Some(code.into()),
            message: Some(message.into()),
            request_id: None,
        }
    }
}

/// The error every connector returns.
///
/// Connector crates keep their own private error enums and convert at the
/// edge, choosing the [`ErrorKind`] that tells the engine what to do: retry
/// ([`is_retryable`](Error::is_retryable)), treat as done (`AlreadyExists`
/// on a create it made itself), or report.
///
/// One pointer wide: the detail lives in a box, so `Result<T>` stays small
/// on the hot path.
#[derive(Debug)]
pub struct Error(Box<Inner>);

#[derive(Debug)]
struct Inner {
    kind: ErrorKind,
    message: String,
    target: Option<TargetId>,
    operation: Option<Operation>,
    field: Option<String>,
    retry_after: Option<Duration>,
    detail: Option<BackendDetail>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// An error of `kind` with a message for a human.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error(Box::new(Inner {
            kind,
            message: message.into(),
            target: None,
            operation: None,
            field: None,
            retry_after: None,
            detail: None,
            source: None,
        }))
    }

    /// `NotFound` with a message.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// `AlreadyExists` with a message.
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::AlreadyExists, message)
    }

    /// `InvalidInput` naming the offending field.
    pub fn invalid_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message).with_field(field)
    }

    /// `Unsupported` for an operation this connector does not offer.
    pub fn unsupported(operation: Operation) -> Self {
        Self::new(
            ErrorKind::Unsupported,
            format!("{operation} is not supported"),
        )
        .with_operation(operation)
    }

    /// `RateLimited`, optionally with the wait the target asked for.
    pub fn rate_limited(retry_after: Option<Duration>) -> Self {
        let mut e = Self::new(ErrorKind::RateLimited, "rate limited by the target");
        e.0.retry_after = retry_after;
        e
    }

    /// Names the target (connectors usually leave this to the engine).
    pub fn with_target(mut self, target: TargetId) -> Self {
        self.0.target = Some(target);
        self
    }

    /// Names the operation.
    pub fn with_operation(mut self, operation: Operation) -> Self {
        self.0.operation = Some(operation);
        self
    }

    /// Names the attribute or field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.0.field = Some(field.into());
        self
    }

    /// Records how long the target asked us to wait.
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.0.retry_after = Some(wait);
        self
    }

    /// Keeps what the backend said.
    pub fn with_detail(mut self, detail: BackendDetail) -> Self {
        self.0.detail = Some(detail);
        self
    }

    /// Keeps the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.0.source = Some(Box::new(source));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The message for a human.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// Whether repeating the same operation unchanged may succeed.
    pub fn is_retryable(&self) -> bool {
        self.0.kind.is_retryable()
    }

    /// How long the target asked us to wait before retrying (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        self.0.retry_after
    }

    /// The target, when known.
    pub fn target(&self) -> Option<&TargetId> {
        self.0.target.as_ref()
    }

    /// The operation, when known.
    pub fn operation(&self) -> Option<Operation> {
        self.0.operation
    }

    /// The attribute or field at fault, when known.
    pub fn field(&self) -> Option<&str> {
        self.0.field.as_deref()
    }

    /// What the backend said, when it said anything.
    pub fn detail(&self) -> Option<&BackendDetail> {
        self.0.detail.as_ref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.0;
        if let Some(target) = &e.target {
            write!(f, "{target}: ")?;
        }
        if let Some(op) = e.operation {
            write!(f, "{op}: ")?;
        }
        write!(f, "{}: {}", e.kind, e.message)?;
        if let Some(field) = &e.field {
            write!(f, " (field `{field}`)")?;
        }
        if let Some(d) = &e.detail {
            match (&d.code, &d.message) {
                (Some(c), Some(m)) => write!(f, " [backend {c}: {m}]")?,
                (Some(c), None) => write!(f, " [backend {c}]")?,
                (None, Some(m)) => write!(f, " [backend: {m}]")?,
                (None, None) => {}
            }
            if let Some(r) = &d.request_id {
                write!(f, " [request {r}]")?;
            }
        }
        if let Some(wait) = e.retry_after {
            write!(f, " (retry after {} ms)", wait.as_millis())?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_one_pointer_wide() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn only_transient_kinds_are_retryable() {
        assert!(Error::rate_limited(None).is_retryable());
        assert!(Error::new(ErrorKind::Unavailable, "busy").is_retryable());
        assert!(!Error::not_found("gone").is_retryable());
        assert!(!Error::invalid_input("mail", "bad").is_retryable());
    }

    #[test]
    fn display_names_target_operation_field_and_backend() {
        let e = Error::invalid_input("mail", "invalid syntax")
            .with_target(TargetId::new("ldap"))
            .with_operation(Operation::CreateAccount)
            .with_detail(BackendDetail::new(
                "21",
                "mail: value #0 invalid per syntax",
            ));
        assert_eq!(
            e.to_string(),
            "ldap: create_account: invalid_input: invalid syntax (field `mail`) \
             [backend 21: mail: value #0 invalid per syntax]"
        );
    }
}
