//! `Engine`: the policy, the connectors and the store together: plan,
//! apply (refusing stale plans), and handle one identity's event at once.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use prov_core::{
    Account, Clock, Connector, ConnectorExt, Identity, LifecycleState, SystemClock, TargetId,
};
use prov_resolver::{CompiledPolicy, Extra, Lease};
use serde::{Deserialize, Serialize};

use crate::audit::AuditEvent;
use crate::executor::{ApplyError, ApplyOptions, ApplyReport, Executor};
use crate::leases::{self, LeaseError, LeaseRecord, LeaseRequest, LeaseState};
use crate::plan::Plan;
use crate::planner::{PlanInput, PlanOptions};
use crate::store::{Claim, Holder, Store};

mod links;
mod sync;

pub use sync::ChangesPlan;

/// What went wrong at the engine level.
#[derive(Debug)]
#[non_exhaustive]
pub enum EngineError {
    /// A target could not be listed; nothing was planned or applied.
    Target {
        /// Which.
        target: TargetId,
        /// Why.
        error: prov_core::Error,
    },
    /// The store failed.
    Store(prov_core::Error),
    /// The plan was made from inputs that have changed since; nothing was applied.
    Stale {
        /// The plan's fingerprint.
        planned: String,
        /// The fingerprint of the inputs now.
        current: String,
    },
    /// The executor refused the plan.
    Apply(ApplyError),
    /// A saved plan's content does not match its digest (it was edited
    /// after it was made) or it was made by another plan format; nothing
    /// was applied.
    Tampered(String),
    /// A saved plan is older than the engine's maximum plan age (or dated
    /// in the future); nothing was applied.
    Expired {
        /// When it was made.
        made: chrono::DateTime<chrono::Utc>,
        /// The age allowed.
        max_age: std::time::Duration,
    },
    /// Another live run holds a target (one run at a time per target);
    /// nothing was done.
    Busy {
        /// The target and who holds it.
        holder: Holder,
        /// How long this run waited.
        waited: std::time::Duration,
    },
    /// Planning now gives other operations, blocks or problems than the
    /// saved plan: a time-bound fact changed (a lease started or ended, an
    /// end date or grace period passed) or the file was edited; nothing was applied.
    Changed(String),
    /// A reset of secret attributes had nothing to act on (no single linked
    /// account, or no secret attribute for it); nothing was done.
    Reset(String),
    /// A request the engine refuses as it stands (a hand link to an account
    /// someone else holds, an unknown target or account); nothing was done.
    Refused(String),
    /// Something a request names does not exist (an identity not in the
    /// sources, a target, an account, a leaver record); nothing was done.
    NotFound(String),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Target { target, error } => {
                write!(f, "cannot list target {target}: {error}")
            }
            EngineError::Store(e) => write!(f, "store: {e}"),
            EngineError::Stale { planned, current } => write!(
                f,
                "the plan is stale: it was made from inputs with fingerprint {}, and they are now {} \
                 (an identity, the policy, a target or a link changed); nothing was applied, plan again",
                short(planned),
                short(current)
            ),
            EngineError::Apply(e) => write!(f, "{e}"),
            EngineError::Tampered(why) => write!(
                f,
                "the plan was not applied: {why}; plan again and review the new plan"
            ),
            EngineError::Expired { made, max_age } => write!(
                f,
                "the plan was made at {} and plans are applied within {} of being made; \
                 nothing was applied, plan again",
                made.to_rfc3339(),
                humantime_secs(max_age.as_secs())
            ),
            EngineError::Busy { holder, waited } => write!(
                f,
                "target {} is being applied by run {} of {} (claimed until {}); waited {}s, \
                 nothing was done: try again when it has finished",
                holder.target,
                holder.claim.run,
                holder.claim.owner,
                holder.claim.until.to_rfc3339(),
                waited.as_secs()
            ),
            EngineError::Reset(why) => write!(f, "nothing was reset: {why}"),
            EngineError::Refused(why) => write!(f, "nothing was done: {why}"),
            EngineError::NotFound(what) => write!(f, "nothing was done: {what}"),
            EngineError::Changed(difference) => write!(
                f,
                "planning now does not give what the plan says ({difference}); a time-bound fact \
                 may have changed since it was made (a lease started or ended, an end date or grace \
                 period passed), or the file was edited; nothing was applied, plan again"
            ),
        }
    }
}

