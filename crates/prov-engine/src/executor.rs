//! The executor: applies a plan through the connectors, batched, bounded,
//! rate-limited and retried, with an outcome for every operation.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use prov_core::{
    AccountId, Capabilities, Clock, Connector, CreateAccount, EntitlementId, ErrorKind, IdentityId,
    ListRequest, MembershipChange, RateLimit, SystemClock, TargetId, UpdateAccount,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::audit::AuditEvent;
use crate::plan::{AccountRef, OpKind, Plan, PlannedOp, SafetyBlock};
use crate::planner::{Link, LinkOrigin};
use crate::store::{OutboxEntry, Store};

/// Retries: only retryable errors, exponential backoff with full jitter,
/// the target's `Retry-After` honoured, and a budget so that a target that
/// keeps failing is not hammered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts per call, the first included (default 6).
    pub max_attempts: u32,
    /// The first backoff's ceiling (default 100 ms); it doubles per attempt.
    pub base_delay: Duration,
    /// The longest backoff (default 30 s); a longer `Retry-After` is still honoured.
    pub max_delay: Duration,
    /// Retries earned per first attempt (default 0.2: at most one retry in
    /// five calls once the reserve is spent).
    pub budget_ratio: f64,
    /// Retries allowed before any are earned (default 20).
    pub budget_reserve: u32,
    /// Seed for the jitter (tests fix it; by default it comes from the clock).
    pub seed: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id());
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            budget_ratio: 0.2,
            budget_reserve: 20,
            seed,
        }
    }
}

/// Limits for one target, overriding what its capabilities publish.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TargetLimits {
    /// Calls in flight at once (default: the capabilities' `max_concurrency`).
    pub concurrency: Option<usize>,
    /// Requests per period (default: the capabilities' `rate_limit`).
    pub rate_limit: Option<RateLimit>,
}

/// How to apply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ApplyOptions {
    /// Retries.
    pub retry: RetryPolicy,
    /// Per-target limits.
    pub targets: BTreeMap<TargetId, TargetLimits>,
    /// Apply even when the deletion safeguard blocked the plan.
    pub allow_destructive: bool,
}

/// Why a plan was not applied at all.
#[derive(Debug)]
#[non_exhaustive]
pub enum ApplyError {
    /// The deletion safeguard blocked it; nothing was done.
    Blocked(Vec<SafetyBlock>),
    /// The plan names a target the executor has no connector for.
    UnknownTarget(TargetId),
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::Blocked(blocks) => {
                write!(
                    f,
                    "the plan is blocked by the deletion safeguard, nothing was applied:"
                )?;
                for b in blocks {
                    write!(f, "\n  {b}")?;
                }
                Ok(())
            }
            ApplyError::UnknownTarget(t) => {
                write!(f, "the plan names target `{t}`, which has no connector")
            }
        }
    }
}

impl std::error::Error for ApplyError {}

/// How one operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
#[non_exhaustive]
pub enum OpStatus {
    /// Done (including "already so": a repeat of a grant is done).
    Done,
    /// Failed; the error's kind and the message with the backend's detail.
    Failed {
        /// The error kind.
        kind: ErrorKind,
        /// The full message.
        message: String,
    },
    /// Not tried, because an operation it depends on failed.
    Skipped {
        /// Which.
        reason: String,
    },
}

/// The outcome of one operation, naming everything a person needs to act on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OpOutcome {
    /// The operation's id in the plan.
    pub op: String,
    /// What it was (`create`, `grant`, ...).
    pub name: String,
    /// The target.
    pub target: TargetId,
    /// The identity.
    pub identity: Option<IdentityId>,
    /// The account, when known (a failed create has none).
    pub account: Option<AccountId>,
    /// How it ended.
    #[serde(flatten)]
    pub status: OpStatus,
    /// Calls made, retries included.
    pub attempts: u32,
}

