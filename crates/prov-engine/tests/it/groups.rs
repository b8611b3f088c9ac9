//! Groups the engine creates and retires (issue 16 item 3): on a target
//! with `create_entitlements`, a group the policy names and the target
//! lacks is created before any grant of it and recorded in the
//! entitlement ledger; once no policy names it, its holders lose it and
//! it is deleted. A group the engine did not create is never deleted.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use prov_core::{Clock, Connector, ConnectorExt, Entitlement, EntitlementId, TargetId};
use prov_engine::{
    ApplyError, ApplyOptions, Engine, EngineError, EntitlementRecord, Event, Executor, MemoryStore,
    OpKind, PlanOptions, Store, TargetOptions,
};
use prov_resolver::CompiledPolicy;
use prov_testkit::{ManualClock, MemoryConnector, MemoryLimits};

use crate::planner::{POLICY, connectors, lines, people, person, policy};

struct World {
    ldap: MemoryConnector,
    targets: BTreeMap<TargetId, MemoryConnector>,
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
}

fn ldap() -> TargetId {
    TargetId::new("ldap")
}

/// ldap has only `staff`: `eng` and `sales`, which the policy names, are
/// missing there.
fn world() -> World {
    world_with(MemoryConnector::new().with_entitlements(["staff"]))
}

fn world_with(ldap_conn: MemoryConnector) -> World {
    let mut targets = BTreeMap::new();
    targets.insert(ldap(), ldap_conn.clone());
    targets.insert(
        TargetId::new("github"),
        MemoryConnector::new().with_entitlements(["org:eng"]),
    );
    World {
        ldap: ldap_conn,
        targets,
        store: Arc::new(MemoryStore::new()),
        clock: Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap(),
        )),
    }
}

fn creating() -> PlanOptions {
    let mut opts = PlanOptions::default();
    let mut t = TargetOptions::default();
    t.create_entitlements = true;
    opts.targets.insert(ldap(), t);
    opts
}

impl World {
    fn engine(&self, policy: Arc<CompiledPolicy>, opts: PlanOptions) -> Engine {
        Engine::new(policy, connectors(&self.targets), self.store.clone())
            .with_clock(self.clock.clone())
            .with_plan_options(opts)
    }

    async fn groups(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .ldap
            .list_all_entitlements()
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id.to_string())
            .collect();
        ids.sort();
        ids
    }

    async fn ledger(&self) -> Vec<String> {
        self.store
            .created_entitlements()
            .await
            .unwrap()
            .into_iter()
            .map(|r| format!("{}/{}", r.target, r.entitlement))
            .collect()
    }
}

/// The policy without the sales role's ldap group: `sales` is named by no
/// policy any more.
fn without_sales() -> Arc<CompiledPolicy> {
    compiled(&POLICY.replace("grants.ldap = [\"sales\"]\n", ""))
}

fn compiled(text: &str) -> Arc<CompiledPolicy> {
    Arc::new(
        prov_resolver::Policy::from_toml(text)
            .and_then(|p| p.compile())
            .unwrap_or_else(|e| panic!("{e}")),
    )
}

fn kinds(plan: &prov_engine::Plan) -> Vec<String> {
    plan.ops
        .iter()
        .filter(|o| o.target == ldap())
        .filter(|o| {
            matches!(
                o.kind,
                OpKind::CreateEntitlement { .. }
                    | OpKind::DeleteEntitlement { .. }
                    | OpKind::Revoke { .. }
            )
        })
        .map(|o| o.to_string())
        .map(|s| {
            s.split_once(' ')
                .map_or(s.clone(), |(_, r)| r.trim().to_owned())
        })
        .collect()
}