/// `90000` seconds as `25h`, `86400` as `24h`, `600` as `10m`.
fn humantime_secs(secs: u64) -> String {
    if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// A leaver event's identity: terminated, and, when the source gives no
/// end date, leaving at the event's moment (grace periods count from it).
fn leaving(mut who: Identity, now: chrono::DateTime<chrono::Utc>) -> Identity {
    who.state = LifecycleState::Terminated;
    if who.end_date.is_none() && who.left_at.is_none() {
        who.left_at = Some(now);
        who.end_date = Some(now.date_naive());
    }
    who
}

/// The heartbeat loop never ends: its branch of the select cannot win.
fn unreachable_heartbeat<T>() -> Result<T, EngineError> {
    Err(EngineError::Store(prov_core::Error::new(
        prov_core::ErrorKind::Unexpected,
        "the claim heartbeat ended",
    )))
}

/// How long a run waits for a target another run holds, by default.
pub const DEFAULT_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a claim lives without a heartbeat (renewed every third of it).
const CLAIM_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a saved plan may wait to be applied, by default.
pub const DEFAULT_MAX_PLAN_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Clocks of two machines may disagree by this much: a plan dated later
/// than now by more is refused.
const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

fn short(f: &str) -> &str {
    f.get(..16).unwrap_or(f)
}

impl std::error::Error for EngineError {}

/// A lifecycle event for one identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
#[non_exhaustive]
pub enum Event {
    /// Someone new: their record as the source has it.
    Joiner(Identity),
    /// Someone whose attributes changed (department, title, manager).
    Mover(Identity),
    /// Someone leaving: their record (marked terminated if the source has
    /// not done so yet, with today as the end date when none is given).
    Leaver(Identity),
}

impl Event {
    fn name(&self) -> &'static str {
        match self {
            Event::Joiner(_) => "joiner",
            Event::Mover(_) => "mover",
            Event::Leaver(_) => "leaver",
        }
    }
}

/// Plan options limited to what each connector can do (disable, delete,
/// rename), so that plans never ask a target for what it cannot do, and
/// comparing logins as each target does.
fn capped(
    mut options: PlanOptions,
    connectors: &BTreeMap<TargetId, Arc<dyn Connector>>,
) -> PlanOptions {
    for (t, conn) in connectors {
        let caps = conn.capabilities();
        let o = options
            .targets
            .entry(t.clone())
            .or_insert_with(|| options.default.clone());
        o.can_disable &= caps.disable;
        o.can_delete &= caps.delete;
        o.can_rename &= caps.rename;
        o.can_create_entitlements &= caps.create_entitlement && caps.list_entitlements;
        o.login_case_insensitive = caps.login_case_insensitive;
        o.max_login_len = caps.max_login_len;
    }
    options
}

/// The policy, the targets and the store, ready to plan and apply.
pub struct Engine {
    policy: Arc<CompiledPolicy>,
    connectors: BTreeMap<TargetId, Arc<dyn Connector>>,
    store: Arc<dyn Store>,
    plan_options: PlanOptions,
    executor: Executor,
    clock: Arc<dyn Clock>,
    max_plan_age: std::time::Duration,
    lock_wait: std::time::Duration,
    claim_ttl: std::time::Duration,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("targets", &self.connectors.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine with default options and the system clock.
    pub fn new(
        policy: Arc<CompiledPolicy>,
        connectors: BTreeMap<TargetId, Arc<dyn Connector>>,
        store: Arc<dyn Store>,
    ) -> Self {
        let executor = Executor::new(connectors.clone(), ApplyOptions::default());
        let plan_options = capped(PlanOptions::default(), &connectors);
        Engine {
            policy,
            connectors,
            store,
            plan_options,
            executor,
            clock: Arc::new(SystemClock),
            max_plan_age: DEFAULT_MAX_PLAN_AGE,
            lock_wait: DEFAULT_LOCK_WAIT,
            claim_ttl: CLAIM_TTL,
        }
    }

    /// How long a run waits for targets another run holds before it is
    /// refused with [`EngineError::Busy`] (builder style; default 30 s).
    pub fn with_lock_wait(mut self, wait: std::time::Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// How long a saved plan may wait before [`apply`](Self::apply) refuses
    /// it (builder style; default 24 hours).
    pub fn with_max_plan_age(mut self, age: std::time::Duration) -> Self {
        self.max_plan_age = age;
        self
    }

    /// Sets planning options (builder style).
    pub fn with_plan_options(mut self, options: PlanOptions) -> Self {
        self.plan_options = capped(options, &self.connectors);
        self
    }

    /// The options plans are made with: those given to
    /// [`with_plan_options`](Self::with_plan_options), limited by what each
    /// connector can do and comparing logins as each target does.
    pub fn plan_options(&self) -> &PlanOptions {
        &self.plan_options
    }

    /// Sets apply options (builder style).
    pub fn with_apply_options(mut self, options: ApplyOptions) -> Self {
        let actor = self.executor.actor().to_owned();
        self.executor = Executor::new(self.connectors.clone(), options)
            .with_clock(Arc::clone(&self.clock))
            .with_actor(actor);
        self
    }

    /// Reports apply progress as operations finish (builder style; set it
    /// after `with_apply_options`, which makes a new executor).
    pub fn with_progress(mut self, progress: crate::executor::Progress) -> Self {
        self.executor = self.executor.with_progress(progress);
        self
    }

    /// Uses `clock` for planning and audit timestamps (builder style).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.executor = self.executor.with_clock(Arc::clone(&clock));
        self.clock = clock;
        self
    }

    /// Names who acts, in the audit log (builder style; default
    /// `prov-engine`). The `prov` command passes its `actor` setting and
    /// the OS user. Set it after `with_apply_options`, which makes a new
    /// executor.
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.executor = self.executor.with_actor(actor);
        self
    }

