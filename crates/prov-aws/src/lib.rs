//! AWS connectors for prov, on the official AWS SDK (rustls with
//! aws-lc-rs, the standard credential chain):
//!
//! - [`IdentityCenterConnector`]: IAM Identity Center's identity store
//!   (users, groups, group memberships) and, with an instance ARN,
//!   permission-set account assignments (`PermissionSet@AccountId`),
//!   polled to the end, at most 10 outstanding.
//! - [`IamConnector`]: IAM users, groups and managed policies, disabling
//!   by login profile and access keys.
//!
//! Every client is built with the SDK's retries off: the engine retries
//! what is retryable (throttling, 5xx), once, with its own backoff and
//! budget. Errors keep AWS's error code and request id
//! ([`prov_core::BackendDetail`]).

mod assignments;
mod error;
mod iam;
mod identity_center;
mod pace;
mod settings;

pub use iam::{IamConfig, IamConnector};
pub use identity_center::{IdentityCenterConfig, IdentityCenterConnector};
pub use settings::{IamSettings, IdentityCenterSettings};

/// A grant or revoke one account at a time (neither service takes a
/// batch), `in_flight` at once: the accounts whose call failed, each with
/// its error.
pub(crate) async fn per_account<F, Fut>(
    accounts: Vec<prov_core::AccountId>,
    in_flight: usize,
    call: F,
) -> prov_core::BatchOutcome
where
    F: Fn(prov_core::AccountId) -> Fut,
    Fut: std::future::Future<Output = (prov_core::AccountId, prov_core::Result<()>)>,
{
    use futures_util::StreamExt;
    let results: Vec<_> = futures_util::stream::iter(accounts)
        .map(call)
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let mut out = prov_core::BatchOutcome::ok();
    for (id, r) in results {
        if let Err(e) = r {
            out.failures.push(prov_core::MemberFailure::new(id, e));
        }
    }
    out
}

/// Who holds what, by account id: every entitlement's members, inverted.
pub(crate) type Held =
    std::collections::HashMap<String, std::collections::BTreeSet<prov_core::EntitlementId>>;

/// [`Held`] for every entitlement `conn` lists, `in_flight` member
/// listings at once: neither service puts a user's groups on the user, and
/// one listing per entitlement (a page per 100 members) costs far fewer
/// requests than one per user.
pub(crate) async fn held_by_all<C: prov_core::Connector + ?Sized>(
    conn: &C,
    in_flight: usize,
) -> prov_core::Result<Held> {
    use futures_util::StreamExt;
    use prov_core::ConnectorExt;
    let all = conn.list_all_entitlements().await?;
    let listed: Vec<_> = futures_util::stream::iter(all)
        .map(|e| async move {
            let members = conn.list_all_members(&e.id).await;
            (e.id, members)
        })
        .buffer_unordered(in_flight.max(1))
        .collect()
        .await;
    let mut held = Held::new();
    for (e, members) in listed {
        for m in members? {
            held.entry(m.as_str().to_owned())
                .or_default()
                .insert(e.clone());
        }
    }
    Ok(held)
}

/// The snapshot a listing started with, for its later pages.
#[derive(Debug, Default)]
pub(crate) struct Snapshot(std::sync::Mutex<Option<std::sync::Arc<Held>>>);

impl Snapshot {
    /// A fresh one for a listing's first page (`first`), else the one kept
    /// (or a fresh one when none is).
    pub(crate) async fn get<C: prov_core::Connector + ?Sized>(
        &self,
        conn: &C,
        in_flight: usize,
        first: bool,
    ) -> prov_core::Result<std::sync::Arc<Held>> {
        if !first && let Some(h) = self.0.lock().ok().and_then(|g| g.clone()) {
            return Ok(h);
        }
        let h = std::sync::Arc::new(held_by_all(conn, in_flight).await?);
        if let Ok(mut g) = self.0.lock() {
            *g = Some(std::sync::Arc::clone(&h));
        }
        Ok(h)
    }
}

/// Puts on each account what `held` says it holds.
pub(crate) fn with_held(accounts: &mut [prov_core::Account], held: &Held) {
    for a in accounts {
        if let Some(h) = held.get(a.id.as_str()) {
            a.entitlements = h.clone();
        }
    }
}

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

/// The standard credential chain, resolved on first use: a connector can
/// be made without an async context (the `prov` command opens its
/// targets that way), and a chain that cannot find credentials fails the
/// first call, naming the cause, not the opening.
#[derive(Debug, Default)]
struct StandardChain(
    tokio::sync::OnceCell<aws_config::default_provider::credentials::DefaultCredentialsChain>,
);

impl aws_credential_types::provider::ProvideCredentials for StandardChain {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            let chain = self
                .0
                .get_or_init(|| async {
                    aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                        .build()
                        .await
                })
                .await;
            chain.provide_credentials().await
        })
    }
}

/// The SDK configuration made without waiting: `region`, the standard
/// credential chain (resolved on first use), retries off, AWS's endpoint
/// unless `endpoint_url` says otherwise.
pub(crate) fn sdk_config_now(region: &str, endpoint_url: Option<&str>) -> aws_config::SdkConfig {
    let mut b =
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_owned()))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(
                    StandardChain::default(),
                ),
            )
            .retry_config(aws_config::retry::RetryConfig::disabled());
    if let Some(e) = endpoint_url {
        b = b.endpoint_url(e);
    }
    b.build()
}
