//! The executor: applies a plan through the connectors, batched, bounded,
//! rate-limited and retried, with an outcome for every operation and an
//! audit record for every outcome.
//!
//! Each operation is written to the outbox before it is sent (a chunk of a
//! phase at a time, in one transaction), and its completion (the audit
//! record, the ledger change, the entry's removal) is written in one
//! transaction of a group ([`journal`]). A process killed at any point
//! leaves every call that may have changed a target either recorded or
//! still in the outbox, where recovery finds it.

mod journal;
mod outcome;
mod retry;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use futures_util::StreamExt;
use futures_util::future::join;
use futures_util::stream;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use prov_core::{
    AccountId, Capabilities, Clock, Connector, CreateAccount, EntitlementId, ErrorKind,
    ListRequest, MembershipChange, RateLimit, SystemClock, TargetId, UpdateAccount,
};
use serde::{Deserialize, Serialize};

use crate::audit::AuditEvent;
use crate::ledger::{GrantChange, LedgerChange, Link, LinkOrigin};
use crate::plan::{AccountRef, OpKind, Plan, PlannedOp};
use crate::store::{Completion, OutboxEntry, Store};

use journal::Journal;
pub use outcome::{ApplyError, ApplyReport, OpOutcome, OpStatus};
pub(crate) use outcome::{failed, outcome, skipped};
pub(crate) use retry::Retrier;
pub use retry::RetryPolicy;

/// Operations begun in one outbox transaction before they are sent.
const CHUNK: usize = 512;

/// Limits for one target, overriding what its capabilities publish.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TargetLimits {
    /// Calls in flight at once (default: the capabilities' `max_concurrency`).
    pub concurrency: Option<usize>,
    /// Requests per period (default: the capabilities' `rate_limit`).
    pub rate_limit: Option<RateLimit>,
    /// How long one apply may spend on this target (default
    /// [`DEFAULT_DEADLINE`]): past it, operations not yet sent fail as
    /// retryable, recorded, for the next run.
    pub deadline: Option<std::time::Duration>,
}

/// How long one apply may spend on a target by default: one hour.
pub const DEFAULT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(3600);

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

struct Runtime {
    conn: Arc<dyn Connector>,
    caps: Capabilities,
    limiter: Option<DefaultDirectRateLimiter>,
    concurrency: usize,
    deadline: std::time::Duration,
}

/// Applies plans through connectors.
pub struct Executor {
    targets: BTreeMap<TargetId, Runtime>,
    clock: Arc<dyn Clock>,
    actor: String,
    options: ApplyOptions,
    retrier: Retrier,
    progress: Option<Progress>,
    stop: Option<Arc<AtomicBool>>,
    runs: AtomicU64,
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

/// The outcome of an operation that was not sent because the store failed.
fn not_sent(msg: String) -> OpStatus {
    OpStatus::Failed {
        kind: ErrorKind::Unavailable,
        message: format!("not sent: {msg}"),
    }
}

/// A create's login and the id it got (`None` when it failed).
type Made = Option<(String, Option<AccountId>)>;

/// The process that runs, as outbox entries name their owner: `host:pid`.
pub(crate) fn owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{}", std::process::id())
}