    /// Stops applying once `stop` is set (builder style; see
    /// [`Executor::with_stop`]). Set it after `with_apply_options`.
    pub fn with_stop(mut self, stop: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.executor = self.executor.with_stop(stop);
        self
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub(crate) fn executor(&self) -> &Executor {
        &self.executor
    }

    /// The connector of `target`, if the engine has one.
    pub fn connector(&self, target: &TargetId) -> Option<&dyn Connector> {
        self.connectors.get(target).map(AsRef::as_ref)
    }

    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// The compiled policy.
    pub fn policy(&self) -> &CompiledPolicy {
        &self.policy
    }

    /// Checks every target (each connector's `check`) and the store; one
    /// failing does not hide the others.
    pub async fn check(&self) -> Vec<(String, prov_core::Result<()>)> {
        let mut out = vec![("store".to_owned(), self.store.links().await.map(|_| ()))];
        for (t, conn) in &self.connectors {
            out.push((t.to_string(), conn.check().await));
        }
        out
    }

    /// What each target's connector noticed and adapted to (see
    /// [`Connector::notices`]), after [`check`](Self::check).
    pub fn notices(&self) -> Vec<(TargetId, String)> {
        self.connectors
            .iter()
            .flat_map(|(t, conn)| conn.notices().into_iter().map(|n| (t.clone(), n)))
            .collect()
    }

    /// The entitlements of each target that creates them (see
    /// [`TargetOptions::create_entitlements`](crate::TargetOptions)), listed
    /// now, and the entitlement ledger.
    async fn entitlements_now(
        &self,
    ) -> Result<
        (
            BTreeMap<TargetId, Vec<prov_core::Entitlement>>,
            Vec<crate::ledger::EntitlementRecord>,
        ),
        EngineError,
    > {
        let mut listed = BTreeMap::new();
        for (t, conn) in &self.connectors {
            let o = self.plan_options.for_target(t);
            if !(o.create_entitlements && o.can_create_entitlements) {
                continue;
            }
            let all = conn
                .list_all_entitlements()
                .await
                .map_err(|error| EngineError::Target {
                    target: t.clone(),
                    error,
                })?;
            listed.insert(t.clone(), all);
        }
        let created = if listed.is_empty() {
            Vec::new()
        } else {
            self.store
                .created_entitlements()
                .await
                .map_err(EngineError::Store)?
        };
        Ok((listed, created))
    }

    /// Every target's accounts, listed now.
    pub async fn actual(&self) -> Result<BTreeMap<TargetId, Vec<Account>>, EngineError> {
        let mut out = BTreeMap::new();
        for (t, conn) in &self.connectors {
            let accounts = conn
                .list_all_accounts()
                .await
                .map_err(|error| EngineError::Target {
                    target: t.clone(),
                    error,
                })?;
            out.insert(t.clone(), accounts);
        }
        Ok(out)
    }

    /// A full plan for everyone the sources know (after [`recover`](Self::recover)).
    ///
    /// The identities are first adjusted by the leavers the store
    /// remembers ([`crate::leavers`]): a leaver recorded by an event stays
    /// terminated whatever the export says (until it shows the
    /// termination, a re-hire, or a person clears the record), and each
    /// linked identity gone from the sources is planned as a leaver.
    pub async fn plan(&self, identities: &[Identity]) -> Result<Plan, EngineError> {
        Ok(self.plan_departures(identities).await?.0)
    }

    /// [`plan`](Self::plan), with the leaver records an apply of it writes.
    async fn plan_departures(
        &self,
        identities: &[Identity],
    ) -> Result<(Plan, crate::leavers::Departures), EngineError> {
        self.recover().await?;
        let actual = self.actual().await?;
        let links = self.store.links().await.map_err(EngineError::Store)?;
        let leases = self.active_leases().await?;
        let records = self.store.leavers().await.map_err(EngineError::Store)?;
        let now = self.clock.now();
        let mut departures =
            crate::leavers::departures(identities, &records, &links, now, self.executor.actor());
        let planned = std::mem::take(&mut departures.identities);
        let extra = Extra::new(&[], &leases);
        let resolutions = crate::planner::resolve_all(&self.policy, &planned, now, extra);
        let grants = self.grants_for(&resolutions, &links).await?;
        let (listed, created) = self.entitlements_now().await?;
        let input = PlanInput::new(&self.policy, &planned, now, &actual, &links)
            .with_extra(extra)
            .with_grants(&grants)
            .with_entitlements(&listed, &created);
        let mut the_plan = crate::planner::plan_resolved(&input, &resolutions, &self.plan_options);
        the_plan.seal();
        Ok((the_plan, departures))
    }

    /// The grant ledger's records of the linked accounts of identities
    /// that break a rule with `resolve = "remove_newer"` (none when no
    /// identity does, which is the common case: nothing is read).
    async fn grants_for(
        &self,
        resolutions: &[prov_resolver::Resolution],
        links: &[crate::ledger::Link],
    ) -> Result<Vec<crate::ledger::GrantRecord>, EngineError> {
        let affected: std::collections::HashSet<&prov_core::IdentityId> = resolutions
            .iter()
            .filter(|r| r.breaks_sod() && self.policy.breaks_remove_newer(r))
            .map(|r| &r.identity)
            .collect();
        let mut out = Vec::new();
        if affected.is_empty() {
            return Ok(out);
        }
        for l in links.iter().filter(|l| affected.contains(&l.identity)) {
            out.extend(
                self.store
                    .grants_of(&l.target, &l.account)
                    .await
                    .map_err(EngineError::Store)?,
            );
        }
        Ok(out)
    }

    /// Writes what an applied plan learnt about leavers: new records (first
    /// seen terminated without a date, or gone from the sources), and
    /// removes records that no longer apply (a re-hire, a return).
    async fn record_departures(
        &self,
        departures: &crate::leavers::Departures,
    ) -> Result<(), EngineError> {
        for r in &departures.new {
            self.store.put_leaver(r).await.map_err(EngineError::Store)?;
        }
        for id in &departures.stale {
            self.store
                .remove_leaver(id)
                .await
                .map_err(EngineError::Store)?;
        }
        Ok(())
    }

    /// Applies a plan made by [`plan`](Self::plan) from `identities`,
    /// exactly as it was reviewed, or not at all.
    ///
    /// Refused, with nothing applied, when: its content does not match its
    /// digest (edited after it was made) or it has another format version
    /// ([`EngineError::Tampered`]); it is older than the maximum plan age
    /// ([`EngineError::Expired`]); anything it was made from has changed
    /// ([`EngineError::Stale`]); or planning now gives other operations,
    /// blocks or problems ([`EngineError::Changed`], naming the first
    /// difference: a lease that ended, a grace period that passed, or an
    /// edit re-sealed by hand). What runs is the plan made now, so the
    /// deletion safeguard is evaluated at apply time, never read from the file.
    pub async fn apply(
        &self,
        saved: &Plan,
        identities: &[Identity],
    ) -> Result<ApplyReport, EngineError> {
        self.claimed(|run| self.apply_in(run, saved, identities))
            .await
    }

    async fn apply_in(
        &self,
        run: String,
        saved: &Plan,
        identities: &[Identity],
    ) -> Result<ApplyReport, EngineError> {
        if saved.version != crate::plan::PLAN_VERSION {
            return Err(EngineError::Tampered(format!(
                "it is plan format {} and this prov reads format {}",
                saved.version,
                crate::plan::PLAN_VERSION
            )));
        }
        if saved.digest.is_empty() || saved.digest != saved.content_digest() {
            return Err(EngineError::Tampered(
                "its content does not match its digest: it was edited after it was made".to_owned(),
            ));
        }
        let now = self.clock.now();
        let max = chrono::TimeDelta::from_std(self.max_plan_age).unwrap_or(chrono::TimeDelta::MAX);
        let too_old = now.signed_duration_since(saved.planned_for) > max;
        let from_the_future = saved.planned_for.signed_duration_since(now) > CLOCK_SKEW;
        if too_old || from_the_future {
            return Err(EngineError::Expired {
                made: saved.planned_for,
                max_age: self.max_plan_age,
            });
        }
        let (fresh, departures) = self.plan_departures(identities).await?;
        if fresh.fingerprint != saved.fingerprint {
            return Err(EngineError::Stale {
                planned: saved.fingerprint.clone(),
                current: fresh.fingerprint,
            });
        }
        if let Some(difference) = saved.first_difference(&fresh) {
            return Err(EngineError::Changed(difference));
        }
        let report = self
            .executor
            .apply_in(run, &fresh, self.store.as_ref())
            .await
            .map_err(EngineError::Apply)?;
        self.record_departures(&departures).await?;
        Ok(report)
    }

    /// Plans and applies for everyone: a full reconcile.
    pub async fn reconcile(
        &self,
        identities: &[Identity],
    ) -> Result<(Plan, ApplyReport), EngineError> {
        self.claimed(|run| async move {
            let (the_plan, departures) = self.plan_departures(identities).await?;
            let applied = self.applied(run, the_plan).await?;
            self.record_departures(&departures).await?;
            Ok(applied)
        })
        .await
    }

    /// Applies a plan just made in this run, returning it with its report.
    async fn applied(&self, run: String, plan: Plan) -> Result<(Plan, ApplyReport), EngineError> {
        let report = self
            .executor
            .apply_in(run, &plan, self.store.as_ref())
            .await
            .map_err(EngineError::Apply)?;
        Ok((plan, report))
    }

    /// Sets `who`'s secret attributes on `target` again, computed now from
    /// the policy (an explicit reset: a person lost an initial password).
    /// Secrets are otherwise set only on create; this is the one way a
    /// plan sets them later. Runs under the engine's claim, as a one-operation
    /// plan (an `update` naming the attributes, never their values), audited.
    pub async fn reset_secrets(
        &self,
        who: &Identity,
        target: &TargetId,
    ) -> Result<(Plan, ApplyReport), EngineError> {
        self.claimed(|run| self.reset_in(run, who, target)).await
    }

    async fn reset_in(
        &self,
        run: String,
        who: &Identity,
        target: &TargetId,
    ) -> Result<(Plan, ApplyReport), EngineError> {
        use crate::plan::{AccountRef, OpKind, PLAN_VERSION, PlannedOp};
        self.recover().await?;
        let now = self.clock.now();
        let links: Vec<_> = self
            .store
            .links_of(&who.id)
            .await
            .map_err(EngineError::Store)?
            .into_iter()
            .filter(|l| &l.target == target)
            .collect();
        let [link] = links.as_slice() else {
            return Err(EngineError::Reset(format!(
                "{} has {} linked accounts on {target}; a reset needs exactly one",
                who.id,
                links.len()
            )));
        };
        let leases = granting(
            &self
                .store
                .leases_of(&who.id)
                .await
                .map_err(EngineError::Store)?,
        );
        let res = self.policy.resolve_with(who, now, Extra::new(&[], &leases));
        let secrets = self
            .policy
            .targets_of(&res)
            .find(|v| v.target == Some(target))
            .and_then(|v| v.account)
            .map(|a| a.secrets.clone())
            .unwrap_or_default();
        if secrets.is_empty() {
            return Err(EngineError::Reset(format!(
                "the policy gives {} no secret attribute on {target} (targets.{target}.secret)",
                who.id
            )));
        }
        let op = PlannedOp::new(
            target.clone(),
            Some(who.id.clone()),
            OpKind::Update {
                account: AccountRef::Existing {
                    id: link.account.clone(),
                },
                delta: prov_core::AttributeDelta::default(),
                secret: secrets.keys().cloned().collect(),
            },
            vec![format!(
                "reset of secret attributes, asked by {}",
                self.executor.actor()
            )],
        );
        let mut the_plan = Plan {
            version: PLAN_VERSION,
            planned_for: now,
            fingerprint: String::new(),
            secrets: BTreeMap::from([(op.id.clone(), secrets)]),
            ops: vec![op],
            orphans: Vec::new(),
            conflicts: Vec::new(),
            blocked: Vec::new(),
            problems: Vec::new(),
            held: Vec::new(),
            sod: Vec::new(),
            digest: String::new(),
        };
        the_plan.seal();
        let report = self
            .executor
            .apply_in(run, &the_plan, self.store.as_ref())
            .await
            .map_err(EngineError::Apply)?;
        Ok((the_plan, report))
    }

    /// Handles one identity's event at once: reads only that identity's
    /// accounts (by link, or by login for correlation), plans for them
    /// alone and applies.
    pub async fn handle(&self, event: Event) -> Result<(Plan, ApplyReport), EngineError> {
        self.claimed(|run| self.handle_in(run, event)).await
    }

    async fn handle_in(
        &self,
        run: String,
        event: Event,
    ) -> Result<(Plan, ApplyReport), EngineError> {
        // A leaver is remembered before anything is sent: a later export
        // that still says active does not give the access back.
        if let Event::Leaver(who) = &event {
            let now = self.clock.now();
            let who = leaving(who.clone(), now);
            let left_at = prov_resolver::leaving_moment(&who).map_or(now, |t| t.min(now));
            let record = crate::leavers::LeaverRecord::new(
                who.id.clone(),
                left_at,
                crate::leavers::Departure::Event,
                self.executor.actor(),
            );
            self.store
                .put_leaver(&record)
                .await
                .map_err(EngineError::Store)?;
        }
        let the_plan = self.plan_event(&event).await?;
        self.applied(run, the_plan).await
    }

    /// The plan an event makes now (after [`recover`](Self::recover)),
    /// without applying it: what [`handle`](Self::handle) would do.
    ///
    /// It decides as a full [`plan`](Self::plan) does for that identity, by
    /// the same planner: the identity's linked accounts are read one by
    /// one, and where it has none on a target, the accounts each of the
    /// target's correlation rules could match are looked up (by the
    /// target's filter where its capabilities offer one, otherwise by
    /// listing it) with the links that hold them. A link whose account the
    /// target no longer has is forgotten, as a full plan forgets it.
    pub async fn plan_event(&self, event: &Event) -> Result<Plan, EngineError> {
        let kind = event.name();
        let mut who = match event {
            Event::Joiner(i) | Event::Mover(i) | Event::Leaver(i) => i.clone(),
        };
        if kind == "leaver" {
            who = leaving(who, self.clock.now());
        }
        self.plan_people(vec![who], &format!("{kind} event")).await
    }

    /// Runs `work` as a run holding a claim on every target of this engine
    /// (one run at a time per target, across processes sharing the store),
    /// renewed while it runs and released after. A target another live run
    /// holds is waited for up to the lock wait, then refused, naming the
    /// holder. A claim of a process on this host that is gone (killed) is
    /// taken over at once; one of another host lapses after its time to live.
    async fn claimed<'a, T, F, Fut>(&'a self, work: F) -> Result<T, EngineError>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, EngineError>> + 'a,
    {
        use futures_util::future::{Either, select};
        let run = self.executor.run_id();
        let owner = crate::executor::owner();
        let targets: Vec<TargetId> = self.connectors.keys().cloned().collect();
        let ttl = chrono::TimeDelta::from_std(self.claim_ttl).unwrap_or(chrono::TimeDelta::MAX);
        let claim = |now: chrono::DateTime<chrono::Utc>| {
            Claim::new(
                run.clone(),
                owner.clone(),
                now.checked_add_signed(ttl)
                    .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC),
            )
        };
        let started = std::time::Instant::now();
        let mut dead: Vec<String> = Vec::new();
        loop {
            let now = self.clock.now();
            match self
                .store
                .claim(&claim(now), &targets, now, &dead)
                .await
                .map_err(EngineError::Store)?
            {
                None => break,
                Some(h)
                    if crate::executor::is_gone(&h.claim.owner) && !dead.contains(&h.claim.run) =>
                {
                    dead.push(h.claim.run);
                }
                Some(h) if started.elapsed() >= self.lock_wait => {
                    return Err(EngineError::Busy {
                        holder: h,
                        waited: self.lock_wait,
                    });
                }
                Some(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
        let heartbeat = async {
            loop {
                tokio::time::sleep(self.claim_ttl / 3).await;
                // A failed renewal is retried at the next beat; the claim
                // lapses only if every beat of a whole time to live fails.
                let _ = self.store.renew(&claim(self.clock.now())).await;
            }
        };
        let result = match select(Box::pin(work(run.clone())), Box::pin(heartbeat)).await {
            Either::Left((r, _)) => r,
            Either::Right(((), _)) => unreachable_heartbeat(),
        };
        let released = self.store.release(&run).await;
        match (result, released) {
            (Ok(v), Ok(())) => Ok(v),
            (Ok(_), Err(e)) => Err(EngineError::Store(e)),
            (Err(e), _) => Err(e),
        }
    }

    pub(crate) async fn find_by_login(
        &self,
        conn: &dyn Connector,
        login: &str,
    ) -> prov_core::Result<Vec<Account>> {
        conn.accounts_with_login(login).await
    }

    /// Approved leases from the store, as the resolver takes them (expired
    /// ones included: the resolver checks each window against the time).
    async fn active_leases(&self) -> Result<Vec<Lease>, EngineError> {
        Ok(granting(
            &self.store.leases().await.map_err(EngineError::Store)?,
        ))
    }

    async fn lease(&self, id: &str) -> Result<LeaseRecord, LeaseError> {
        self.store
            .lease(id)
            .await
            .map_err(|e| LeaseError::Store(e.to_string()))?
            .ok_or_else(|| LeaseError::NotFound(id.to_owned()))
    }

    /// Writes a decision on a lease (and its audit record) only if the
    /// lease is still in state `expected`: two decisions at once, in one
    /// process or two, never both succeed.
    async fn decide(
        &self,
        rec: &LeaseRecord,
        expected: LeaseState,
        actor: &str,
        action: &'static str,
        outcome: String,
    ) -> Result<(), LeaseError> {
        let event = self.lease_event(rec, actor, action, outcome);
        let changed = self
            .store
            .decide_lease(rec, expected, event)
            .await
            .map_err(|e| LeaseError::Store(e.to_string()))?;
        if changed {
            return Ok(());
        }
        // Someone decided first: report the state it is in now.
        let now = self.lease(&rec.id).await?;
        Err(LeaseError::State {
            id: now.id,
            state: now.state,
            action: match action {
                "approve" => "approved",
                "reject" => "rejected",
                _ => "revoked",
            },
        })
    }

    /// The audit record of a lease decision (`lease.approve ID ROLE`).
    fn lease_event(
        &self,
        rec: &LeaseRecord,
        actor: &str,
        action: &str,
        outcome: String,
    ) -> AuditEvent {
        let mut event = AuditEvent::new(
            self.clock.now(),
            actor,
            format!("lease.{action} {} {}", rec.id, rec.request.role),
            rec.request.reason.clone(),
            outcome,
        );
        event.identity = Some(rec.request.identity.clone());
        event
    }

    async fn save_lease(
        &self,
        rec: &LeaseRecord,
        actor: &str,
        action: &str,
        outcome: String,
    ) -> Result<(), LeaseError> {
        self.store
            .put_lease(rec)
            .await
            .map_err(|e| LeaseError::Store(e.to_string()))?;
        let event = self.lease_event(rec, actor, action, outcome);
        self.store
            .append_audit(vec![event])
            .await
            .map_err(|e| LeaseError::Store(e.to_string()))?;
        Ok(())
    }

    /// Records a lease request, checked against the policy (a duration past
    /// the role's maximum is refused, naming the maximum). It gives no
    /// access until approved.
    pub async fn request_lease(
        &self,
        req: LeaseRequest,
        identities: &[Identity],
    ) -> Result<LeaseRecord, LeaseError> {
        let now = self.clock.now();
        leases::check_request(&self.policy, &req, now)?;
        let who = self.present(identities, &req.identity, now, "the lease's identity")?;
        self.sod_refusal(who, &req.role, now).await?;
        // A readable, stable id; two requests alike in every field at the
        // same instant still get different ids.
        let taken: std::collections::BTreeSet<String> = self
            .store
            .leases()
            .await
            .map_err(|e| LeaseError::Store(e.to_string()))?
            .into_iter()
            .map(|l| l.id)
            .collect();
        let mut n = 0u32;
        let id = loop {
            use sha2::{Digest, Sha256};
            let mut h = Sha256::new();
            for part in [
                req.identity.as_str(),
                &req.role,
                &req.requested_by,
                &req.reason,
                &now.to_rfc3339(),
                &n.to_string(),
            ] {
                h.update(part.as_bytes());
                h.update([0u8]);
            }
            let id = format!("lease-{}", crate::plan::hex(&h.finalize()[..6]));
            if !taken.contains(&id) {
                break id;
            }
            n += 1;
        };
        let rec = leases::new_record(id, req, now)?;
        let outcome = format!("requested; to be decided by {}", rec.decide_by.to_rfc3339());
        self.save_lease(&rec, &rec.request.requested_by.clone(), "request", outcome)
            .await?;
        Ok(rec)
    }

    /// Approves a request: access starts now (or at the requested start, if
    /// later) and lasts the requested duration. Apply it with
    /// [`handle`](Self::handle) or the next reconcile.
    ///
    /// Four eyes: refused unless the approver is an identity of
    /// `identities`, active, and authorised by the policy for the role
    /// (named in its `approvers`, or holding one of its `approver_roles`);
    /// the approver is never the requester nor the one who gets the
    /// access; and the lease's identity is still there and active.
    pub async fn approve_lease(
        &self,
        id: &str,
        approver: &str,
        identities: &[Identity],
    ) -> Result<LeaseRecord, LeaseError> {
        let mut rec = self.lease(id).await?;
        let now = self.clock.now();
        self.may_approve(&rec.id, &rec.request, approver, identities, now)?;
        let who = self.present(
            identities,
            &rec.request.identity,
            now,
            "the lease's identity",
        )?;
        self.sod_refusal(who, &rec.request.role, now).await?;
        leases::approve(&mut rec, approver, now)?;
        let outcome = format!(
            "approved; access from {} until {}",
            rec.valid_from.map(|t| t.to_rfc3339()).unwrap_or_default(),
            rec.valid_until.map(|t| t.to_rfc3339()).unwrap_or_default()
        );
        self.decide(&rec, LeaseState::Requested, approver, "approve", outcome)
            .await?;
        Ok(rec)
    }

    /// Requests and approves in one step: a grant by someone entitled to decide.
    /// The approver is checked before anything is recorded, as
    /// [`approve_lease`](Self::approve_lease) checks it.
    pub async fn grant_lease(
        &self,
        req: LeaseRequest,
        approver: &str,
        identities: &[Identity],
    ) -> Result<LeaseRecord, LeaseError> {
        let now = self.clock.now();
        leases::check_request(&self.policy, &req, now)?;
        self.may_approve("(new)", &req, approver, identities, now)?;
        let who = self.present(identities, &req.identity, now, "the lease's identity")?;
        self.sod_refusal(who, &req.role, now).await?;
        let rec = self.request_lease(req, identities).await?;
        self.approve_lease(&rec.id, approver, identities).await
    }

    /// `id` is an identity of `identities`, active at `now`.
    fn present<'a>(
        &self,
        identities: &'a [Identity],
        id: &prov_core::IdentityId,
        now: chrono::DateTime<chrono::Utc>,
        what: &str,
    ) -> Result<&'a Identity, LeaseError> {
        let who = identities
            .iter()
            .find(|i| &i.id == id)
            .ok_or_else(|| LeaseError::Policy(format!("{what} `{id}` is not in the sources")))?;
        if self.policy.resolve(who, now).state == LifecycleState::Terminated {
            return Err(LeaseError::Policy(format!("{what} `{id}` has left")));
        }
        Ok(who)
    }

