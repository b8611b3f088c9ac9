//! `FaultyConnector`: a wrapper that injects errors, latency and rate limits
//! from a seed, for the engine's fault tests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prov_core::{
    Account, AccountId, BatchOutcome, Capabilities, ChangeSet, Connector, CreateAccount,
    Entitlement, EntitlementId, Error, ErrorKind, ListRequest, MembershipChange, Operation, Page,
    Result, UpdateAccount, async_trait,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// What to inject, as probabilities per call (0.0 to 1.0).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FaultConfig {
    /// Seed for the random choices: the same seed gives the same faults
    /// for the same sequence of calls.
    pub seed: u64,
    /// `Unavailable` or `Timeout` before the call reaches the target.
    pub retryable: f64,
    /// `Timeout` after the call took effect: the caller cannot know it worked.
    pub lost_reply: f64,
    /// A permanent `Unexpected` error before the call reaches the target.
    pub permanent: f64,
    /// `RateLimited` with [`retry_after`](Self::retry_after).
    pub rate_limited: f64,
    /// The wait a rate-limit answer asks for.
    pub retry_after: Duration,
    /// Added latency per call, chosen uniformly in this range.
    pub latency: (Duration, Duration),
    /// Only these operations get faults (all when empty).
    pub only: Vec<Operation>,
    /// Of the members of a grant or revoke that reaches the target, this
    /// share is answered `RateLimited` (with [`retry_after`](Self::retry_after))
    /// in the batch's outcome and not changed, as a service that throttles
    /// request by request does to some of a batch.
    pub member_rate_limited: f64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            seed: 0,
            retryable: 0.0,
            lost_reply: 0.0,
            permanent: 0.0,
            rate_limited: 0.0,
            retry_after: Duration::from_millis(100),
            latency: (Duration::ZERO, Duration::ZERO),
            only: Vec::new(),
            member_rate_limited: 0.0,
        }
    }
}

impl FaultConfig {
    /// No faults, with this seed.
    pub fn seeded(seed: u64) -> Self {
        FaultConfig {
            seed,
            ..Self::default()
        }
    }

    /// A storm of 429s: `share` of calls answer `RateLimited` (builder style).
    pub fn rate_limit_storm(mut self, share: f64, retry_after: Duration) -> Self {
        self.rate_limited = share;
        self.retry_after = retry_after;
        self
    }

    /// `share` of the members of each grant and revoke answer
    /// `RateLimited` in the batch outcome (builder style).
    pub fn member_rate_limits(mut self, share: f64, retry_after: Duration) -> Self {
        self.member_rate_limited = share;
        self.retry_after = retry_after;
        self
    }

    /// `share` of calls fail with a retryable error (builder style).
    pub fn retryable(mut self, share: f64) -> Self {
        self.retryable = share;
        self
    }

    /// `share` of calls take effect but answer `Timeout` (builder style).
    pub fn lost_replies(mut self, share: f64) -> Self {
        self.lost_reply = share;
        self
    }

    /// `share` of calls fail permanently (builder style).
    pub fn permanent(mut self, share: f64) -> Self {
        self.permanent = share;
        self
    }

    /// Latency per call in `[min, max]` (builder style).
    pub fn latency(mut self, min: Duration, max: Duration) -> Self {
        self.latency = (min, max.max(min));
        self
    }
}

/// Counts of what a `FaultyConnector` injected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultStats {
    /// Calls seen.
    pub calls: u64,
    /// Retryable errors injected before the call.
    pub retryable: u64,
    /// Timeouts injected after the call took effect.
    pub lost_replies: u64,
    /// Permanent errors injected.
    pub permanent: u64,
    /// Rate-limit answers injected.
    pub rate_limited: u64,
    /// Members of a batch answered `RateLimited`.
    pub members_rate_limited: u64,
}

enum Fault {
    None,
    Before(Error),
    LoseReply,
}

/// Wraps a connector and injects faults chosen by a seeded random source.
#[derive(Debug, Clone)]
pub struct FaultyConnector<C> {
    inner: C,
    config: FaultConfig,
    state: Arc<Mutex<(SmallRng, FaultStats)>>,
}

impl<C: Connector> FaultyConnector<C> {
    /// Wraps `inner`.
    pub fn new(inner: C, config: FaultConfig) -> Self {
        let rng = SmallRng::seed_from_u64(config.seed);
        FaultyConnector {
            inner,
            config,
            state: Arc::new(Mutex::new((rng, FaultStats::default()))),
        }
    }

    /// The members of `req` answered `RateLimited` this time (taken out
    /// of it), by [`FaultConfig::member_rate_limited`].
    fn throttle_members(
        &self,
        op: Operation,
        mut req: MembershipChange,
    ) -> (MembershipChange, Vec<prov_core::MemberFailure>) {
        let share = self.config.member_rate_limited;
        if share <= 0.0 || !(self.config.only.is_empty() || self.config.only.contains(&op)) {
            return (req, Vec::new());
        }
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (rng, stats) = &mut *state;
        let mut kept = Vec::new();
        let mut throttled = Vec::new();
        for a in req.accounts {
            if rng.random::<f64>() < share {
                stats.members_rate_limited += 1;
                throttled.push(prov_core::MemberFailure::new(
                    a,
                    Error::new(
                        ErrorKind::RateLimited,
                        "injected rate limit for this member",
                    )
                    .with_operation(op)
                    .with_retry_after(self.config.retry_after),
                ));
            } else {
                kept.push(a);
            }
        }
        req.accounts = kept;
        (req, throttled)
    }

