//! AWS SDK errors as prov errors: the kind that tells the engine what to
//! do, with AWS's error code, message and request id kept.

use std::time::Duration;

use aws_sdk_identitystore::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_identitystore::operation::RequestId;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use prov_core::{BackendDetail, Error, ErrorKind, Operation};

/// An SDK error from `op` (doing `what`) as a prov error.
pub(crate) fn from_sdk<E>(err: SdkError<E, HttpResponse>, op: Operation, what: &str) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let request_id = err.request_id().map(str::to_owned);
    let status = match &err {
        SdkError::ServiceError(s) => Some(Some(s.raw().status().as_u16())),
        _ => None,
    };
    let (kind, code, message) = match &err {
        SdkError::ServiceError(s) => {
            let e = s.err();
            let code = e.code().unwrap_or("").to_owned();
            let message = e.message().unwrap_or("").to_owned();
            (kind_of(&code, status.flatten()), code, message)
        }
        SdkError::TimeoutError(_) => (ErrorKind::Timeout, String::new(), err.to_string()),
        SdkError::DispatchFailure(d) if d.is_timeout() => {
            (ErrorKind::Timeout, String::new(), format!("{d:?}"))
        }
        SdkError::DispatchFailure(d) => (
            ErrorKind::Unavailable,
            String::new(),
            format!("the request could not be sent: {d:?}"),
        ),
        SdkError::ResponseError(_) => (
            ErrorKind::Unavailable,
            String::new(),
            "the reply could not be read".to_owned(),
        ),
        SdkError::ConstructionFailure(_) => (ErrorKind::Config, String::new(), format!("{err:?}")),
        _ => (ErrorKind::Unexpected, String::new(), err.to_string()),
    };
    let shown = match (code.is_empty(), message.is_empty(), status.flatten()) {
        (false, false, _) => format!("{what}: {code}: {message}"),
        (false, true, _) => format!("{what}: {code}"),
        (true, true, Some(s)) => format!("{what}: HTTP {s} with no AWS error in the body"),
        (true, _, Some(s)) => format!("{what}: HTTP {s}: {message}"),
        (true, _, None) => format!("{what}: {message}"),
    };
    let mut out = Error::new(kind, shown).with_operation(op);
    if kind == ErrorKind::RateLimited {
        // AWS sends no Retry-After; a second is the SDK's own first wait.
        out = out.with_retry_after(Duration::from_secs(1));
    }
    let mut detail = BackendDetail::new(code, message);
    detail.request_id = request_id;
    out.with_detail(detail)
}

/// The kind for an AWS error code (and HTTP status).
pub(crate) fn kind_of(code: &str, status: Option<u16>) -> ErrorKind {
    match code {
        "ThrottlingException" | "TooManyRequestsException" | "Throttling" => ErrorKind::RateLimited,
        "ConflictException" | "EntityAlreadyExists" | "EntityAlreadyExistsException" => {
            ErrorKind::AlreadyExists
        }
        "ResourceNotFoundException" | "NoSuchEntity" | "NoSuchEntityException" => {
            ErrorKind::NotFound
        }
        "ValidationException" | "InvalidInput" | "InvalidParameterValue" => ErrorKind::InvalidInput,
        "AccessDeniedException" | "AccessDenied" => ErrorKind::PermissionDenied,
        "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "ExpiredTokenException"
        | "SignatureDoesNotMatch" => ErrorKind::Unauthenticated,
        "ServiceQuotaExceededException" | "LimitExceeded" => ErrorKind::Conflict,
        "InternalServerException" | "ServiceUnavailable" | "ServiceFailure" => {
            ErrorKind::Unavailable
        }
        _ => match status {
            Some(429) => ErrorKind::RateLimited,
            Some(s) if s >= 500 => ErrorKind::Unavailable,
            Some(404) => ErrorKind::NotFound,
            Some(409) => ErrorKind::Conflict,
            Some(400) => ErrorKind::InvalidInput,
            Some(401) => ErrorKind::Unauthenticated,
            Some(403) => ErrorKind::PermissionDenied,
            _ => ErrorKind::Unexpected,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_what_the_engine_should_do() {
        assert_eq!(
            kind_of("ThrottlingException", Some(400)),
            ErrorKind::RateLimited
        );
        assert!(kind_of("ThrottlingException", None).is_retryable());
        assert_eq!(
            kind_of("ConflictException", Some(409)),
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            kind_of("ResourceNotFoundException", Some(404)),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind_of("ValidationException", Some(400)),
            ErrorKind::InvalidInput
        );
        assert!(!kind_of("ValidationException", Some(400)).is_retryable());
        assert_eq!(kind_of("", Some(503)), ErrorKind::Unavailable);
        assert!(kind_of("", Some(500)).is_retryable());
        assert_eq!(kind_of("", Some(429)), ErrorKind::RateLimited);
    }
}