    /// Whether `approver` may approve lease `id`, asked for as `req`, now
    /// (see [`approve_lease`](Self::approve_lease)).
    fn may_approve(
        &self,
        id: &str,
        req: &LeaseRequest,
        approver: &str,
        identities: &[Identity],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), LeaseError> {
        let same = |a: &str, b: &str| a.trim().eq_ignore_ascii_case(b.trim());
        if same(approver, &req.requested_by) {
            return Err(LeaseError::Policy(format!(
                "`{approver}` asked for lease `{}` and cannot also approve it: another approver must",
                id
            )));
        }
        if same(approver, req.identity.as_str()) {
            return Err(LeaseError::Policy(format!(
                "`{approver}` gets the access of lease `{}` and cannot approve it",
                id
            )));
        }
        self.present(identities, &req.identity, now, "the lease's identity")?;
        let who = self.present(identities, &approver.into(), now, "approver")?;
        self.policy
            .may_approve(&req.role, who, now)
            .map_err(LeaseError::Policy)
    }

    /// Refuses a lease of `role` for `who` that would complete a
    /// separation-of-duties rule enforced as `prevent` (one the identity
    /// does not break already), naming the rule.
    async fn sod_refusal(
        &self,
        who: &Identity,
        role: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), LeaseError> {
        let held = granting(
            &self
                .store
                .leases_of(&who.id)
                .await
                .map_err(|e| LeaseError::Store(e.to_string()))?,
        );
        let broken = |leases: &[Lease]| -> Vec<prov_resolver::SodViolation> {
            let res = self.policy.resolve_with(who, now, Extra::new(&[], leases));
            self.policy
                .sod_violations(&res)
                .into_iter()
                .filter(|v| v.enforce == prov_resolver::Enforce::Prevent)
                .collect()
        };
        let before: Vec<String> = broken(&held).into_iter().map(|v| v.rule).collect();
        let mut with = held;
        with.push(Lease::new(
            "sod-check",
            who.id.clone(),
            role,
            now,
            now + chrono::TimeDelta::minutes(1),
        ));
        match broken(&with)
            .into_iter()
            .find(|v| !before.contains(&v.rule))
        {
            None => Ok(()),
            Some(v) => Err(LeaseError::Policy(format!(
                "a lease of role `{role}` for `{}` would complete separation-of-duties rule {}{}; refused",
                who.id,
                v.rule,
                v.description.map(|d| format!(" ({d})")).unwrap_or_default()
            ))),
        }
    }

