//! LDAP result codes and client errors as `prov_core::Error`, keeping the
//! numeric code and the server's diagnostic message.

use ldap3::{LdapError, LdapResult};
use prov_core::{BackendDetail, Error, ErrorKind, Operation};

/// The name RFC 4511 gives a result code.
pub(crate) fn code_name(rc: u32) -> &'static str {
    match rc {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        16 => "noSuchAttribute",
        17 => "undefinedAttributeType",
        18 => "inappropriateMatching",
        19 => "constraintViolation",
        20 => "attributeOrValueExists",
        21 => "invalidAttributeSyntax",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        54 => "loopDetect",
        64 => "namingViolation",
        65 => "objectClassViolation",
        66 => "notAllowedOnNonLeaf",
        67 => "notAllowedOnRDN",
        68 => "entryAlreadyExists",
        69 => "objectClassModsProhibited",
        80 => "other",
        _ => "unknown",
    }
}

/// The error kind a result code means.
pub(crate) fn kind_of(rc: u32) -> ErrorKind {
    match rc {
        3 | 51 | 52 => ErrorKind::Unavailable,
        // unwillingToPerform: the directory refuses the change as made (AD:
        // a password its policy rejects, an account without one); sending
        // it again changes nothing.
        53 => ErrorKind::InvalidInput,
        11 => ErrorKind::RateLimited,
        16 | 17 | 18 | 19 | 20 | 21 | 34 | 64 | 65 | 67 | 69 => ErrorKind::InvalidInput,
        32 => ErrorKind::NotFound,
        68 => ErrorKind::AlreadyExists,
        8 | 13 | 50 => ErrorKind::PermissionDenied,
        48 | 49 => ErrorKind::Unauthenticated,
        7 | 12 => ErrorKind::Unsupported,
        66 => ErrorKind::Conflict,
        _ => ErrorKind::Unexpected,
    }
}

/// Active Directory's extended code, the Win32 error at the head of its
/// diagnostic message (`0000052D: Constraint violation - ...`).
pub(crate) fn ad_code(text: &str) -> Option<&str> {
    let (head, _) = text.split_once(':')?;
    (head.len() == 8 && head.bytes().all(|c| c.is_ascii_hexdigit())).then_some(head)
}

/// The attribute an AD extended code is about, where the message does not
/// name one.
fn ad_attribute(code: &str) -> Option<&'static str> {
    match code.to_ascii_uppercase().as_str() {
        // ERROR_PASSWORD_RESTRICTION: the password's length, history or complexity.
        "0000052D" | "00000056" => Some("unicodePwd"),
        _ => None,
    }
}

/// The attribute a diagnostic message names, for invalid-input errors:
/// OpenLDAP says `sn: value #0 invalid per syntax` or `object class
/// 'inetOrgPerson' requires attribute 'sn'`; AD leads with its extended
/// code, which is not an attribute.
fn attribute_in(text: &str) -> Option<String> {
    if let Some(code) = ad_code(text) {
        let rest = text.get(code.len() + 1..).unwrap_or("");
        if let Some(a) = rest.find("attribute '").and_then(|i| {
            rest.get(i + "attribute '".len()..)?
                .split('\'')
                .next()
                .map(str::to_owned)
        }) {
            return Some(a);
        }
        return ad_attribute(code).map(str::to_owned);
    }
    if let Some(i) = text.find("requires attribute '") {
        let rest = text.get(i + "requires attribute '".len()..)?;
        return rest.split('\'').next().map(str::to_owned);
    }
    if let Some(i) = text.find("attribute '") {
        let rest = text.get(i + "attribute '".len()..)?;
        return rest.split('\'').next().map(str::to_owned);
    }
    let (head, _) = text.split_once(": ")?;
    let head = head.trim();
    (!head.is_empty()
        && head
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b';'))
    .then(|| head.to_owned())
}

/// An error from a result, naming what was being done to what.
pub(crate) fn from_result(res: &LdapResult, op: Operation, what: &str) -> Error {
    let kind = kind_of(res.rc);
    let text = res.text.trim();
    let mut message = format!("{what}: {} ({})", code_name(res.rc), res.rc);
    if !text.is_empty() {
        message.push_str(": ");
        message.push_str(text);
    }
    let mut e = Error::new(kind, message)
        .with_operation(op)
        .with_detail(BackendDetail::new(res.rc.to_string(), text));
    if kind == ErrorKind::InvalidInput
        && let Some(attr) = attribute_in(text)
    {
        e = e.with_field(attr);
    }
    e
}