#[tokio::test]
async fn a_group_the_policy_names_and_the_target_lacks_is_created_before_it_is_granted() {
    let w = world();
    // Without the option the grants fail, as they did before (the LDAP
    // example: 107 grants failed with "group does not exist").
    let plain = w.engine(policy(), PlanOptions::default());
    let plan = plain.plan(&people()).await.unwrap();
    assert!(kinds(&plan).is_empty(), "{:#?}", lines(&plan));
    let report = plain.apply(&plan, &people()).await.unwrap();
    assert!(!report.is_success());
    let failed: Vec<&str> = report.failures().map(|o| o.name.as_str()).collect();
    assert_eq!(failed, ["grant"; 3], "eng twice, sales once: {report:#?}");
    assert_eq!(w.groups().await, ["staff"]);

    let w = world();
    let engine = w.engine(policy(), creating());
    let plan = engine.plan(&people()).await.unwrap();
    assert_eq!(
        kinds(&plan),
        [
            "create_entitlement ldap: eng",
            "create_entitlement ldap: sales"
        ],
        "{:#?}",
        lines(&plan)
    );
    // Each create runs before any grant of its group.
    let phase = |pred: &dyn Fn(&OpKind) -> bool| {
        plan.ops
            .iter()
            .filter(|o| pred(&o.kind))
            .map(|o| o.kind.phase())
            .collect::<Vec<_>>()
    };
    let creates = phase(&|k| matches!(k, OpKind::CreateEntitlement { .. }));
    let grants = phase(&|k| matches!(k, OpKind::Grant { .. }));
    assert!(creates.iter().max() < grants.iter().min());
    assert!(
        plan.ops
            .iter()
            .find(|o| matches!(o.kind, OpKind::CreateEntitlement { .. }))
            .unwrap()
            .reasons[0]
            .contains("the policy names eng and ldap has no such entitlement"),
    );
    let report = engine.apply(&plan, &people()).await.unwrap();
    assert!(report.is_success(), "{:#?}", report.outcomes);
    assert_eq!(w.groups().await, ["eng", "sales", "staff"]);
    assert_eq!(w.ledger().await, ["ldap/eng", "ldap/sales"]);
    let recs = w.store.created_entitlements().await.unwrap();
    assert_eq!(recs[0].created_at, w.clock.now());
    let bob = w.ldap.accounts_with_login("bob.smith").await.unwrap();
    assert!(bob[0].entitlements.contains(&EntitlementId::new("sales")));
    // The next run has nothing to do.
    let (again, report) = engine.reconcile(&people()).await.unwrap();
    assert!(again.is_empty(), "{:#?}", lines(&again));
    assert_eq!(report.calls, 0);
}

#[tokio::test]
async fn a_group_the_engine_created_is_retired_once_no_policy_names_it() {
    let w = world();
    let engine = w.engine(policy(), creating());
    let (_, report) = engine.reconcile(&people()).await.unwrap();
    assert!(report.is_success());
    let writes = w.ldap.stats().writes;

    // The sales role stops granting `sales`; `staff`, which the engine did
    // not create, stops being named too.
    let text = POLICY
        .replace("grants.ldap = [\"sales\"]\n", "")
        .replace("grants.ldap = [\"staff\"]\n", "");
    let engine = w.engine(compiled(&text), creating());
    let plan = engine.plan(&people()).await.unwrap();
    assert_eq!(
        kinds(&plan),
        [
            "revoke  ldap: sales for bob.smith [e2]",
            "delete_entitlement ldap: sales"
        ],
        "{:#?}",
        lines(&plan)
    );
    let delete = plan
        .ops
        .iter()
        .find(|o| matches!(o.kind, OpKind::DeleteEntitlement { .. }))
        .unwrap();
    assert_eq!(
        delete.reasons,
        ["the engine created sales on 2026-11-22, and no policy names it any more"]
    );
    let revoke = plan.ops.iter().find(|o| o.target == ldap()).unwrap();
    assert!(revoke.kind.phase() < delete.kind.phase());
    let report = engine.apply(&plan, &people()).await.unwrap();
    assert!(report.is_success(), "{:#?}", report.outcomes);
    assert_eq!(w.groups().await, ["eng", "staff"], "staff is never deleted");
    assert_eq!(w.ledger().await, ["ldap/eng"]);
    assert!(w.ldap.stats().writes > writes);
    let (again, _) = engine.reconcile(&people()).await.unwrap();
    assert!(again.is_empty(), "{:#?}", lines(&again));

    // Named again, it is created again.
    let engine = w.engine(policy(), creating());
    let (plan, report) = engine.reconcile(&people()).await.unwrap();
    assert!(report.is_success());
    assert_eq!(kinds(&plan), ["create_entitlement ldap: sales"]);
    assert_eq!(w.ledger().await, ["ldap/eng", "ldap/sales"]);
}