    /// Rejects a request.
    pub async fn reject_lease(
        &self,
        id: &str,
        who: &str,
        note: &str,
    ) -> Result<LeaseRecord, LeaseError> {
        let mut rec = self.lease(id).await?;
        if rec.state != LeaseState::Requested {
            return Err(LeaseError::State {
                id: rec.id,
                state: rec.state,
                action: "rejected",
            });
        }
        rec.state = LeaseState::Rejected;
        rec.decided_by = Some(who.to_owned());
        rec.decided_at = Some(self.clock.now());
        rec.note = Some(note.to_owned());
        self.decide(
            &rec,
            LeaseState::Requested,
            who,
            "reject",
            format!("rejected: {note}"),
        )
        .await?;
        Ok(rec)
    }

    /// Ends an approved lease now (access goes at the next apply).
    pub async fn revoke_lease(&self, id: &str, who: &str) -> Result<LeaseRecord, LeaseError> {
        let mut rec = self.lease(id).await?;
        if rec.state != LeaseState::Approved {
            return Err(LeaseError::State {
                id: rec.id,
                state: rec.state,
                action: "revoked",
            });
        }
        let now = self.clock.now();
        rec.state = LeaseState::Revoked;
        rec.valid_until = rec.valid_until.map(|u| u.min(now));
        if let (Some(from), Some(until)) = (rec.valid_from, rec.valid_until)
            && until < from
        {
            rec.valid_until = Some(from);
        }
        rec.note = Some(format!("revoked by {who}"));
        self.decide(
            &rec,
            LeaseState::Approved,
            who,
            "revoke",
            "revoked".to_owned(),
        )
        .await?;
        Ok(rec)
    }