impl fmt::Display for OpOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.op, self.name, self.target)?;
        if let Some(a) = &self.account {
            write!(f, " {a}")?;
        }
        if let Some(i) = &self.identity {
            write!(f, " [{i}]")?;
        }
        match &self.status {
            OpStatus::Done => write!(f, ": done"),
            OpStatus::Failed { kind, message } => write!(
                f,
                ": FAILED ({kind}) after {} attempts: {message}",
                self.attempts
            ),
            OpStatus::Skipped { reason } => write!(f, ": skipped: {reason}"),
        }
    }
}

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ApplyReport {
    /// One outcome per operation, in plan order.
    pub outcomes: Vec<OpOutcome>,
    /// Calls made to targets, retries included.
    pub calls: u64,
    /// Retries among them.
    pub retries: u64,
    /// Set when the outcomes could not be written to the audit log.
    pub audit_error: Option<String>,
}

impl ApplyReport {
    /// Operations done.
    pub fn done(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.status == OpStatus::Done)
            .count()
    }

    /// Operations failed or skipped.
    pub fn failures(&self) -> impl Iterator<Item = &OpOutcome> {
        self.outcomes.iter().filter(|o| o.status != OpStatus::Done)
    }

    /// Whether every operation is done.
    pub fn is_success(&self) -> bool {
        self.failures().next().is_none()
    }
}

struct Runtime {
    conn: Arc<dyn Connector>,
    caps: Capabilities,
    limiter: Option<DefaultDirectRateLimiter>,
    concurrency: usize,
}

struct Budget {
    tokens: f64,
    ratio: f64,
}

/// Applies plans through connectors.
pub struct Executor {
    targets: BTreeMap<TargetId, Runtime>,
    clock: Arc<dyn Clock>,
    actor: String,
    options: ApplyOptions,
    rng: Mutex<SmallRng>,
    budget: Mutex<Budget>,
    counters: Mutex<(u64, u64)>,
    progress: Option<Progress>,
    finished: std::sync::atomic::AtomicUsize,
    total: std::sync::atomic::AtomicUsize,
}