#[tokio::test]
async fn a_group_someone_else_made_first_is_used_and_never_deleted() {
    let w = world();
    let engine = w.engine(policy(), creating());
    let plan = engine.plan(&people()).await.unwrap();
    // Between plan and apply, someone creates `eng` by hand.
    w.ldap
        .create_entitlement(&Entitlement::group("eng"))
        .await
        .unwrap();
    // The plan, as reviewed, runs as it was made.
    let report = Executor::new(connectors(&w.targets), ApplyOptions::default())
        .apply(&plan, &*w.store)
        .await
        .unwrap();
    assert!(report.is_success(), "{:#?}", report.outcomes);
    let made = plan
        .ops
        .iter()
        .find(|o| {
            o.kind
                == (OpKind::CreateEntitlement {
                    entitlement: EntitlementId::new("eng"),
                })
        })
        .unwrap();
    let out = report.outcomes.iter().find(|o| o.op == made.id).unwrap();
    assert!(out.unchanged.is_some(), "{out:#?}");
    assert_eq!(w.ledger().await, ["ldap/sales"], "eng is not the engine's");
    // Once no policy names it, it is not deleted.
    let text = POLICY.replace("grants.ldap = [\"eng\"]\n", "");
    let engine = w.engine(compiled(&text), creating());
    let plan = engine.plan(&people()).await.unwrap();
    assert!(kinds(&plan).is_empty(), "{:#?}", lines(&plan));
    assert!(w.groups().await.contains(&"eng".to_owned()));
}

#[tokio::test]
async fn a_created_group_deleted_by_hand_is_forgotten_not_recreated() {
    let w = world();
    let engine = w.engine(policy(), creating());
    engine.reconcile(&people()).await.unwrap();
    w.ldap
        .delete_entitlement(&EntitlementId::new("sales"))
        .await
        .unwrap();
    let engine = w.engine(without_sales(), creating());
    let plan = engine.plan(&people()).await.unwrap();
    assert_eq!(kinds(&plan), ["delete_entitlement ldap: sales"]);
    assert!(plan.ops[0].reasons[0].contains("ldap no longer has it: its record is forgotten"));
    let report = engine.apply(&plan, &people()).await.unwrap();
    assert!(report.is_success(), "{:#?}", report.outcomes);
    assert_eq!(w.ledger().await, ["ldap/eng"]);
    assert_eq!(w.groups().await, ["eng", "staff"]);
}

#[tokio::test]
async fn retiring_a_big_group_is_held_by_the_deletion_safeguard() {
    let w = world();
    let engine = w.engine(policy(), creating());
    let sellers: Vec<_> = (0..8)
        .map(|i| person(&format!("s{i}"), &format!("Sel{i}"), "Ler", "Sales"))
        .collect();
    let (_, report) = engine.reconcile(&sellers).await.unwrap();
    assert!(report.is_success());
    let engine = w.engine(without_sales(), creating());
    let plan = engine.plan(&sellers).await.unwrap();
    assert_eq!(plan.blocked.len(), 1, "{:#?}", plan.blocked);
    assert_eq!(
        plan.blocked[0].entitlement,
        Some(EntitlementId::new("sales"))
    );
    assert_eq!(plan.blocked[0].revoke, 8);
    assert!(matches!(
        engine.apply(&plan, &sellers).await,
        Err(EngineError::Apply(ApplyError::Blocked(_)))
    ));
    assert_eq!(w.groups().await, ["eng", "sales", "staff"]);
}

#[tokio::test]
async fn a_group_whose_members_could_not_all_be_revoked_is_not_deleted() {
    let w = world();
    let engine = w.engine(policy(), creating());
    engine.reconcile(&people()).await.unwrap();
    let engine = w.engine(without_sales(), creating());
    let plan = engine.plan(&people()).await.unwrap();
    // The revoke fails (the target refuses it): the group stays, and so
    // does its record, for the next run.
    let mut conns = connectors(&w.targets);
    conns.insert(
        ldap(),
        Arc::new(NoRevoke(w.ldap.clone())) as Arc<dyn Connector>,
    );
    let report = Executor::new(conns, ApplyOptions::default())
        .apply(&plan, &*w.store)
        .await
        .unwrap();
    let failed: Vec<&str> = report.failures().map(|o| o.name.as_str()).collect();
    assert_eq!(failed, ["revoke", "delete_entitlement"], "{report:#?}");
    assert!(w.groups().await.contains(&"sales".to_owned()));
    assert_eq!(w.ledger().await, ["ldap/eng", "ldap/sales"]);
    // The next run retires it.
    let (plan, report) = engine.reconcile(&people()).await.unwrap();
    assert!(report.is_success(), "{:#?}", report.outcomes);
    assert_eq!(
        kinds(&plan),
        [
            "revoke  ldap: sales for bob.smith [e2]",
            "delete_entitlement ldap: sales"
        ]
    );
    assert_eq!(w.ledger().await, ["ldap/eng"]);
}