    /// Every lease, by id.
    pub async fn leases(&self) -> Result<Vec<LeaseRecord>, LeaseError> {
        self.store
            .leases()
            .await
            .map_err(|e| LeaseError::Store(e.to_string()))
    }

    /// The next instant after `after` at which an approved lease starts or
    /// ends: when a scheduler should reconcile next.
    pub async fn next_lease_change(
        &self,
        after: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, LeaseError> {
        let all = self.leases().await?;
        Ok(all
            .iter()
            .filter_map(LeaseRecord::as_lease)
            .flat_map(|l| [l.valid_from, l.valid_until])
            .filter(|t| *t > after)
            .min())
    }

    /// An access review of every account on every target, now.
    pub async fn review(
        &self,
        identities: &[Identity],
    ) -> Result<crate::review::Review, EngineError> {
        let actual = self.actual().await?;
        let links = self.store.links().await.map_err(EngineError::Store)?;
        let leases = self.active_leases().await?;
        Ok(crate::review::review(
            &self.policy,
            identities,
            &actual,
            &links,
            Extra::new(&[], &leases),
            self.clock.now(),
        ))
    }

    /// Why `who` holds `entitlement` on `target` now, leases from the store
    /// included (no chain: the identity does not get it). A target the
    /// policy lacks, or an entitlement no role of it gives there, is
    /// [`EngineError::NotFound`]: "does not get" would hide a typo.
    pub async fn explain(
        &self,
        who: &Identity,
        target: &TargetId,
        entitlement: &prov_core::EntitlementId,
    ) -> Result<Vec<prov_resolver::Chain>, EngineError> {
        // "Does not get" is an answer only for what the policy can give.
        if !self.policy.target_ids().any(|t| t == target) {
            let known: Vec<&str> = self.policy.target_ids().map(TargetId::as_str).collect();
            return Err(EngineError::NotFound(format!(
                "the policy has no target `{target}` (its targets: {})",
                known.join(", ")
            )));
        }
        if !self.policy.manages(target, entitlement) {
            return Err(EngineError::NotFound(format!(
                "no role of the policy gives `{entitlement}` on {target}"
            )));
        }
        let leases = self.active_leases().await?;
        Ok(self.policy.explain_with(
            who,
            target,
            entitlement,
            self.clock.now(),
            Extra::new(&[], &leases),
        ))
    }

    /// What `who` should have now, leases from the store included.
    pub async fn desired(
        &self,
        who: &Identity,
    ) -> Result<prov_resolver::DesiredState, EngineError> {
        let leases = self.active_leases().await?;
        Ok(self.policy.describe(&self.policy.resolve_with(
            who,
            self.clock.now(),
            Extra::new(&[], &leases),
        )))
    }
}

/// The approved leases among `records`, as the resolver takes them.
fn granting(records: &[LeaseRecord]) -> Vec<Lease> {
    records.iter().filter_map(LeaseRecord::as_lease).collect()
}
