//! `Engine`: the policy, the connectors and the store together: plan,
//! apply (refusing stale plans), and handle one identity's event at once.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use prov_core::{
    Account, Clock, Connector, ConnectorExt, Identity, LifecycleState, ListRequest, SystemClock,
    TargetId,
};
use prov_resolver::CompiledPolicy;
use serde::{Deserialize, Serialize};

use crate::executor::{ApplyError, ApplyOptions, ApplyReport, Executor};
use crate::plan::Plan;
use crate::planner::{PlanInput, PlanOptions, fingerprint, plan};
use crate::store::Store;

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
        }
    }
}

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

/// The policy, the targets and the store, ready to plan and apply.
pub struct Engine {
    policy: Arc<CompiledPolicy>,
    connectors: BTreeMap<TargetId, Arc<dyn Connector>>,
    store: Arc<dyn Store>,
    plan_options: PlanOptions,
    executor: Executor,
    clock: Arc<dyn Clock>,
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
        Engine {
            policy,
            connectors,
            store,
            plan_options: PlanOptions::default(),
            executor,
            clock: Arc::new(SystemClock),
        }
    }

    /// Sets planning options (builder style).
    pub fn with_plan_options(mut self, options: PlanOptions) -> Self {
        self.plan_options = options;
        self
    }

    /// Sets apply options (builder style).
    pub fn with_apply_options(mut self, options: ApplyOptions) -> Self {
        self.executor =
            Executor::new(self.connectors.clone(), options).with_clock(Arc::clone(&self.clock));
        self
    }

    /// Uses `clock` for planning and audit timestamps (builder style).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.executor = self.executor.with_clock(Arc::clone(&clock));
        self.clock = clock;
        self
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The compiled policy.
    pub fn policy(&self) -> &CompiledPolicy {
        &self.policy
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

    /// Recovers what a killed run left in the outbox: a create that reached
    /// its target but whose link was never stored is linked now, as created
    /// by the engine (so ownership is not lost); every other unfinished
    /// operation is idempotent and simply re-planned. Writes only to the
    /// store, and records each recovery in the audit log. Returns how many
    /// entries it closed.
    pub async fn recover(&self) -> Result<usize, EngineError> {
        let open = self.store.outbox_open().await.map_err(EngineError::Store)?;
        if open.is_empty() {
            return Ok(0);
        }
        let links = self.store.links().await.map_err(EngineError::Store)?;
        let now = self.clock.now();
        let mut events = Vec::new();
        for entry in &open {
            let op = &entry.op;
            let mut outcome =
                "re-planned: the next plan redoes it if it is still needed".to_owned();
            if let (crate::plan::OpKind::Create { login, .. }, Some(who), Some(conn)) =
                (&op.kind, &op.identity, self.connectors.get(&op.target))
            {
                let found = self
                    .find_by_login(conn.as_ref(), login)
                    .await
                    .map_err(|error| EngineError::Target {
                        target: op.target.clone(),
                        error,
                    })?;
                if let Some(acct) = found.first() {
                    let linked = links
                        .iter()
                        .any(|l| l.target == op.target && l.account == acct.id);
                    if !linked {
                        let link = crate::planner::Link::new(
                            op.target.clone(),
                            acct.id.clone(),
                            who.clone(),
                            crate::planner::LinkOrigin::Created,
                        );
                        self.store
                            .put_link(&link)
                            .await
                            .map_err(EngineError::Store)?;
                        outcome = format!(
                            "recovered: the account {} was created before the crash; linked as created",
                            acct.id
                        );
                    } else {
                        outcome = "recovered: the account exists and is linked".to_owned();
                    }
                }
            }
            let mut event = crate::audit::AuditEvent::new(
                now,
                "prov-engine",
                format!("recover {}", op.kind.name()),
                format!(
                    "operation {} begun {} was never finished",
                    op.id,
                    entry.begun.to_rfc3339()
                ),
                outcome,
            );
            event.identity.clone_from(&op.identity);
            event.target = Some(op.target.clone());
            events.push(event);
        }
        self.store
            .append_audit(events)
            .await
            .map_err(EngineError::Store)?;
        let ids: Vec<String> = open.iter().map(|e| e.op.id.clone()).collect();
        self.store
            .outbox_finish(&ids)
            .await
            .map_err(EngineError::Store)?;
        Ok(open.len())
    }

    /// A full plan for everyone the sources know (after [`recover`](Self::recover)).
    pub async fn plan(&self, identities: &[Identity]) -> Result<Plan, EngineError> {
        self.recover().await?;
        let actual = self.actual().await?;
        let links = self.store.links().await.map_err(EngineError::Store)?;
        Ok(plan(
            &PlanInput::new(&self.policy, identities, self.clock.now(), &actual, &links),
            &self.plan_options,
        ))
    }

    /// Applies a plan made by [`plan`](Self::plan) from `identities`,
    /// refusing it whole if anything it was made from has changed since.
    pub async fn apply(
        &self,
        plan: &Plan,
        identities: &[Identity],
    ) -> Result<ApplyReport, EngineError> {
        let actual = self.actual().await?;
        let links = self.store.links().await.map_err(EngineError::Store)?;
        let current = fingerprint(&PlanInput::new(
            &self.policy,
            identities,
            self.clock.now(),
            &actual,
            &links,
        ));
        if current != plan.fingerprint {
            return Err(EngineError::Stale {
                planned: plan.fingerprint.clone(),
                current,
            });
        }
        self.executor
            .apply(plan, self.store.as_ref())
            .await
            .map_err(EngineError::Apply)
    }

    /// Plans and applies for everyone: a full reconcile.
    pub async fn reconcile(
        &self,
        identities: &[Identity],
    ) -> Result<(Plan, ApplyReport), EngineError> {
        let the_plan = self.plan(identities).await?;
        let report = self
            .executor
            .apply(&the_plan, self.store.as_ref())
            .await
            .map_err(EngineError::Apply)?;
        Ok((the_plan, report))
    }

    /// Handles one identity's event at once: reads only that identity's
    /// accounts (by link, or by login for correlation), plans for them
    /// alone and applies.
    pub async fn handle(&self, event: Event) -> Result<(Plan, ApplyReport), EngineError> {
        let kind = event.name();
        let mut who = match event {
            Event::Joiner(i) | Event::Mover(i) | Event::Leaver(i) => i,
        };
        let now = self.clock.now();
        if kind == "leaver" && who.state != LifecycleState::Terminated {
            who.state = LifecycleState::Terminated;
            who.end_date = who.end_date.or(Some(now.date_naive()));
        }
        self.recover().await?;
        let links = self.store.links().await.map_err(EngineError::Store)?;
        let res = self.policy.resolve(&who, now);
        let mut actual: BTreeMap<TargetId, Vec<Account>> = BTreeMap::new();
        for (t, conn) in &self.connectors {
            let mut accounts = Vec::new();
            for l in links
                .iter()
                .filter(|l| &l.target == t && l.identity == who.id)
            {
                match conn.get_account(&l.account).await {
                    Ok(a) => accounts.push(a),
                    Err(e) if e.kind() == prov_core::ErrorKind::NotFound => {}
                    Err(error) => {
                        return Err(EngineError::Target {
                            target: t.clone(),
                            error,
                        });
                    }
                }
            }
            if accounts.is_empty() {
                // No linked account: look for one to correlate with, by the login the policy gives.
                let login = self
                    .policy
                    .targets_of(&res)
                    .find(|v| v.target == Some(t))
                    .and_then(|v| v.account.map(|a| a.login.to_owned()));
                if let Some(login) = login {
                    let found =
                        self.find_by_login(conn.as_ref(), &login)
                            .await
                            .map_err(|error| EngineError::Target {
                                target: t.clone(),
                                error,
                            })?;
                    accounts.extend(found);
                }
            }
            actual.insert(t.clone(), accounts);
        }
        let who = [who];
        let input = PlanInput::new(&self.policy, &who, now, &actual, &links).partial();
        let mut the_plan = plan(&input, &self.plan_options);
        for op in &mut the_plan.ops {
            op.reasons.push(format!("{kind} event"));
        }
        let report = self
            .executor
            .apply(&the_plan, self.store.as_ref())
            .await
            .map_err(EngineError::Apply)?;
        Ok((the_plan, report))
    }

    async fn find_by_login(
        &self,
        conn: &dyn Connector,
        login: &str,
    ) -> prov_core::Result<Vec<Account>> {
        if conn
            .capabilities()
            .filter_attributes
            .iter()
            .any(|a| a == "login")
        {
            let page = conn
                .list_accounts(ListRequest::first().with_filter("login", login))
                .await?;
            return Ok(page
                .items
                .into_iter()
                .filter(|a| a.login == login)
                .collect());
        }
        Ok(conn
            .list_all_accounts()
            .await?
            .into_iter()
            .filter(|a| a.login == login)
            .collect())
    }
}