/// Called as operations finish, with (finished, total): for progress bars.
pub type Progress = Arc<dyn Fn(usize, usize) + Send + Sync>;

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("targets", &self.targets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn limiter(limit: RateLimit) -> Option<DefaultDirectRateLimiter> {
    let requests = NonZeroU32::new(limit.requests)?;
    let per_request = limit.period / requests.get();
    let quota = Quota::with_period(per_request)?
        .allow_burst(NonZeroU32::new(limit.burst).unwrap_or(requests));
    Some(RateLimiter::direct(quota))
}

/// A call's result with its attempt count.
type Attempted<T> = (prov_core::Result<T>, u32);

/// A create's login and the id it got (`None` when it failed).
type Made = Option<(String, Option<AccountId>)>;

impl Executor {
    /// An executor over these connectors.
    pub fn new(connectors: BTreeMap<TargetId, Arc<dyn Connector>>, options: ApplyOptions) -> Self {
        let targets = connectors
            .into_iter()
            .map(|(t, conn)| {
                let caps = conn.capabilities();
                let limits = options.targets.get(&t).cloned().unwrap_or_default();
                let rate = limits.rate_limit.or(caps.rate_limit);
                let concurrency = limits.concurrency.unwrap_or(caps.max_concurrency).max(1);
                let rt = Runtime {
                    conn,
                    limiter: rate.and_then(limiter),
                    concurrency,
                    caps,
                };
                (t, rt)
            })
            .collect();
        let rng = Mutex::new(SmallRng::seed_from_u64(options.retry.seed));
        let budget = Mutex::new(Budget {
            tokens: f64::from(options.retry.budget_reserve),
            ratio: options.retry.budget_ratio,
        });
        Executor {
            targets,
            clock: Arc::new(SystemClock),
            actor: "prov-engine".to_owned(),
            options,
            rng,
            budget,
            counters: Mutex::new((0, 0)),
            progress: None,
            finished: std::sync::atomic::AtomicUsize::new(0),
            total: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Uses `clock` for audit timestamps (builder style).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Names who acts, in the audit log (builder style; default `prov-engine`).
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    /// Reports progress as operations finish (builder style).
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Applies a plan. Returns an error (having done nothing) when the plan
    /// is blocked or names an unknown target; otherwise an outcome for every
    /// operation: one failing never stops the unrelated ones.
    pub async fn apply(&self, plan: &Plan, store: &dyn Store) -> Result<ApplyReport, ApplyError> {
        if !plan.blocked.is_empty() && !self.options.allow_destructive {
            return Err(ApplyError::Blocked(plan.blocked.clone()));
        }
        self.total
            .store(plan.ops.len(), std::sync::atomic::Ordering::Relaxed);
        self.finished.store(0, std::sync::atomic::Ordering::Relaxed);
        let mut by_target: BTreeMap<&TargetId, Vec<&PlannedOp>> = BTreeMap::new();
        for op in &plan.ops {
            if !self.targets.contains_key(&op.target) {
                return Err(ApplyError::UnknownTarget(op.target.clone()));
            }
            by_target.entry(&op.target).or_default().push(op);
        }
        let before = self.counters();
        let runs = by_target.into_iter().filter_map(|(t, ops)| {
            let rt = self.targets.get(t)?;
            Some(self.apply_target(rt, ops, store))
        });
        let mut outcomes: HashMap<String, OpOutcome> = HashMap::new();
        for batch in futures_util::future::join_all(runs).await {
            outcomes.extend(batch.into_iter().map(|o| (o.op.clone(), o)));
        }
        let after = self.counters();
        let now = self.clock.now();
        let mut ordered = Vec::with_capacity(plan.ops.len());
        let mut events = Vec::with_capacity(plan.ops.len());
        for op in &plan.ops {
            if let Some(o) = outcomes.remove(&op.id) {
                events.push(self.audit_event(op, &o, now));
                ordered.push(o);
            }
        }
        let audit_error = store
            .append_audit(events)
            .await
            .err()
            .map(|e| e.to_string());
        Ok(ApplyReport {
            outcomes: ordered,
            calls: after.0 - before.0,
            retries: after.1 - before.1,
            audit_error,
        })
    }

    fn audit_event(
        &self,
        op: &PlannedOp,
        o: &OpOutcome,
        time: chrono::DateTime<chrono::Utc>,
    ) -> AuditEvent {
        let operation = match &op.kind {
            OpKind::Grant { entitlement, .. } | OpKind::Revoke { entitlement, .. } => {
                format!("{} {entitlement}", op.kind.name())
            }
            OpKind::Update { delta, .. } => {
                let mut names: Vec<&str> = delta.set.keys().map(String::as_str).collect();
                names.extend(delta.remove.iter().map(String::as_str));
                if let Some(login) = &delta.login {
                    return self.finish_event(op, o, time, format!("rename to {login}"));
                }
                format!("update {}", names.join(","))
            }
            kind => kind.name().to_owned(),
        };
        self.finish_event(op, o, time, operation)
    }

    fn finish_event(
        &self,
        op: &PlannedOp,
        o: &OpOutcome,
        time: chrono::DateTime<chrono::Utc>,
        operation: String,
    ) -> AuditEvent {
        let outcome = match &o.status {
            OpStatus::Done => "done".to_owned(),
            OpStatus::Failed { message, .. } => format!("failed: {message}"),
            OpStatus::Skipped { reason } => format!("skipped: {reason}"),
        };
        let mut event = AuditEvent::new(
            time,
            self.actor.clone(),
            operation,
            op.reasons.join("; "),
            outcome,
        );
        event.identity.clone_from(&op.identity);
        event.target = Some(op.target.clone());
        event.account.clone_from(&o.account);
        event
    }

    fn counters(&self) -> (u64, u64) {
        *self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn apply_target(
        &self,
        rt: &Runtime,
        ops: Vec<&PlannedOp>,
        store: &dyn Store,
    ) -> Vec<OpOutcome> {
        let mut out = Vec::with_capacity(ops.len());
        let mut created: HashMap<String, Option<AccountId>> = HashMap::new();
        for phase in 0..=5u8 {
            let in_phase: Vec<&PlannedOp> = ops
                .iter()
                .copied()
                .filter(|o| o.kind.phase() == phase)
                .collect();
            if in_phase.is_empty() {
                continue;
            }
            match phase {
                0 => {
                    let results: Vec<(OpOutcome, Made)> = stream::iter(in_phase)
                        .map(|op| async move {
                            if let Err(status) = self.begin(store, &[op]).await {
                                let made = match &op.kind {
                                    OpKind::Create { login, .. } => Some((login.clone(), None)),
                                    _ => None,
                                };
                                return (outcome(op, None, status, 0), made);
                            }
                            let r = self.first_phase(rt, op, store).await;
                            self.finish(store, &[op]).await;
                            r
                        })
                        .buffer_unordered(rt.concurrency)
                        .collect()
                        .await;
                    for (outcome, made) in results {
                        if let Some((login, id)) = made {
                            created.insert(login, id);
                        }
                        out.push(outcome);
                    }
                }
                2 | 3 => out.extend(self.memberships(rt, in_phase, &created, store).await),
                _ => {
                    // Operations on one account run in order; accounts run side by side.
                    let mut groups: BTreeMap<String, Vec<&PlannedOp>> = BTreeMap::new();
                    for op in in_phase {
                        groups.entry(account_key(&op.kind)).or_default().push(op);
                    }
                    let created = &created;
                    let results: Vec<Vec<OpOutcome>> = stream::iter(groups.into_values())
                        .map(|group| async move {
                            let mut v = Vec::new();
                            for op in group {
                                if let Err(status) = self.begin(store, &[op]).await {
                                    v.push(outcome(op, None, status, 0));
                                    continue;
                                }
                                v.push(self.single(rt, op, created, store).await);
                                self.finish(store, &[op]).await;
                            }
                            v
                        })
                        .buffer_unordered(rt.concurrency)
                        .collect()
                        .await;
                    out.extend(results.into_iter().flatten());
                }
            }
        }
        out
    }

    /// Creates and links. Returns the login and the new id for creates.
    async fn first_phase(
        &self,
        rt: &Runtime,
        op: &PlannedOp,
        store: &dyn Store,
    ) -> (OpOutcome, Made) {
        match &op.kind {
            OpKind::Link { account } => {
                let status = match &op.identity {
                    Some(who) => match store
                        .put_link(&Link::new(
                            op.target.clone(),
                            account.clone(),
                            who.clone(),
                            LinkOrigin::Linked,
                        ))
                        .await
                    {
                        Ok(()) => OpStatus::Done,
                        Err(e) => failed(&e, "the link could not be stored"),
                    },
                    None => OpStatus::Failed {
                        kind: ErrorKind::InvalidInput,
                        message: "a link needs an identity".to_owned(),
                    },
                };
                (outcome(op, Some(account.clone()), status, 0), None)
            }
            OpKind::Create {
                login,
                attributes,
                enabled,
            } => {
                let mut req = CreateAccount::new(login.clone(), attributes.clone());
                req.enabled = *enabled;
                let (res, attempts) = self.call(rt, || rt.conn.create_account(req.clone())).await;
                let res = match res {
                    // A retried create that finds the login taken most likely
                    // made it on an attempt whose reply was lost; a create that
                    // timed out may have happened. Either way, look before failing.
                    Err(e)
                        if (e.kind() == ErrorKind::AlreadyExists && attempts > 1)
                            || e.kind() == ErrorKind::Timeout =>
                    {
                        self.find_by_login(rt, login).await.map_err(|_| e)
                    }
                    other => other.map(|a| a.id),
                };
                match res {
                    Ok(id) => {
                        let status = match &op.identity {
                            Some(who) => match store
                                .put_link(&Link::new(
                                    op.target.clone(),
                                    id.clone(),
                                    who.clone(),
                                    LinkOrigin::Created,
                                ))
                                .await
                            {
                                Ok(()) => OpStatus::Done,
                                Err(e) => failed(
                                    &e,
                                    "the account was created but its link could not be stored",
                                ),
                            },
                            None => OpStatus::Done,
                        };
                        (
                            outcome(op, Some(id.clone()), status, attempts),
                            Some((login.clone(), Some(id))),
                        )
                    }
                    Err(e) => (
                        outcome(op, None, failed(&e, ""), attempts),
                        Some((login.clone(), None)),
                    ),
                }
            }
            _ => (
                outcome(
                    op,
                    None,
                    OpStatus::Skipped {
                        reason: "not a first-phase operation".to_owned(),
                    },
                    0,
                ),
                None,
            ),
        }
    }

    async fn find_by_login(&self, rt: &Runtime, login: &str) -> prov_core::Result<AccountId> {
        let mut req = ListRequest::first();
        if rt.caps.filter_attributes.iter().any(|a| a == "login") {
            req = req.with_filter("login", login);
        }
        loop {
            let (page, _) = self.call(rt, || rt.conn.list_accounts(req.clone())).await;
            let page = page?;
            if let Some(a) = page.items.into_iter().find(|a| a.login == login) {
                return Ok(a.id);
            }
            match page.next {
                Some(c) => req = ListRequest::after(c),
                None => {
                    return Err(prov_core::Error::not_found(format!(
                        "no account with login {login}"
                    )));
                }
            }
        }
    }

    async fn single(
        &self,
        rt: &Runtime,
        op: &PlannedOp,
        created: &HashMap<String, Option<AccountId>>,
        store: &dyn Store,
    ) -> OpOutcome {
        let resolve = |a: &AccountRef| resolve(a, created);
        match &op.kind {
            OpKind::Update { account, delta } => match resolve(account) {
                Err(reason) => outcome(op, None, OpStatus::Skipped { reason }, 0),
                Ok(id) => {
                    let req = UpdateAccount::new(id.clone(), delta.clone());
                    let (res, attempts) =
                        self.call(rt, || rt.conn.update_account(req.clone())).await;
                    match res {
                        Ok(new_id) if new_id != id => {
                            // A rename moved the account (an LDAP DN): move its link too.
                            let moved = match store.links().await {
                                Ok(links) => match links
                                    .into_iter()
                                    .find(|l| l.target == op.target && l.account == id)
                                {
                                    Some(mut l) => {
                                        l.account = new_id.clone();
                                        match store.put_link(&l).await {
                                            Ok(()) => store.remove_link(&op.target, &id).await,
                                            Err(e) => Err(e),
                                        }
                                    }
                                    None => Ok(()),
                                },
                                Err(e) => Err(e),
                            };
                            let status = match moved {
                                Ok(()) => OpStatus::Done,
                                Err(e) => failed(&e, "renamed, but the link could not be moved"),
                            };
                            outcome(op, Some(new_id), status, attempts)
                        }
                        Ok(_) => outcome(op, Some(id), OpStatus::Done, attempts),
                        Err(e) => outcome(op, Some(id), failed(&e, ""), attempts),
                    }
                }
            },
            OpKind::SetEnabled { account, enabled } => match resolve(account) {
                Err(reason) => outcome(op, None, OpStatus::Skipped { reason }, 0),
                Ok(id) => {
                    let (res, attempts) =
                        self.call(rt, || rt.conn.set_enabled(&id, *enabled)).await;
                    outcome(op, Some(id.clone()), status_of(res.map(|_| ())), attempts)
                }
            },
            OpKind::Delete { account } => {
                let (res, attempts) = self.call(rt, || rt.conn.delete_account(account)).await;
                // Gone already is what a delete wants.
                let res = match res {
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                    other => other,
                };
                let status = match res {
                    Ok(()) => match store.remove_link(&op.target, account).await {
                        Ok(()) => OpStatus::Done,
                        Err(e) => failed(&e, "deleted, but its link could not be removed"),
                    },
                    Err(e) => failed(&e, ""),
                };
                outcome(op, Some(account.clone()), status, attempts)
            }
            _ => outcome(
                op,
                None,
                OpStatus::Skipped {
                    reason: "not a single-account operation".to_owned(),
                },
                0,
            ),
        }
    }

    /// Grants or revokes, one request per entitlement and batch.
    async fn memberships(
        &self,
        rt: &Runtime,
        ops: Vec<&PlannedOp>,
        created: &HashMap<String, Option<AccountId>>,
        store: &dyn Store,
    ) -> Vec<OpOutcome> {
        let mut out = Vec::new();
        let mut by_ent: BTreeMap<(&EntitlementId, bool), Vec<(&PlannedOp, AccountId)>> =
            BTreeMap::new();
        for op in ops {
            let (account, ent, grant) = match &op.kind {
                OpKind::Grant {
                    account,
                    entitlement,
                } => (account, entitlement, true),
                OpKind::Revoke {
                    account,
                    entitlement,
                } => (account, entitlement, false),
                _ => continue,
            };
            match resolve(account, created) {
                Ok(id) => by_ent.entry((ent, grant)).or_default().push((op, id)),
                Err(reason) => out.push(outcome(op, None, OpStatus::Skipped { reason }, 0)),
            }
        }
        let size = rt.caps.max_batch.max(1);
        let mut batches = Vec::new();
        for ((ent, grant), members) in &by_ent {
            for chunk in members.chunks(size) {
                batches.push((*ent, *grant, chunk));
            }
        }
        let results: Vec<Vec<OpOutcome>> = stream::iter(batches)
            .map(|(ent, grant, chunk)| async move {
                let chunk_ops: Vec<&PlannedOp> = chunk.iter().map(|(op, _)| *op).collect();
                if let Err(status) = self.begin(store, &chunk_ops).await {
                    return chunk
                        .iter()
                        .map(|(op, id)| outcome(op, Some(id.clone()), status.clone(), 0))
                        .collect();
                }
                let outcomes = self.membership_batch(rt, ent, grant, chunk).await;
                self.finish(store, &chunk_ops).await;
                outcomes
            })
            .buffer_unordered(rt.concurrency)
            .collect()
            .await;
        out.extend(results.into_iter().flatten());
        out
    }

    async fn membership_batch(
        &self,
        rt: &Runtime,
        ent: &EntitlementId,
        grant: bool,
        chunk: &[(&PlannedOp, AccountId)],
    ) -> Vec<OpOutcome> {
        let accounts: Vec<AccountId> = chunk.iter().map(|(_, id)| id.clone()).collect();
        let req = MembershipChange::new(ent.clone(), accounts);
        let (res, attempts) = self
            .call(rt, || {
                if grant {
                    rt.conn.grant(req.clone())
                } else {
                    rt.conn.revoke(req.clone())
                }
            })
            .await;
        match res {
            Ok(batch) => {
                let mut failures: HashMap<AccountId, prov_core::Error> = batch
                    .failures
                    .into_iter()
                    .map(|f| (f.account, f.error))
                    .collect();
                chunk
                    .iter()
                    .map(|(op, id)| {
                        let status = match failures.remove(id) {
                            Some(e) => failed(&e, ""),
                            None => OpStatus::Done,
                        };
                        outcome(op, Some(id.clone()), status, attempts)
                    })
                    .collect()
            }
            Err(e) => chunk
                .iter()
                .map(|(op, id)| outcome(op, Some(id.clone()), failed(&e, ""), attempts))
                .collect(),
        }
    }

    /// Writes operations to the outbox before they are sent: a process
    /// killed mid-call leaves a trace the next run recovers from.
    async fn begin(&self, store: &dyn Store, ops: &[&PlannedOp]) -> Result<(), OpStatus> {
        let now = self.clock.now();
        let entries: Vec<OutboxEntry> = ops
            .iter()
            .filter(|op| !matches!(op.kind, OpKind::Link { .. }))
            .map(|op| OutboxEntry::new((*op).clone(), now))
            .collect();
        if entries.is_empty() {
            return Ok(());
        }
        store
            .outbox_begin(&entries)
            .await
            .map_err(|e| failed(&e, "not sent: the outbox could not be written"))
    }

    /// Takes finished operations out of the outbox. A failure here leaves
    /// them looking in flight, which the next run's recovery handles safely.
    async fn finish(&self, store: &dyn Store, ops: &[&PlannedOp]) {
        let ids: Vec<String> = ops.iter().map(|op| op.id.clone()).collect();
        let _ = store.outbox_finish(&ids).await;
        let done = self
            .finished
            .fetch_add(ops.len(), std::sync::atomic::Ordering::Relaxed)
            + ops.len();
        if let Some(p) = &self.progress {
            p(done, self.total.load(std::sync::atomic::Ordering::Relaxed));
        }
    }

    /// One call with the rate limit, retries, backoff and budget.
    async fn call<T, F, Fut>(&self, rt: &Runtime, mut f: F) -> Attempted<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = prov_core::Result<T>>,
    {
        let policy = &self.options.retry;
        self.deposit();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if let Some(l) = &rt.limiter {
                l.until_ready().await;
            }
            self.count(attempt > 1);
            match f().await {
                Ok(v) => return (Ok(v), attempt),
                // A rate-limit answer that says how long to wait is obeyed, not
                // charged to the budget: waiting as asked is not hammering.
                Err(e)
                    if e.is_retryable()
                        && attempt < policy.max_attempts.max(1)
                        && ((e.kind() == ErrorKind::RateLimited && e.retry_after().is_some())
                            || self.withdraw()) =>
                {
                    tokio::time::sleep(self.backoff(attempt, e.retry_after())).await;
                }
                Err(e) => return (Err(e), attempt),
            }
        }
    }

    fn count(&self, retry: bool) {
        let mut c = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        c.0 += 1;
        if retry {
            c.1 += 1;
        }
    }

    fn deposit(&self) {
        let mut b = self
            .budget
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        b.tokens += b.ratio;
    }

    fn withdraw(&self) -> bool {
        let mut b = self
            .budget
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Full jitter: a random wait up to `base * 2^(attempt-1)` (capped), but
    /// never shorter than what the target asked for.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let policy = &self.options.retry;
        let ceiling = policy
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(policy.max_delay);
        let jittered = {
            let mut rng = self
                .rng
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            ceiling.mul_f64(rng.random::<f64>())
        };
        retry_after.map_or(jittered, |wait| jittered.max(wait))
    }
}

fn resolve(
    account: &AccountRef,
    created: &HashMap<String, Option<AccountId>>,
) -> Result<AccountId, String> {
    match account {
        AccountRef::Existing { id } => Ok(id.clone()),
        AccountRef::New { login } => match created.get(login) {
            Some(Some(id)) => Ok(id.clone()),
            Some(None) => Err(format!("the create of {login} failed")),
            None => Err(format!("the plan has no create for {login}")),
        },
    }
}

fn account_key(kind: &OpKind) -> String {
    match kind {
        OpKind::Update { account, .. } | OpKind::SetEnabled { account, .. } => account.to_string(),
        OpKind::Delete { account } | OpKind::Link { account } => account.to_string(),
        OpKind::Grant { account, .. } | OpKind::Revoke { account, .. } => account.to_string(),
        OpKind::Create { login, .. } => login.clone(),
    }
}

fn outcome(
    op: &PlannedOp,
    account: Option<AccountId>,
    status: OpStatus,
    attempts: u32,
) -> OpOutcome {
    OpOutcome {
        op: op.id.clone(),
        name: op.kind.name().to_owned(),
        target: op.target.clone(),
        identity: op.identity.clone(),
        account,
        status,
        attempts,
    }
}

fn failed(e: &prov_core::Error, context: &str) -> OpStatus {
    let message = if context.is_empty() {
        e.to_string()
    } else {
        format!("{context}: {e}")
    };
    OpStatus::Failed {
        kind: e.kind(),
        message,
    }
}

fn status_of(r: prov_core::Result<()>) -> OpStatus {
    match r {
        Ok(()) => OpStatus::Done,
        Err(e) => failed(&e, ""),
    }
}