    /// The wrapped connector.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// What was injected so far.
    pub fn stats(&self) -> FaultStats {
        self.state.lock().map(|s| s.1.clone()).unwrap_or_default()
    }

    async fn fault(&self, op: Operation) -> Fault {
        let (fault, delay) = {
            let mut guard = self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let (rng, stats) = &mut *guard;
            stats.calls += 1;
            let (lo, hi) = self.config.latency;
            let delay = if hi > lo {
                rng.random_range(lo..=hi)
            } else {
                lo
            };
            let applies = self.config.only.is_empty() || self.config.only.contains(&op);
            let roll: f64 = rng.random();
            let c = &self.config;
            let fault = if !applies {
                Fault::None
            } else if roll < c.rate_limited {
                stats.rate_limited += 1;
                Fault::Before(Error::rate_limited(Some(c.retry_after)).with_operation(op))
            } else if roll < c.rate_limited + c.retryable {
                stats.retryable += 1;
                let kind = if rng.random::<bool>() {
                    ErrorKind::Unavailable
                } else {
                    ErrorKind::Timeout
                };
                Fault::Before(Error::new(kind, "injected transient fault").with_operation(op))
            } else if roll < c.rate_limited + c.retryable + c.permanent {
                stats.permanent += 1;
                Fault::Before(
                    Error::new(ErrorKind::Unexpected, "injected permanent fault")
                        .with_operation(op),
                )
            } else if roll < c.rate_limited + c.retryable + c.permanent + c.lost_reply {
                stats.lost_replies += 1;
                Fault::LoseReply
            } else {
                Fault::None
            };
            (fault, delay)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        fault
    }
}

macro_rules! faulty {
    ($self:ident, $op:expr, $call:expr) => {{
        match $self.fault($op).await {
            Fault::Before(e) => Err(e),
            Fault::LoseReply => {
                let _ = $call.await;
                Err(Error::new(
                    ErrorKind::Timeout,
                    "injected timeout after the call took effect",
                )
                .with_operation($op))
            }
            Fault::None => $call.await,
        }
    }};
}

#[async_trait]
impl<C: Connector> Connector for FaultyConnector<C> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn check(&self) -> Result<()> {
        faulty!(self, Operation::Check, self.inner.check())
    }
    async fn list_accounts(&self, req: ListRequest) -> Result<Page<Account>> {
        faulty!(
            self,
            Operation::ListAccounts,
            self.inner.list_accounts(req.clone())
        )
    }
    async fn get_account(&self, id: &AccountId) -> Result<Account> {
        faulty!(self, Operation::GetAccount, self.inner.get_account(id))
    }
    async fn create_account(&self, req: CreateAccount) -> Result<Account> {
        faulty!(
            self,
            Operation::CreateAccount,
            self.inner.create_account(req.clone())
        )
    }
    async fn update_account(&self, req: UpdateAccount) -> Result<AccountId> {
        faulty!(
            self,
            Operation::UpdateAccount,
            self.inner.update_account(req.clone())
        )
    }
    async fn set_enabled(&self, id: &AccountId, enabled: bool) -> Result<()> {
        faulty!(
            self,
            Operation::SetEnabled,
            self.inner.set_enabled(id, enabled)
        )
    }
    async fn delete_account(&self, id: &AccountId) -> Result<()> {
        faulty!(
            self,
            Operation::DeleteAccount,
            self.inner.delete_account(id)
        )
    }
    async fn list_entitlements(&self, req: ListRequest) -> Result<Page<Entitlement>> {
        faulty!(
            self,
            Operation::ListEntitlements,
            self.inner.list_entitlements(req.clone())
        )
    }
    async fn list_members(
        &self,
        entitlement: &EntitlementId,
        req: ListRequest,
    ) -> Result<Page<AccountId>> {
        faulty!(
            self,
            Operation::ListMembers,
            self.inner.list_members(entitlement, req.clone())
        )
    }
    async fn grant(&self, req: MembershipChange) -> Result<BatchOutcome> {
        let (req, throttled) = self.throttle_members(Operation::Grant, req);
        let out = faulty!(self, Operation::Grant, self.inner.grant(req.clone()));
        out.map(|mut o| {
            o.failures.extend(throttled);
            o
        })
    }
    async fn revoke(&self, req: MembershipChange) -> Result<BatchOutcome> {
        let (req, throttled) = self.throttle_members(Operation::Revoke, req);
        let out = faulty!(self, Operation::Revoke, self.inner.revoke(req.clone()));
        out.map(|mut o| {
            o.failures.extend(throttled);
            o
        })
    }
    fn notices(&self) -> Vec<String> {
        self.inner.notices()
    }
    async fn create_entitlement(&self, entitlement: &Entitlement) -> Result<Entitlement> {
        faulty!(
            self,
            Operation::CreateEntitlement,
            self.inner.create_entitlement(entitlement)
        )
    }
    async fn delete_entitlement(&self, id: &EntitlementId) -> Result<()> {
        faulty!(
            self,
            Operation::DeleteEntitlement,
            self.inner.delete_entitlement(id)
        )
    }
    async fn changes_since(&self, token: Option<&str>) -> Result<ChangeSet> {
        faulty!(
            self,
            Operation::ChangesSince,
            self.inner.changes_since(token)
        )
    }
}
