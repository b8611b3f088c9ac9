//! AWS connectors for prov, on the official AWS SDK (rustls with
//! aws-lc-rs, the standard credential chain):
//!
//! - [`IdentityCenterConnector`]: IAM Identity Center's identity store
//!   (users, groups, group memberships).
//! - [`IamConnector`]: IAM users, groups and managed policies, disabling
//!   by login profile and access keys.
//!
//! Every client is built with the SDK's retries off: the engine retries
//! what is retryable (throttling, 5xx), once, with its own backoff and
//! budget. Errors keep AWS's error code and request id
//! ([`prov_core::BackendDetail`]).

mod error;
mod iam;
mod identity_center;

pub use iam::{IamConfig, IamConnector};
pub use identity_center::{IdentityCenterConfig, IdentityCenterConnector};

/// The SDK configuration: the standard chain (environment, profile, SSO,
/// container or instance role) for credentials and region, `region` and
/// `endpoint_url` over it when given, retries off.
pub(crate) async fn sdk_config(
    region: Option<String>,
    endpoint_url: Option<String>,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(aws_config::retry::RetryConfig::disabled());
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r));
    }
    if let Some(e) = endpoint_url {
        loader = loader.endpoint_url(e);
    }
    loader.load().await
}