#[tokio::test]
async fn a_joiner_event_creates_the_group_it_needs_and_retires_nothing() {
    let w = world();
    let engine = w.engine(policy(), creating());
    let (plan, report) = engine
        .handle(Event::Joiner(person("e9", "Dee", "Ray", "Sales")))
        .await
        .unwrap();
    assert!(report.is_success(), "{:#?}", report.outcomes);
    assert_eq!(kinds(&plan), ["create_entitlement ldap: sales"]);
    assert_eq!(w.ledger().await, ["ldap/sales"]);
    // An event plan sees one person: it never retires a group.
    let engine = w.engine(without_sales(), creating());
    let (plan, _) = engine
        .handle(Event::Joiner(person("e8", "Eve", "Ray", "Engineering")))
        .await
        .unwrap();
    assert_eq!(kinds(&plan), ["create_entitlement ldap: eng"]);
    assert_eq!(w.ledger().await, ["ldap/eng", "ldap/sales"]);
}

#[tokio::test]
async fn a_target_that_cannot_create_groups_is_named_in_the_plan() {
    let mut limits = MemoryLimits::default();
    limits.create_entitlement = false;
    let w = world_with(MemoryConnector::with_limits(limits).with_entitlements(["staff"]));
    let engine = w.engine(policy(), creating());
    let plan = engine.plan(&people()).await.unwrap();
    assert!(kinds(&plan).is_empty());
    assert!(
        plan.problems.iter().any(|p| p
            == "ldap: create_entitlements is set, and its connector cannot create and list \
                entitlements: none are created, and a grant of one the target lacks fails"),
        "{:#?}",
        plan.problems
    );
}

#[tokio::test]
async fn the_entitlement_ledger_lives_in_the_store() {
    let w = world();
    let engine = w.engine(policy(), creating());
    engine.reconcile(&people()).await.unwrap();
    let recs: Vec<EntitlementRecord> = w.store.created_entitlements().await.unwrap();
    assert_eq!(recs.len(), 2);
    // A second engine on the same store knows them.
    let engine = w.engine(without_sales(), creating());
    let plan = engine.plan(&people()).await.unwrap();
    assert!(kinds(&plan).contains(&"delete_entitlement ldap: sales".to_owned()));
}

/// The directory, refusing every revoke.
#[derive(Debug)]
struct NoRevoke(MemoryConnector);

#[prov_core::async_trait]
impl Connector for NoRevoke {
    fn capabilities(&self) -> prov_core::Capabilities {
        self.0.capabilities()
    }
    async fn list_accounts(
        &self,
        req: prov_core::ListRequest,
    ) -> prov_core::Result<prov_core::Page<prov_core::Account>> {
        self.0.list_accounts(req).await
    }
    async fn get_account(
        &self,
        id: &prov_core::AccountId,
    ) -> prov_core::Result<prov_core::Account> {
        self.0.get_account(id).await
    }
    async fn list_entitlements(
        &self,
        req: prov_core::ListRequest,
    ) -> prov_core::Result<prov_core::Page<Entitlement>> {
        self.0.list_entitlements(req).await
    }
    async fn revoke(
        &self,
        _req: prov_core::MembershipChange,
    ) -> prov_core::Result<prov_core::BatchOutcome> {
        Err(prov_core::Error::new(
            prov_core::ErrorKind::PermissionDenied,
            "insufficient access rights",
        ))
    }
    async fn delete_entitlement(&self, id: &EntitlementId) -> prov_core::Result<()> {
        self.0.delete_entitlement(id).await
    }
}

/// An entitlement op left open by a killed apply, on the store.
async fn left_open(w: &World, kind: &str, entitlement: &str) {
    let op: prov_engine::PlannedOp = serde_json::from_value(serde_json::json!({
        "id": format!("op-{kind}-{entitlement}"), "target": "ldap", "identity": null,
        "op": kind, "entitlement": entitlement, "reasons": ["test"]
    }))
    .unwrap();
    w.store
        .outbox_begin(&[prov_engine::OutboxEntry::new(
            "r7",
            "host:1",
            op,
            w.clock.now(),
        )])
        .await
        .unwrap();
}