/// An error of the client or the connection.
pub(crate) fn from_ldap(err: LdapError, op: Operation, what: &str) -> Error {
    match err {
        LdapError::LdapResult { result } => from_result(&result, op, what),
        LdapError::Timeout { .. } => Error::new(
            ErrorKind::Timeout,
            format!("{what}: the directory did not answer in time"),
        )
        .with_operation(op),
        LdapError::FilterParsing => Error::new(
            ErrorKind::InvalidInput,
            format!("{what}: the search filter does not parse"),
        )
        .with_operation(op)
        .with_field("filter"),
        // A TLS failure is the configuration's (a CA not trusted, a name
        // that does not match, a server without TLS): trying again does not
        // help, so it is not an outage.
        LdapError::Io { source } if tls_failure(&source).is_some() => {
            let cause = tls_failure(&source).map(tls_cause).unwrap_or_default();
            Error::new(ErrorKind::Config, format!("{what}: TLS: {cause}"))
                .with_operation(op)
                .with_field("connection.ca_file")
                .with_source(source)
        }
        LdapError::Rustls { .. } | LdapError::DNSName { .. } => Error::new(
            ErrorKind::Config,
            format!("{what}: TLS could not be set up: {err}"),
        )
        .with_operation(op),
        LdapError::UrlParsing { .. } | LdapError::UnknownScheme(_) => Error::new(
            ErrorKind::Config,
            format!("{what}: the directory URL is not valid: {err}"),
        )
        .with_operation(op),
        other => Error::new(
            ErrorKind::Unavailable,
            format!("{what}: connection to the directory failed: {other}"),
        )
        .with_operation(op)
        .with_source(other),
    }
}

/// The TLS failure behind an I/O error, if it is one.
fn tls_failure(source: &std::io::Error) -> Option<&rustls::Error> {
    source.get_ref()?.downcast_ref::<rustls::Error>()
}

/// What a TLS failure means, and what to do about it.
fn tls_cause(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(why) => format!(
            "the directory's certificate is not trusted ({why:?}): name the CA that signed it in \
             connection.ca_file (ca_file in settings), and check that the URL's host is one the \
             certificate names"
        ),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => format!(
            "the directory does not speak TLS here ({e}): is the URL's port its ldaps:// port?"
        ),
        other => format!("the handshake failed: {other}"),
    }
}

/// Whether the error means the connection is gone (reconnect next time).
pub(crate) fn is_connection_loss(err: &LdapError) -> bool {
    matches!(
        err,
        LdapError::Io { .. }
            | LdapError::OpSend { .. }
            | LdapError::ResultRecv { .. }
            | LdapError::IdScrubSend { .. }
            | LdapError::MiscSend { .. }
            | LdapError::EndOfStream
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(rc: u32, text: &str) -> LdapResult {
        LdapResult {
            rc,
            matched: String::new(),
            text: text.to_owned(),
            refs: Vec::new(),
            ctrls: Vec::new(),
        }
    }

    #[test]
    fn codes_map_to_kinds_keeping_code_and_message() {
        for (rc, kind, retry) in [
            (51, ErrorKind::Unavailable, true),
            (52, ErrorKind::Unavailable, true),
            (53, ErrorKind::InvalidInput, false),
            (3, ErrorKind::Unavailable, true),
            (19, ErrorKind::InvalidInput, false),
            (21, ErrorKind::InvalidInput, false),
            (32, ErrorKind::NotFound, false),
            (68, ErrorKind::AlreadyExists, false),
            (49, ErrorKind::Unauthenticated, false),
            (50, ErrorKind::PermissionDenied, false),
        ] {
            let e = from_result(&result(rc, "said the server"), Operation::Grant, "x");
            assert_eq!(e.kind(), kind, "rc {rc}");
            assert_eq!(e.is_retryable(), retry, "rc {rc}");
            let d = e.detail().unwrap();
            assert_eq!(d.code.as_deref(), Some(rc.to_string().as_str()));
            assert_eq!(d.message.as_deref(), Some("said the server"));
        }
    }

    /// Issue 17 (g) and item 4: AD's extended code was taken for the
    /// field, and 53 was retried six times as an outage.
    #[test]
    fn ad_extended_codes_are_kept_and_name_the_attribute_not_the_code() {
        let e = from_result(
            &result(
                53,
                "0000052D: Constraint violation - check_password_restrictions: the password is too short. It should be equal or longer than 7 characters!",
            ),
            Operation::CreateAccount,
            "creating CN=a,CN=Users,DC=x",
        );
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(!e.is_retryable());
        assert_eq!(e.field(), Some("unicodePwd"));
        assert!(
            e.to_string()
                .contains("unwillingToPerform (53): 0000052D: Constraint violation"),
            "{e}"
        );
        let e = from_result(
            &result(
                19,
                "000020B5: AtrErr: DSID-031522C9, #1: 0: 000020B5: DSID-031522C9, problem 1005 (CONSTRAINT_ATT_TYPE), data 0, Att 90290 (userAccountControl)",
            ),
            Operation::SetEnabled,
            "x",
        );
        assert_ne!(e.field(), Some("000020B5"));
        let e = from_result(
            &result(
                16,
                "00002080: AtrErr: DSID-03151F8E, #1: attribute 'member' missing",
            ),
            Operation::Revoke,
            "x",
        );
        assert_eq!(e.field(), Some("member"));
    }

    #[test]
    fn invalid_input_names_the_attribute() {
        let e = from_result(
            &result(21, "telephoneNumber: value #0 invalid per syntax"),
            Operation::CreateAccount,
            "uid=a",
        );
        assert_eq!(e.field(), Some("telephoneNumber"));
        let e = from_result(
            &result(65, "object class 'inetOrgPerson' requires attribute 'sn'"),
            Operation::CreateAccount,
            "uid=a",
        );
        assert_eq!(e.field(), Some("sn"));
    }
}
