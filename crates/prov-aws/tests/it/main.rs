//! prov-aws integration tests: against moto in server mode (PEERS.md),
//! started here on a free loopback port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test reports failure by panicking

mod fake;
mod iam;
mod identity_center;

pub(crate) use prov_testkit::moto::Moto;

/// A moto server of this test's own.
pub(crate) fn moto() -> Moto {
    Moto::start().unwrap_or_else(|e| panic!("{e}"))
}

/// The SDK configuration for `moto`: fixed test credentials (moto takes
/// any), us-east-1, retries off.
pub(crate) async fn sdk(moto: &Moto) -> aws_config::SdkConfig {
    sdk_at(&moto.url).await
}

/// The SDK configuration for an endpoint at `url` (moto, or the fake).
pub(crate) async fn sdk_at(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws_credential_types::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "prov-tests",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await
}