async fn last_outcome(w: &World) -> String {
    let log = w.store.audit_log().await.unwrap();
    log.last().unwrap().event.outcome.clone()
}

#[tokio::test]
async fn recovery_never_takes_a_group_it_cannot_prove_it_made() {
    let w = world();
    let engine = w.engine(policy(), creating());
    // The create of `eng` was sent and the process killed; `eng` is there
    // now, but nothing says the engine made it (a person may have).
    left_open(&w, "create_entitlement", "eng").await;
    w.ldap
        .create_entitlement(&Entitlement::group("eng"))
        .await
        .unwrap();
    assert_eq!(engine.recover().await.unwrap(), 1);
    let outcome = last_outcome(&w).await;
    assert!(outcome.starts_with("recovered: unknown"), "{outcome}");
    assert!(outcome.contains("never deleted by it"), "{outcome}");
    assert!(w.ledger().await.is_empty());
    // The create of `sales` never landed: not applied, planned again.
    left_open(&w, "create_entitlement", "sales").await;
    assert_eq!(engine.recover().await.unwrap(), 1);
    let outcome = last_outcome(&w).await;
    assert!(outcome.contains("not applied"), "{outcome}");
    let plan = engine.plan(&people()).await.unwrap();
    assert_eq!(kinds(&plan), ["create_entitlement ldap: sales"]);
}

#[tokio::test]
async fn recovery_forgets_a_group_whose_delete_landed_and_keeps_one_whose_did_not() {
    let w = world();
    let engine = w.engine(policy(), creating());
    engine.reconcile(&people()).await.unwrap();
    assert_eq!(w.ledger().await, ["ldap/eng", "ldap/sales"]);
    // The delete of `sales` landed before the kill.
    left_open(&w, "delete_entitlement", "sales").await;
    w.ldap
        .delete_entitlement(&EntitlementId::new("sales"))
        .await
        .unwrap();
    assert_eq!(engine.recover().await.unwrap(), 1);
    let outcome = last_outcome(&w).await;
    assert!(outcome.starts_with("recovered: applied"), "{outcome}");
    assert_eq!(w.ledger().await, ["ldap/eng"]);
    // The delete of `eng` did not: it stays the engine's.
    left_open(&w, "delete_entitlement", "eng").await;
    assert_eq!(engine.recover().await.unwrap(), 1);
    assert!(last_outcome(&w).await.contains("not applied"));
    assert_eq!(w.ledger().await, ["ldap/eng"]);
}

#[tokio::test]
async fn retiring_many_groups_at_once_is_held_by_the_deletion_safeguard() {
    let w = world();
    // Eight more groups for everyone, three holders each: no one group's
    // revokes pass the safeguard, all eight deletes together do.
    let many: String = (0..8).map(|i| format!("\"t{i}\", ")).collect();
    let text = POLICY.replace(
        "grants.ldap = [\"staff\"]",
        &format!("grants.ldap = [{many}\"staff\"]"),
    );
    let engine = w.engine(compiled(&text), creating());
    let (_, report) = engine.reconcile(&people()).await.unwrap();
    assert!(report.is_success());
    assert_eq!(w.ledger().await.len(), 10);
    let engine = w.engine(policy(), creating());
    let plan = engine.plan(&people()).await.unwrap();
    let deletes = plan
        .ops
        .iter()
        .filter(|o| matches!(o.kind, OpKind::DeleteEntitlement { .. }))
        .count();
    assert_eq!(deletes, 8);
    assert_eq!(plan.blocked.len(), 1, "{:#?}", plan.blocked);
    let block = &plan.blocked[0];
    assert_eq!((block.groups, block.total), (8, 10));
    assert_eq!(
        block.to_string(),
        "ldap: the plan would delete 8 of the 10 groups the engine created there, more than 20% \
         of them; review the operations and apply with --allow-destructive if this is intended"
    );
    assert!(matches!(
        engine.apply(&plan, &people()).await,
        Err(EngineError::Apply(ApplyError::Blocked(_)))
    ));
    // Reviewed and allowed, they go.
    let mut allow = ApplyOptions::default();
    allow.allow_destructive = true;
    let report = Executor::new(connectors(&w.targets), allow)
        .apply(&plan, &*w.store)
        .await
        .unwrap();
    assert!(report.is_success(), "{:#?}", report.outcomes);
    assert_eq!(w.ledger().await, ["ldap/eng", "ldap/sales"]);
}