/// Whether the process an owner string names (`host:pid`) is gone: on this
/// host, with no such process or only its zombie left. Another host's
/// process cannot be seen and is never taken for gone.
pub(crate) fn is_gone(owner: &str) -> bool {
    let Some((host, pid)) = owner.rsplit_once(':') else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    let here = self::owner();
    if here.rsplit_once(':').map(|(h, _)| h) != Some(host) || pid == std::process::id() {
        return false;
    }
    // Without /proc (not Linux) no process can be seen: none is gone.
    if !std::path::Path::new("/proc/self/stat").exists() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the command name in parentheses: `Z` is a zombie.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// What an audit record calls an operation: `create`, `grant cn=staff`,
/// `update mail,cn`, `rename to jdoe`.
pub(crate) fn operation_name(op: &PlannedOp) -> String {
    match &op.kind {
        OpKind::Grant { entitlement, .. }
        | OpKind::Revoke { entitlement, .. }
        | OpKind::CreateEntitlement { entitlement }
        | OpKind::DeleteEntitlement { entitlement } => {
            format!("{} {entitlement}", op.kind.name())
        }
        OpKind::Update { delta, secret, .. } => {
            if let Some(login) = &delta.login {
                return format!("rename to {login}");
            }
            let mut names: Vec<&str> = delta.set.keys().map(String::as_str).collect();
            names.extend(delta.remove.iter().map(String::as_str));
            names.extend(secret.iter().map(String::as_str));
            format!("update {}", names.join(","))
        }
        kind => kind.name().to_owned(),
    }
}

/// One apply: its ids, its journal and its progress.
struct Run<'s> {
    id: String,
    owner: String,
    plan: String,
    journal: Journal<'s>,
    /// Whether every operation was begun up front (small plans: an event
    /// costs one outbox transaction, not one per target and phase).
    all_begun: bool,
    finished: AtomicUsize,
    /// The plan's secret values, by operation id (see `Plan::secrets`).
    secrets: BTreeMap<String, prov_core::SecretAttributes>,
    total: usize,
    /// When the run began sending (targets' deadlines count from it).
    started: tokio::time::Instant,
}

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
                    deadline: limits.deadline.unwrap_or(DEFAULT_DEADLINE),
                };
                (t, rt)
            })
            .collect();
        Executor {
            targets,
            clock: Arc::new(SystemClock),
            actor: "prov-engine".to_owned(),
            retrier: Retrier::new(options.retry.clone()),
            options,
            progress: None,
            stop: None,
            runs: AtomicU64::new(0),
        }
    }

    /// Uses `clock` for audit timestamps and run ids (builder style).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Names who acts, in the audit log (builder style; default `prov-engine`).
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    /// Who acts, as the audit log names them.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// Reports progress as operations finish (builder style).
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Stops sending once `stop` is set (builder style): operations not yet
    /// sent are skipped and recorded as such, those in flight finish and are
    /// recorded, and the report says `stopped`. For SIGINT and SIGTERM.
    pub fn with_stop(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = Some(stop);
        self
    }

    fn stopped(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
    }

    /// Why an operation begun but not yet sent must not be sent now: a
    /// stop, a store that can no longer record what is sent, or the
    /// target's apply deadline.
    fn halted(&self, run: &Run<'_>, rt: &Runtime) -> Option<OpStatus> {
        if self.stopped() {
            return Some(skipped("stopped before it was sent"));
        }
        if let Some(msg) = run.journal.error() {
            return Some(not_sent(msg));
        }
        (run.started.elapsed() > rt.deadline).then(|| OpStatus::Failed {
            kind: ErrorKind::Timeout,
            message: format!(
                "not sent: the apply's deadline on this target ({}s) passed; the next run sends it",
                rt.deadline.as_secs()
            ),
        })
    }

    /// A new run id: the time, the process, a counter and a random part,
    /// so that runs of two processes (or two runs of one) never share one.
    pub(crate) fn run_id(&self) -> String {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        format!(
            "run-{}-{}-{n}-{:08x}",
            self.clock.now().format("%Y%m%dT%H%M%S%.6fZ"),
            std::process::id(),
            self.retrier.random()
        )
    }

    /// Applies a plan. Returns an error (having done nothing) when the plan
    /// is blocked or names an unknown target; otherwise an outcome for every
    /// operation: one failing never stops the unrelated ones. Every outcome
    /// is written to the audit log as its operation finishes; when the store
    /// fails, nothing more is sent and the report's `audit_error` says so.
    pub async fn apply(&self, plan: &Plan, store: &dyn Store) -> Result<ApplyReport, ApplyError> {
        self.apply_in(self.run_id(), plan, store).await
    }

    /// [`apply`](Self::apply) as run `run` (the engine's claim names it, so
    /// that recovery knows whose outbox entries are still in flight).
    pub(crate) async fn apply_in(
        &self,
        run: String,
        plan: &Plan,
        store: &dyn Store,
    ) -> Result<ApplyReport, ApplyError> {
        if !plan.blocked.is_empty() && !self.options.allow_destructive {
            return Err(ApplyError::Blocked(plan.blocked.clone()));
        }
        let mut by_target: BTreeMap<&TargetId, Vec<&PlannedOp>> = BTreeMap::new();
        for op in &plan.ops {
            if !self.targets.contains_key(&op.target) {
                return Err(ApplyError::UnknownTarget(op.target.clone()));
            }
            by_target.entry(&op.target).or_default().push(op);
        }
        let mut run = Run {
            id: run,
            owner: owner(),
            plan: if plan.digest.is_empty() {
                plan.content_digest()
            } else {
                plan.digest.clone()
            },
            journal: Journal::new(store),
            all_begun: false,
            finished: AtomicUsize::new(0),
            total: plan.ops.len(),
            secrets: plan.secrets.clone(),
            started: tokio::time::Instant::now(),
        };
        if plan.ops.len() <= CHUNK {
            let all: Vec<&PlannedOp> = plan.ops.iter().collect();
            // A failure here is seen again by each chunk's begin, which
            // then reports its operations as not sent.
            run.all_begun = self.begin(&run, &all).await.is_ok();
        }
        let before = self.retrier.counters();
        let runs = by_target.into_iter().filter_map(|(t, ops)| {
            let rt = self.targets.get(t)?;
            Some(self.apply_target(&run, rt, ops))
        });
        let work = async {
            let batches = futures_util::future::join_all(runs).await;
            run.journal.sync().await;
            run.journal.close();
            batches
        };
        let (batches, ()) = futures_util::future::join(work, run.journal.writer()).await;
        let mut outcomes: HashMap<String, OpOutcome> = HashMap::new();
        for batch in batches {
            outcomes.extend(batch.into_iter().map(|o| (o.op.clone(), o)));
        }
        let after = self.retrier.counters();
        let ordered = plan
            .ops
            .iter()
            .filter_map(|op| outcomes.remove(&op.id))
            .collect();
        Ok(ApplyReport {
            outcomes: ordered,
            calls: after.0.saturating_sub(before.0),
            retries: after.1.saturating_sub(before.1),
            run: run.id,
            plan: run.plan,
            audit_error: run.journal.error(),
            stopped: self.stopped(),
        })
    }

    /// The audit record of an operation's outcome, stamped now.
    fn audit_event(&self, run: &Run<'_>, op: &PlannedOp, o: &OpOutcome) -> AuditEvent {
        let outcome = match &o.status {
            // A record of a change made says exactly `done` (see `AuditEvent::changed_target`).
            OpStatus::Done => match &o.unchanged {
                Some(why) => format!("done without a change: {why}"),
                None => "done".to_owned(),
            },
            OpStatus::Failed { message, .. } => format!("failed: {message}"),
            OpStatus::Skipped { reason } => format!("skipped: {reason}"),
        };
        let mut event = AuditEvent::new(
            self.clock.now(),
            self.actor.clone(),
            operation_name(op),
            op.reasons.join("; "),
            outcome,
        );
        event.identity.clone_from(&op.identity);
        event.target = Some(op.target.clone());
        event.account.clone_from(&o.account);
        event.run = Some(run.id.clone());
        event.plan = Some(run.plan.clone());
        event
    }

    /// Records how an operation ended: its audit record, its ledger change
    /// and the removal of its outbox entry go to the journal together.
    async fn done(
        &self,
        run: &Run<'_>,
        op: &PlannedOp,
        o: &OpOutcome,
        ledger: Option<LedgerChange>,
    ) {
        let event = self.audit_event(run, op, o);
        // A grant that found the access already there was not the
        // engine's: it gets no date.
        let grant = match (&o.status, &o.account) {
            (OpStatus::Done, Some(account))
                if o.unchanged.is_none() || matches!(op.kind, OpKind::Revoke { .. }) =>
            {
                GrantChange::of(&op.target, &op.kind, account, event.time)
            }
            _ => None,
        };
        let mut c = Completion::new(run.id.clone(), op.id.clone(), event);
        c.ledger = ledger;
        c.grant = grant;
        run.journal.finish(c).await;
        let done = run
            .finished
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if let Some(p) = &self.progress {
            p(done, run.total);
        }
    }

    /// Writes operations to the outbox before they are sent (links are
    /// store writes and need no entry).
    async fn begin(&self, run: &Run<'_>, ops: &[&PlannedOp]) -> Result<(), OpStatus> {
        if run.all_begun {
            // Begun already; still, nothing is sent once the store has failed.
            return run.journal.error().map_or(Ok(()), |msg| Err(not_sent(msg)));
        }
        let now = self.clock.now();
        let entries: Vec<OutboxEntry> = ops
            .iter()
            .filter(|op| !matches!(op.kind, OpKind::Link { .. } | OpKind::Unlink { .. }))
            .map(|op| OutboxEntry::new(run.id.clone(), run.owner.clone(), (*op).clone(), now))
            .collect();
        run.journal.begin(&entries).await.map_err(not_sent)
    }

    async fn apply_target(
        &self,
        run: &Run<'_>,
        rt: &Runtime,
        ops: Vec<&PlannedOp>,
    ) -> Vec<OpOutcome> {
        let mut out = Vec::with_capacity(ops.len());
        let mut created: HashMap<String, Option<AccountId>> = HashMap::new();
        let mut after_creates = false;
        // Entitlements some revoke of this apply failed for: not deleted,
        // so no holder loses one without its own record.
        let mut unrevoked: std::collections::BTreeSet<EntitlementId> = Default::default();
        for phase in 0..=OpKind::LAST_PHASE {
            let mut in_phase: Vec<&PlannedOp> = ops
                .iter()
                .copied()
                .filter(|o| o.kind.phase() == phase)
                .collect();
            if phase == OpKind::LAST_PHASE && !unrevoked.is_empty() {
                let (held, rest): (Vec<&PlannedOp>, Vec<&PlannedOp>) = in_phase
                    .into_iter()
                    .partition(|o| o.entitlement_made().is_some_and(|e| unrevoked.contains(e)));
                for op in held {
                    let o = outcome(
                        op,
                        None,
                        skipped(
                            "a revoke of it from a holder failed: it is kept until every holder's is done",
                        ),
                        0,
                    );
                    self.done(run, op, &o, None).await;
                    out.push(o);
                }
                in_phase = rest;
            }
            if in_phase.is_empty() {
                continue;
            }
            // Records are written beside the sends (the journal's writer),
            // so the sends wait for them only at two points. After creates:
            // everything later acts on the new accounts, and nothing of it
            // is sent once the store has failed to record the creates.
            // Before deletes: a delete destroys what recovery would look
            // at for the earlier phases' operations on that account (no
            // account, no revoke to find). No other later phase hides an
            // earlier one's effect.
            if phase >= 5 || (phase > 0 && after_creates) {
                run.journal.sync().await;
                after_creates = false;
            }
            if phase == 0 {
                after_creates = true;
            }
            match phase {
                0 => {
                    let chunks: Vec<&[&PlannedOp]> = in_phase.chunks(CHUNK).collect();
                    let mut begun = self.begin_first(run, &chunks).await;
                    for (i, chunk) in chunks.iter().enumerate() {
                        let (done, next) = join(
                            self.first_phase_chunk(run, rt, chunk, begun),
                            self.begin_next(run, chunks.get(i + 1).copied()),
                        )
                        .await;
                        begun = next;
                        for (outcome, made) in done {
                            if let Some((login, id)) = made {
                                created.insert(login, id);
                            }
                            out.push(outcome);
                        }
                    }
                }
                2 | 3 => {
                    let revokes: HashMap<&str, &EntitlementId> = if phase == 2 {
                        in_phase
                            .iter()
                            .filter_map(|op| match &op.kind {
                                OpKind::Revoke { entitlement, .. } => {
                                    Some((op.id.as_str(), entitlement))
                                }
                                _ => None,
                            })
                            .collect()
                    } else {
                        HashMap::new()
                    };
                    let done = self.memberships(run, rt, in_phase, &created).await;
                    for o in &done {
                        if !matches!(o.status, OpStatus::Done)
                            && let Some(e) = revokes.get(o.op.as_str())
                        {
                            unrevoked.insert((*e).clone());
                        }
                    }
                    out.extend(done);
                }
                _ => {
                    // Operations on one account run in order; accounts run side by side.
                    let mut groups: BTreeMap<String, Vec<&PlannedOp>> = BTreeMap::new();
                    for op in in_phase {
                        groups.entry(account_key(&op.kind)).or_default().push(op);
                    }
                    let groups: Vec<Vec<&PlannedOp>> = groups.into_values().collect();
                    // Whole groups per chunk, about CHUNK operations.
                    let chunks = chunked(&groups, Vec::len);
                    let flat: Vec<Vec<&PlannedOp>> = chunks
                        .iter()
                        .map(|c| c.iter().flatten().copied().collect())
                        .collect();
                    let mut begun = self.begin_first(run, &flat).await;
                    for (i, chunk) in chunks.iter().enumerate() {
                        let (done, next) = join(
                            self.singles_chunk(run, rt, chunk, &created, begun),
                            self.begin_next(run, flat.get(i + 1).map(Vec::as_slice)),
                        )
                        .await;
                        begun = next;
                        out.extend(done);
                    }
                }
            }
        }
        out
    }

    /// Begins the first of `chunks` (the others are begun while the one
    /// before them is sent: [`begin_next`](Self::begin_next)).
    async fn begin_first<'p, C: AsRef<[&'p PlannedOp]>>(
        &self,
        run: &Run<'_>,
        chunks: &[C],
    ) -> Result<(), OpStatus> {
        self.begin_next(run, chunks.first().map(AsRef::as_ref))
            .await
    }

    /// Begins the next chunk's operations while the current one is sent:
    /// each entry is still durable before its own operation is sent, and
    /// the outbox write no longer stands between one chunk and the next.
    /// A crash can leave one chunk begun and not sent, which recovery
    /// finds not applied, as it does the unsent rest of a chunk.
    async fn begin_next(
        &self,
        run: &Run<'_>,
        chunk: Option<&[&PlannedOp]>,
    ) -> Result<(), OpStatus> {
        match chunk {
            Some(ops) => self.begin(run, ops).await,
            None => Ok(()),
        }
    }

    async fn first_phase_chunk(
        &self,
        run: &Run<'_>,
        rt: &Runtime,
        chunk: &[&PlannedOp],
        begun: Result<(), OpStatus>,
    ) -> Vec<(OpOutcome, Made)> {
        let made_none = |op: &PlannedOp| match &op.kind {
            OpKind::Create { login, .. } => Some((login.clone(), None)),
            _ => None,
        };
        if let Err(status) = begun {
            return chunk
                .iter()
                .map(|op| (outcome(op, None, status.clone(), 0), made_none(op)))
                .collect();
        }
        stream::iter(chunk.iter().copied())
            .map(|op| async move {
                if let Some(status) = self.halted(run, rt) {
                    let o = outcome(op, None, status, 0);
                    self.done(run, op, &o, None).await;
                    return (o, made_none(op));
                }
                let (o, made, ledger) = self.first_phase(run, rt, op).await;
                self.done(run, op, &o, ledger).await;
                (o, made)
            })
            .buffer_unordered(rt.concurrency)
            .collect()
            .await
    }

    async fn singles_chunk(
        &self,
        run: &Run<'_>,
        rt: &Runtime,
        groups: &[Vec<&PlannedOp>],
        created: &HashMap<String, Option<AccountId>>,
        begun: Result<(), OpStatus>,
    ) -> Vec<OpOutcome> {
        let ops: Vec<&PlannedOp> = groups.iter().flatten().copied().collect();
        if let Err(status) = begun {
            return ops
                .iter()
                .map(|op| outcome(op, None, status.clone(), 0))
                .collect();
        }
        let results: Vec<Vec<OpOutcome>> = stream::iter(groups)
            .map(|group| async move {
                let mut v = Vec::with_capacity(group.len());
                for op in group {
                    let (o, ledger) = match self.halted(run, rt) {
                        Some(status) => (outcome(op, None, status, 0), None),
                        None => self.single(run, rt, op, created).await,
                    };
                    self.done(run, op, &o, ledger).await;
                    v.push(o);
                }
                v
            })
            .buffer_unordered(rt.concurrency)
            .collect()
            .await;
        results.into_iter().flatten().collect()
    }

    /// Creates and links. Returns the outcome, the login and new id for
    /// creates, and the link to record with the outcome.
    async fn first_phase(
        &self,
        run: &Run<'_>,
        rt: &Runtime,
        op: &PlannedOp,
    ) -> (OpOutcome, Made, Option<LedgerChange>) {
        match &op.kind {
            OpKind::Link { account } => match &op.identity {
                Some(who) => (
                    outcome(op, Some(account.clone()), OpStatus::Done, 0),
                    None,
                    Some(LedgerChange::Put(Link::new(
                        op.target.clone(),
                        account.clone(),
                        who.clone(),
                        LinkOrigin::Linked,
                    ))),
                ),
                None => (
                    outcome(
                        op,
                        Some(account.clone()),
                        OpStatus::Failed {
                            kind: ErrorKind::InvalidInput,
                            message: "a link needs an identity".to_owned(),
                        },
                        0,
                    ),
                    None,
                    None,
                ),
            },
            OpKind::Unlink { account } => (
                outcome(op, Some(account.clone()), OpStatus::Done, 0),
                None,
                Some(LedgerChange::Remove {
                    target: op.target.clone(),
                    account: account.clone(),
                }),
            ),
            OpKind::Create {
                login,
                attributes,
                enabled,
                secret,
            } => {
                let marker = create_marker(&run.id, &op.id);
                let mut req = CreateAccount::new(login.clone(), attributes.clone())
                    .with_marker(marker.clone());
                req.enabled = *enabled;
                match secrets_for(run, op, secret) {
                    Ok(values) => req.secrets = values,
                    Err(message) => {
                        return (
                            outcome(
                                op,
                                None,
                                OpStatus::Failed {
                                    kind: ErrorKind::InvalidInput,
                                    message,
                                },
                                0,
                            ),
                            Some((login.clone(), None)),
                            None,
                        );
                    }
                }
                let (res, attempts) = self
                    .retrier
                    .call(rt.limiter.as_ref(), || rt.conn.create_account(req.clone()))
                    .await;
                let res = match res {
                    // A retried create that finds the login taken may have
                    // made it on an attempt whose reply was lost; a create
                    // that timed out may have happened. The account is ours
                    // only if it carries this create's marker: anyone may
                    // have made one with that login meanwhile.
                    Err(e)
                        if (e.kind() == ErrorKind::AlreadyExists && attempts > 1)
                            || e.kind() == ErrorKind::Timeout =>
                    {
                        self.adopt(rt, login, &marker, e).await
                    }
                    other => other.map(|a| a.id),
                };
                match res {
                    Ok(id) => {
                        let ledger = op.identity.as_ref().map(|who| {
                            LedgerChange::Put(Link::new(
                                op.target.clone(),
                                id.clone(),
                                who.clone(),
                                LinkOrigin::Created,
                            ))
                        });
                        (
                            outcome(op, Some(id.clone()), OpStatus::Done, attempts),
                            Some((login.clone(), Some(id))),
                            ledger,
                        )
                    }
                    Err(e) => (
                        outcome(op, None, failed(&e, ""), attempts),
                        Some((login.clone(), None)),
                        None,
                    ),
                }
            }
            _ => (
                outcome(op, None, skipped("not a first-phase operation"), 0),
                None,
                None,
            ),
        }
    }

    /// After a create whose reply was lost (`lost`): the account with
    /// `login` if it carries this create's `marker`, else `lost`, or a
    /// conflict for a person when an account with the login exists without
    /// the proof.
    async fn adopt(
        &self,
        rt: &Runtime,
        login: &str,
        marker: &str,
        lost: prov_core::Error,
    ) -> prov_core::Result<AccountId> {
        let found = match self.find_by_login(rt, login).await {
            Ok(Some(a)) => a,
            Ok(None) | Err(_) => return Err(lost),
        };
        if rt.caps.create_marker && found.marker.as_deref() == Some(marker) {
            return Ok(found.id);
        }
        let why = if rt.caps.create_marker {
            "it does not carry this create's marker"
        } else {
            "the connector keeps no create marker to prove who made it"
        };
        Err(prov_core::Error::new(
            ErrorKind::Conflict,
            format!(
                "the reply to the create of {login} was lost ({lost}) and account {} has that login, \
                 but {why}: it is not adopted as created; the next plan reports it for a person to decide",
                found.id
            ),
        ))
    }

    async fn find_by_login(
        &self,
        rt: &Runtime,
        login: &str,
    ) -> prov_core::Result<Option<prov_core::Account>> {
        // As `ConnectorExt::accounts_with_login`, but each call retried and rate limited.
        let filtered = rt.caps.filter_attributes.iter().any(|a| a == "login");
        let with_filter = |req: ListRequest| {
            if filtered {
                req.with_filter("login", login)
            } else {
                req
            }
        };
        let mut req = with_filter(ListRequest::first());
        let mut guard = prov_core::PageGuard::new();
        loop {
            let (page, _) = self
                .retrier
                .call(rt.limiter.as_ref(), || rt.conn.list_accounts(req.clone()))
                .await;
            let page = page?;
            if let Some(a) = page
                .items
                .into_iter()
                .find(|a| rt.caps.same_login(&a.login, login))
            {
                return Ok(Some(a));
            }
            match page.next {
                Some(c) => {
                    guard.next(&c, "looking up a login")?;
                    req = with_filter(ListRequest::after(c));
                }
                None => return Ok(None),
            }
        }
    }

    async fn single(
        &self,
        run: &Run<'_>,
        rt: &Runtime,
        op: &PlannedOp,
        created: &HashMap<String, Option<AccountId>>,
    ) -> (OpOutcome, Option<LedgerChange>) {
        let resolve = |a: &AccountRef| resolve(a, created);
        match &op.kind {
            OpKind::Update {
                account,
                delta,
                secret,
            } => match resolve(account) {
                Err(reason) => (outcome(op, None, skipped(reason), 0), None),
                Ok(id) => {
                    let mut req = UpdateAccount::new(id.clone(), delta.clone());
                    match secrets_for(run, op, secret) {
                        Ok(values) => req.secrets = values,
                        Err(message) => {
                            let status = OpStatus::Failed {
                                kind: ErrorKind::InvalidInput,
                                message,
                            };
                            return (outcome(op, Some(id), status, 0), None);
                        }
                    }
                    let (res, attempts) = self
                        .retrier
                        .call(rt.limiter.as_ref(), || rt.conn.update_account(req.clone()))
                        .await;
                    match res {
                        // A rename moved the account (an LDAP DN): its link moves with the record.
                        Ok(new_id) if new_id != id => (
                            outcome(op, Some(new_id.clone()), OpStatus::Done, attempts),
                            Some(LedgerChange::Move {
                                target: op.target.clone(),
                                from: id,
                                to: new_id,
                            }),
                        ),
                        Ok(_) => (outcome(op, Some(id), OpStatus::Done, attempts), None),
                        Err(e) => (outcome(op, Some(id), failed(&e, ""), attempts), None),
                    }
                }
            },
            OpKind::SetEnabled { account, enabled } => match resolve(account) {
                Err(reason) => (outcome(op, None, skipped(reason), 0), None),
                Ok(id) => {
                    let (res, attempts) = self
                        .retrier
                        .call(rt.limiter.as_ref(), || rt.conn.set_enabled(&id, *enabled))
                        .await;
                    let status = match res {
                        Ok(()) => OpStatus::Done,
                        Err(e) => failed(&e, ""),
                    };
                    (outcome(op, Some(id.clone()), status, attempts), None)
                }
            },
            OpKind::Delete { account } => {
                let (res, attempts) = self
                    .retrier
                    .call(rt.limiter.as_ref(), || rt.conn.delete_account(account))
                    .await;
                // Gone already is what a delete wants.
                match res {
                    Ok(()) => (
                        outcome(op, Some(account.clone()), OpStatus::Done, attempts),
                        Some(LedgerChange::Remove {
                            target: op.target.clone(),
                            account: account.clone(),
                        }),
                    ),
                    Err(e) if e.kind() == ErrorKind::NotFound => (
                        OpOutcome {
                            unchanged: Some("the account was already gone".to_owned()),
                            ..outcome(op, Some(account.clone()), OpStatus::Done, attempts)
                        },
                        Some(LedgerChange::Remove {
                            target: op.target.clone(),
                            account: account.clone(),
                        }),
                    ),
                    Err(e) => (
                        outcome(op, Some(account.clone()), failed(&e, ""), attempts),
                        None,
                    ),
                }
            }
            OpKind::CreateEntitlement { entitlement } => {
                let mut wanted = prov_core::Entitlement::group(entitlement.clone());
                wanted.display_name = Some(entitlement.as_str().to_owned());
                let (res, attempts) = self
                    .retrier
                    .call(rt.limiter.as_ref(), || rt.conn.create_entitlement(&wanted))
                    .await;
                match res {
                    Ok(_) => (
                        outcome(op, None, OpStatus::Done, attempts),
                        Some(LedgerChange::Created(crate::ledger::EntitlementRecord::new(
                            op.target.clone(),
                            entitlement.clone(),
                            self.clock.now(),
                        ))),
                    ),
                    // There now, and not by a create the engine can prove
                    // was its own (someone made it since the plan, or a
                    // retry follows a lost reply): used, never retired.
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => (
                        OpOutcome {
                            unchanged: Some(
                                "it exists already; not recorded as the engine's, so never deleted by it"
                                    .to_owned(),
                            ),
                            ..outcome(op, None, OpStatus::Done, attempts)
                        },
                        None,
                    ),
                    Err(e) => (outcome(op, None, failed(&e, ""), attempts), None),
                }
            }
            OpKind::DeleteEntitlement { entitlement } => {
                let (res, attempts) = self
                    .retrier
                    .call(rt.limiter.as_ref(), || {
                        rt.conn.delete_entitlement(entitlement)
                    })
                    .await;
                let retired = Some(LedgerChange::Retired {
                    target: op.target.clone(),
                    entitlement: entitlement.clone(),
                });
                match res {
                    Ok(()) => (outcome(op, None, OpStatus::Done, attempts), retired),
                    Err(e) if e.kind() == ErrorKind::NotFound => (
                        OpOutcome {
                            unchanged: Some("it was already gone".to_owned()),
                            ..outcome(op, None, OpStatus::Done, attempts)
                        },
                        retired,
                    ),
                    Err(e) => (outcome(op, None, failed(&e, ""), attempts), None),
                }
            }
            _ => (
                outcome(op, None, skipped("not a single-account operation"), 0),
                None,
            ),
        }
    }

    /// Grants or revokes, one request per entitlement and batch.
    async fn memberships(
        &self,
        run: &Run<'_>,
        rt: &Runtime,
        ops: Vec<&PlannedOp>,
        created: &HashMap<String, Option<AccountId>>,
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
                Err(reason) => {
                    let o = outcome(op, None, skipped(reason), 0);
                    self.done(run, op, &o, None).await;
                    out.push(o);
                }
            }
        }
        let size = rt.caps.max_batch.max(1);
        let mut batches = Vec::new();
        for ((ent, grant), members) in &by_ent {
            for chunk in members.chunks(size) {
                batches.push((*ent, *grant, chunk));
            }
        }
        // Batches begun together, about CHUNK operations at a time, each
        // group begun while the one before it is sent.
        let groups = chunked(&batches, |b| b.2.len());
        let flat: Vec<Vec<&PlannedOp>> = groups
            .iter()
            .map(|g| {
                g.iter()
                    .flat_map(|b| b.2.iter().map(|(op, _)| *op))
                    .collect()
            })
            .collect();
        let mut begun = self.begin_first(run, &flat).await;
        for (i, group) in groups.iter().copied().enumerate() {
            let next = self.begin_next(run, flat.get(i + 1).map(Vec::as_slice));
            if let Err(status) = begun {
                begun = next.await;
                for (_, _, chunk) in group {
                    out.extend(
                        chunk
                            .iter()
                            .map(|(op, id)| outcome(op, Some(id.clone()), status.clone(), 0)),
                    );
                }
                continue;
            }
            let sends = stream::iter(group)
                .map(|(ent, grant, chunk)| async move {
                    let outcomes = match self.halted(run, rt) {
                        Some(status) => chunk
                            .iter()
                            .map(|(op, id)| outcome(op, Some(id.clone()), status.clone(), 0))
                            .collect(),
                        None => self.membership_batch(rt, ent, *grant, chunk).await,
                    };
                    for ((op, _), o) in chunk.iter().zip(&outcomes) {
                        self.done(run, op, o, None).await;
                    }
                    outcomes
                })
                .buffer_unordered(rt.concurrency)
                .collect::<Vec<Vec<OpOutcome>>>();
            let (results, after) = join(sends, next).await;
            begun = after;
            out.extend(results.into_iter().flatten());
        }
        out
    }

    async fn membership_batch(
        &self,
        rt: &Runtime,
        ent: &EntitlementId,
        grant: bool,
        chunk: &[(&PlannedOp, AccountId)],
    ) -> Vec<OpOutcome> {
        // The members still to send, and each member's last failure. A
        // member the target answered with a retryable error (a service
        // that throttles request by request throttles some of a batch) is
        // sent again, alone with the others like it, by the same retrier
        // and within its attempts and budget; the rest are not sent twice.
        struct Round {
            pending: Vec<AccountId>,
            failed: HashMap<AccountId, prov_core::Error>,
            /// Whether the last error was the whole call's.
            whole: bool,
        }
        let round = std::sync::Mutex::new(Round {
            pending: chunk.iter().map(|(_, id)| id.clone()).collect(),
            failed: HashMap::new(),
            whole: false,
        });
        let lock = || {
            round
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let (res, attempts) = self
            .retrier
            .call(rt.limiter.as_ref(), || async {
                let req = MembershipChange::new(ent.clone(), lock().pending.clone());
                let sent = if grant {
                    rt.conn.grant(req).await
                } else {
                    rt.conn.revoke(req).await
                };
                let mut r = lock();
                let batch = match sent {
                    Ok(b) => b,
                    Err(e) => {
                        r.whole = true;
                        return Err(e);
                    }
                };
                r.whole = false;
                let sent = std::mem::take(&mut r.pending);
                for id in &sent {
                    r.failed.remove(id);
                }
                let mut again = None;
                for f in batch.failures {
                    if f.error.is_retryable() {
                        r.pending.push(f.account.clone());
                        // The longest wait any of them asks for.
                        let longer = match (&again, f.error.retry_after()) {
                            (None, _) => true,
                            (Some(a), Some(w)) => {
                                prov_core::Error::retry_after(a).is_none_or(|x| w > x)
                            }
                            _ => false,
                        };
                        if longer {
                            let mut e = prov_core::Error::new(
                                f.error.kind(),
                                format!("{}: {}", f.account, f.error.message()),
                            );
                            if let Some(w) = f.error.retry_after() {
                                e = e.with_retry_after(w);
                            }
                            again = Some(e);
                        }
                    }
                    r.failed.insert(f.account, f.error);
                }
                match again {
                    Some(e) => Err(e),
                    None => Ok(()),
                }
            })
            .await;
        let r = lock();
        chunk
            .iter()
            .map(|(op, id)| {
                let status = match (&res, r.failed.get(id)) {
                    (Err(e), _) if r.whole && r.pending.contains(id) => failed(e, ""),
                    (_, Some(e)) => failed(e, ""),
                    _ => OpStatus::Done,
                };
                outcome(op, Some(id.clone()), status, attempts)
            })
            .collect()
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

/// The values of an operation's secret attributes `names`, from the plan
/// made in this process; a plan read from a file has none.
fn secrets_for(
    run: &Run<'_>,
    op: &PlannedOp,
    names: &std::collections::BTreeSet<String>,
) -> Result<prov_core::SecretAttributes, String> {
    if names.is_empty() {
        return Ok(prov_core::SecretAttributes::new());
    }
    match run.secrets.get(&op.id) {
        Some(values) if names.iter().all(|k| values.contains_key(k)) => Ok(values.clone()),
        _ => Err(format!(
            "{} of {}: secret attribute {} has no value here: a plan read from a file never \
             holds one; apply it with Engine::apply (prov apply), which plans again and computes it",
            op.kind.name(),
            op.account_login.as_deref().unwrap_or(op.id.as_str()),
            names.iter().cloned().collect::<Vec<_>>().join(", ")
        )),
    }
}

/// The marker a create carries (`CreateAccount::marker`): the run and the
/// operation, the same on every retry and for recovery.
pub(crate) fn create_marker(run: &str, op: &str) -> String {
    format!("prov:{run}:{op}")
}

fn account_key(kind: &OpKind) -> String {
    match kind {
        OpKind::Update { account, .. } | OpKind::SetEnabled { account, .. } => account.to_string(),
        OpKind::Delete { account } | OpKind::Link { account } | OpKind::Unlink { account } => {
            account.to_string()
        }
        OpKind::Grant { account, .. } | OpKind::Revoke { account, .. } => account.to_string(),
        OpKind::Create { login, .. } => login.clone(),
        OpKind::CreateEntitlement { entitlement } | OpKind::DeleteEntitlement { entitlement } => {
            format!("entitlement:{entitlement}")
        }
    }
}

/// `items` cut into runs of about [`CHUNK`] operations (`size` of each
/// item), never splitting an item.
fn chunked<T>(items: &[T], size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < items.len() {
        let mut end = start;
        let mut n = 0usize;
        while end < items.len() && (n == 0 || n < CHUNK) {
            n = n.saturating_add(items.get(end).map_or(0, &size));
            end += 1;
        }
        out.push(items.get(start..end).unwrap_or_default());
        start = end;
    }
    out
}
