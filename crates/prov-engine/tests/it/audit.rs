use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use prov_core::{AccountId, Connector, IdentityId, TargetId};
use prov_engine::audit::{self, AuditEvent, AuditRecord};
use prov_engine::leases::LeaseRecord;
use prov_engine::{
    Completion, Engine, Link, MemoryStore, OpStatus, OutboxEntry, PlanOptions, Store,
};
use prov_testkit::{ManualClock, MemoryConnector};

use crate::executor::crowd;
use crate::planner::{World, now, people, policy};

async fn applied_log() -> Vec<AuditRecord> {
    let p = policy();
    let mut world = World::new();
    let plan = world
        .plan(&p, &people(), now(), &PlanOptions::default())
        .await;
    world.apply(&plan).await;
    let log = world.store.audit_log().await.unwrap();
    assert_eq!(log.len(), plan.ops.len(), "one record per operation");
    log
}

#[tokio::test]
async fn every_applied_operation_is_recorded_in_a_verifiable_chain() {
    let log = applied_log().await;
    audit::verify(&log).unwrap();
    let grant = log
        .iter()
        .find(|r| r.event.operation == "grant eng")
        .unwrap();
    assert_eq!(
        grant.event.identity.as_ref().map(|i| i.as_str()),
        Some("e1")
    );
    assert_eq!(
        grant.event.target.as_ref().map(|t| t.as_str()),
        Some("ldap")
    );
    assert!(grant.event.account.is_some());
    assert_eq!(
        grant.event.reason,
        "rule eng -> role engineering -> ldap:eng"
    );
    assert_eq!(grant.event.outcome, "done");
    assert_eq!(grant.event.actor, "prov-engine");
    // JSON Lines round-trip.
    let text = audit::to_jsonl(&log).unwrap();
    assert_eq!(text.lines().count(), log.len());
    assert_eq!(audit::from_jsonl(&text).unwrap(), log);
    assert!(
        audit::from_jsonl("{}\nnot json")
            .unwrap_err()
            .starts_with("line 1")
    );
}

#[tokio::test]
async fn edits_removals_and_reorderings_are_detected() {
    let log = applied_log().await;
    let mut edited = log.clone();
    edited[3].event.outcome = "failed: nothing to see".into();
    let e = audit::verify(&edited).unwrap_err();
    assert_eq!(e.position, 4);
    assert!(e.to_string().contains("was edited"), "{e}");

    let mut removed = log.clone();
    removed.remove(2);
    let e = audit::verify(&removed).unwrap_err();
    assert_eq!(e.position, 3);
    assert!(e.to_string().contains("removed or moved"), "{e}");

    let mut swapped = log.clone();
    swapped.swap(4, 5);
    assert_eq!(audit::verify(&swapped).unwrap_err().position, 5);

    // Rewriting a record and its own hash still breaks the link from the next one.
    let mut forged = log.clone();
    forged[1].event.reason = "forged".into();
    let resealed = AuditRecord::seal(Some(&forged[0]), forged[1].event.clone());
    forged[1] = resealed;
    assert_eq!(audit::verify(&forged).unwrap_err().position, 3);

    let mut truncated_head = log.clone();
    truncated_head.remove(0);
    assert_eq!(audit::verify(&truncated_head).unwrap_err().position, 1);
}

/// A store that stops recording after `ok` completion records (a group
/// that would pass the limit fails whole): a disk that filled up.
struct FailingStore {
    inner: Arc<MemoryStore>,
    ok: AtomicUsize,
}

#[async_trait::async_trait]
impl Store for FailingStore {
    async fn links(&self) -> prov_core::Result<Vec<Link>> {
        self.inner.links().await
    }
    async fn links_of(&self, i: &IdentityId) -> prov_core::Result<Vec<Link>> {
        self.inner.links_of(i).await
    }
    async fn link(&self, t: &TargetId, a: &AccountId) -> prov_core::Result<Option<Link>> {
        self.inner.link(t, a).await
    }
    async fn put_link(&self, l: &Link) -> prov_core::Result<()> {
        self.inner.put_link(l).await
    }
    async fn remove_link(&self, t: &TargetId, a: &AccountId) -> prov_core::Result<()> {
        self.inner.remove_link(t, a).await
    }
    async fn grants_of(
        &self,
        t: &TargetId,
        a: &AccountId,
    ) -> prov_core::Result<Vec<prov_engine::GrantRecord>> {
        self.inner.grants_of(t, a).await
    }
    async fn created_entitlements(&self) -> prov_core::Result<Vec<prov_engine::EntitlementRecord>> {
        self.inner.created_entitlements().await
    }
    async fn append_audit(&self, e: Vec<AuditEvent>) -> prov_core::Result<Vec<AuditRecord>> {
        self.inner.append_audit(e).await
    }
    async fn audit_range(&self, from: u64, n: usize) -> prov_core::Result<Vec<AuditRecord>> {
        self.inner.audit_range(from, n).await
    }
    async fn audit_head(&self) -> prov_core::Result<Option<AuditRecord>> {
        self.inner.audit_head().await
    }
    async fn outbox_begin(&self, e: &[OutboxEntry]) -> prov_core::Result<()> {
        self.inner.outbox_begin(e).await
    }
    async fn complete(&self, done: Vec<Completion>) -> prov_core::Result<Vec<AuditRecord>> {
        let left = self.ok.load(Ordering::SeqCst);
        if left < done.len() || left == 0 {
            return Err(prov_core::Error::new(
                prov_core::ErrorKind::Unavailable,
                "disk full",
            ));
        }
        self.ok.store(left - done.len(), Ordering::SeqCst);
        self.inner.complete(done).await
    }
    async fn outbox_open(&self) -> prov_core::Result<Vec<OutboxEntry>> {
        self.inner.outbox_open().await
    }
    async fn put_lease(&self, l: &LeaseRecord) -> prov_core::Result<()> {
        self.inner.put_lease(l).await
    }
    async fn decide_lease(
        &self,
        l: &LeaseRecord,
        expected: prov_engine::leases::LeaseState,
        e: AuditEvent,
    ) -> prov_core::Result<bool> {
        self.inner.decide_lease(l, expected, e).await
    }
    async fn lease(&self, id: &str) -> prov_core::Result<Option<LeaseRecord>> {
        self.inner.lease(id).await
    }
    async fn claim(
        &self,
        c: &prov_engine::Claim,
        t: &[TargetId],
        now: chrono::DateTime<chrono::Utc>,
        dead: &[String],
    ) -> prov_core::Result<Option<prov_engine::Holder>> {
        self.inner.claim(c, t, now, dead).await
    }
    async fn renew(&self, c: &prov_engine::Claim) -> prov_core::Result<()> {
        self.inner.renew(c).await
    }
    async fn release(&self, run: &str) -> prov_core::Result<()> {
        self.inner.release(run).await
    }
    async fn claims(&self) -> prov_core::Result<Vec<prov_engine::Claim>> {
        self.inner.claims().await
    }
    async fn leases_of(&self, i: &IdentityId) -> prov_core::Result<Vec<LeaseRecord>> {
        self.inner.leases_of(i).await
    }
    async fn leases(&self) -> prov_core::Result<Vec<LeaseRecord>> {
        self.inner.leases().await
    }
    async fn put_leaver(&self, r: &prov_engine::leavers::LeaverRecord) -> prov_core::Result<()> {
        self.inner.put_leaver(r).await
    }
    async fn remove_leaver(&self, i: &IdentityId) -> prov_core::Result<bool> {
        self.inner.remove_leaver(i).await
    }
    async fn leavers(&self) -> prov_core::Result<Vec<prov_engine::leavers::LeaverRecord>> {
        self.inner.leavers().await
    }
    async fn leaver(
        &self,
        i: &IdentityId,
    ) -> prov_core::Result<Option<prov_engine::leavers::LeaverRecord>> {
        self.inner.leaver(i).await
    }
    async fn change_token(&self, t: &TargetId) -> prov_core::Result<Option<String>> {
        self.inner.change_token(t).await
    }
    async fn put_change_token(&self, t: &TargetId, token: &str) -> prov_core::Result<()> {
        self.inner.put_change_token(t, token).await
    }
}

pub(crate) fn engine_over(world: &World, store: Arc<dyn Store>) -> Engine {
    engine_with_policy(world, store, policy())
}

/// An engine over the world's targets and `store` with `policy`, its clock at `now()`.
pub(crate) fn engine_with_policy(
    world: &World,
    store: Arc<dyn Store>,
    policy: Arc<prov_resolver::CompiledPolicy>,
) -> Engine {
    let clock = Arc::new(ManualClock::new(now()));
    Engine::new(policy, world.connectors(), store).with_clock(clock)
}

/// Writes a target made, by account, from its own change journal.
pub(crate) async fn journal(c: &MemoryConnector) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let mut token = "0".to_owned();
    loop {
        let set = c.changes_since(Some(&token)).await.unwrap();
        for change in set.changes {
            let id = match change {
                prov_core::Change::Upserted(a) => a.id.to_string(),
                prov_core::Change::Deleted(id) => id.to_string(),
                other => panic!("{other:?}"),
            };
            *out.entry(id).or_default() += 1;
        }
        if !set.more {
            return out;
        }
        token = set.token;
    }
}

fn recorded(log: &[AuditRecord], t: &TargetId) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in log
        .iter()
        .filter(|r| r.event.target.as_ref() == Some(t) && r.event.changed_target())
    {
        *out.entry(r.event.account.as_ref().unwrap().to_string())
            .or_default() += 1;
    }
    out
}

#[tokio::test]
async fn a_store_that_cannot_record_stops_the_apply_and_recovery_records_what_was_sent() {
    let world = World::new();
    let inner = Arc::new(MemoryStore::new());
    let failing = Arc::new(FailingStore {
        inner: Arc::clone(&inner),
        ok: AtomicUsize::new(50),
    });
    let engine = engine_over(&world, failing);
    let (plan, report) = engine.reconcile(&crowd(200)).await.unwrap();
    let err = report
        .audit_error
        .as_deref()
        .expect("the failure is reported");
    assert!(err.contains("disk full"), "{err}");
    assert!(!report.is_success());
    // Nothing more is begun once the store has failed: later phases are not sent.
    let not_sent = report
        .failures()
        .filter(|o| matches!(&o.status, OpStatus::Failed { message, .. } if message.starts_with("not sent")))
        .count();
    assert!(not_sent > 0, "{not_sent} of {}", plan.ops.len());
    let writes: usize = futures_util::future::join_all(world.targets.values().map(journal))
        .await
        .iter()
        .map(|j| j.values().sum::<usize>())
        .sum();
    assert!(writes + not_sent <= plan.ops.len(), "{writes} writes");
    // What was sent but not recorded is still in the outbox...
    let open = inner.outbox_open().await.unwrap();
    assert!(!open.is_empty());
    // ...and recovery, with the store working again, records each write exactly once.
    let fixed = engine_over(&world, inner.clone());
    assert_eq!(fixed.recover().await.unwrap(), open.len());
    assert!(inner.outbox_open().await.unwrap().is_empty());
    let log = inner.audit_log().await.unwrap();
    audit::verify(&log).unwrap();
    for (t, c) in &world.targets {
        assert_eq!(recorded(&log, t), journal(c).await, "{t}");
    }
    // The rest is applied by the next run, each write again recorded once.
    let (_, again) = fixed.reconcile(&crowd(200)).await.unwrap();
    assert!(again.is_success(), "{:?}", again.failures().next());
    let log = inner.audit_log().await.unwrap();
    for (t, c) in &world.targets {
        assert_eq!(recorded(&log, t), journal(c).await, "{t}");
    }
}

#[tokio::test]
async fn records_name_the_actor_the_run_and_the_plan_as_each_operation_finishes() {
    let world = World::new();
    let store = Arc::new(MemoryStore::new());
    let engine = engine_over(&world, store.clone()).with_actor("alice (OS user root)");
    let (plan, report) = engine.reconcile(&people()).await.unwrap();
    assert!(report.is_success());
    let log = store.audit_log().await.unwrap();
    assert_eq!(log.len(), plan.ops.len());
    for r in &log {
        assert_eq!(r.event.actor, "alice (OS user root)");
        assert_eq!(r.event.run.as_deref(), Some(report.run.as_str()));
        assert_eq!(r.event.plan.as_deref(), Some(report.plan.as_str()));
    }
    assert_eq!(report.plan, plan.digest);
    assert_eq!(
        plan.digest,
        plan.content_digest(),
        "the engine seals its plans"
    );
    // A second run has another run id.
    let (_, second) = engine.reconcile(&crowd(3)).await.unwrap();
    assert_ne!(second.run, report.run);
}

#[tokio::test]
async fn a_stop_skips_what_was_not_sent_and_records_everything_that_was() {
    let world = World::new();
    let store = Arc::new(MemoryStore::new());
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let engine = engine_over(&world, store.clone())
        .with_stop(Arc::clone(&stop))
        .with_progress(Arc::new(move |done, _| {
            if done >= 5 {
                flag.store(true, Ordering::SeqCst);
            }
        }));
    let (plan, report) = engine.reconcile(&crowd(50)).await.unwrap();
    assert!(report.stopped && !report.is_success());
    let skipped = report
        .failures()
        .filter(|o| matches!(&o.status, OpStatus::Skipped { reason } if reason.contains("stopped")))
        .count();
    assert!(
        skipped > 0 && report.done() < plan.ops.len(),
        "{skipped} of {}",
        plan.ops.len()
    );
    // Every outcome, done or skipped, has its record; nothing is left open.
    let log = store.audit_log().await.unwrap();
    assert_eq!(log.len(), report.outcomes.len());
    assert!(store.outbox_open().await.unwrap().is_empty());
    for (t, c) in &world.targets {
        assert_eq!(recorded(&log, t), journal(c).await, "{t}");
    }
}

#[tokio::test]
async fn a_small_plan_stops_sending_once_the_store_cannot_record() {
    // A plan of a few operations (an event's size) is begun in one
    // transaction up front; a store failure must still stop what follows.
    let world = World::new();
    let inner = Arc::new(MemoryStore::new());
    let failing = Arc::new(FailingStore {
        inner: Arc::clone(&inner),
        ok: AtomicUsize::new(0),
    });
    let engine = engine_over(&world, failing);
    let (plan, report) = engine.reconcile(&people()).await.unwrap();
    assert!(plan.ops.len() < 50 && report.audit_error.is_some());
    // No grant is sent: the creates' records could not be written first
    // (each is "not sent", or skipped because its create was not sent).
    for o in report.outcomes.iter().filter(|o| o.name == "grant") {
        assert_ne!(o.status, OpStatus::Done, "{o}");
    }
    assert!(report.outcomes.iter().any(|o| matches!(&o.status,
        OpStatus::Failed { message, .. } if message.starts_with("not sent"))));
    let writes: usize = futures_util::future::join_all(world.targets.values().map(journal))
        .await
        .iter()
        .map(|j| j.values().sum::<usize>())
        .sum();
    let creates = plan
        .ops
        .iter()
        .filter(|o| o.kind.name() == "create")
        .count();
    assert!(writes <= creates, "{writes} writes, {creates} creates");
    // Recovery with the store back records exactly what was written.
    let fixed = engine_over(&world, inner.clone());
    fixed.recover().await.unwrap();
    let log = inner.audit_log().await.unwrap();
    for (t, c) in &world.targets {
        assert_eq!(recorded(&log, t), journal(c).await, "{t}");
    }
}

#[tokio::test]
async fn a_delete_that_finds_the_account_gone_is_not_recorded_as_a_change() {
    let p = policy();
    let mut world = World::new();
    world.converge(&p, &people()).await;
    let mut gone = people();
    gone[0] = gone[0]
        .clone()
        .with_state(prov_core::LifecycleState::Terminated)
        .with_dates(None, chrono::NaiveDate::from_ymd_opt(2026, 9, 1));
    let plan = world.plan(&p, &gone, now(), &PlanOptions::default()).await;
    let delete = plan
        .ops
        .iter()
        .find(|o| o.kind.name() == "delete")
        .expect("a delete past the grace period");
    // Someone deletes the account by hand before the apply.
    let ldap = &world.targets[&TargetId::new("ldap")];
    ldap.delete_account(delete.existing_account().unwrap())
        .await
        .unwrap();
    let mut opts = prov_engine::ApplyOptions::default();
    opts.allow_destructive = true;
    let report = world
        .executor(opts)
        .apply(&plan, &world.store)
        .await
        .unwrap();
    let outcome = report.outcomes.iter().find(|o| o.name == "delete").unwrap();
    assert_eq!(
        outcome.status,
        OpStatus::Done,
        "gone already is what a delete wants"
    );
    let log = world.store.audit_log().await.unwrap();
    let rec = log.iter().find(|r| r.event.operation == "delete").unwrap();
    assert_eq!(
        rec.event.outcome,
        "done without a change: the account was already gone"
    );
    assert!(!rec.event.changed_target());
    assert!(
        world
            .store
            .link(&TargetId::new("ldap"), delete.existing_account().unwrap())
            .await
            .unwrap()
            .is_none(),
        "its link is gone too"
    );
}

#[tokio::test]
async fn an_open_entry_for_a_target_no_longer_configured_is_recorded_not_left_unseen() {
    let world = World::new();
    let store = Arc::new(MemoryStore::new());
    let op: prov_engine::PlannedOp = serde_json::from_value(serde_json::json!({
        "id": "abc", "target": "retired", "identity": "e1", "op": "delete",
        "account": "uid=ada", "reasons": ["leaver"]
    }))
    .unwrap();
    store
        .outbox_begin(&[OutboxEntry::new("r0", "host:1", op, now())])
        .await
        .unwrap();
    let engine = engine_over(&world, store.clone());
    assert_eq!(engine.recover().await.unwrap(), 1);
    assert!(store.outbox_open().await.unwrap().is_empty());
    let log = store.audit_log().await.unwrap();
    assert_eq!(log.len(), 1);
    assert!(
        log[0]
            .event
            .outcome
            .starts_with("recovered: unknown (target retired has no connector now"),
        "{}",
        log[0].event.outcome
    );
    assert_eq!(
        log[0].event.account.as_ref().map(|a| a.as_str()),
        Some("uid=ada")
    );
}

fn key() -> audit::AuditKey {
    audit::AuditKey::new(b"a key of thirty-two bytes, kept!".to_vec()).unwrap()
}

/// A log of the quickstart-sized world, sealed with the key by the store.
async fn keyed_log() -> Vec<AuditRecord> {
    let world = World::new();
    let store = Arc::new(MemoryStore::new().with_audit_key(key()));
    let engine = engine_over(&world, store.clone());
    engine.reconcile(&people()).await.unwrap();
    let log = store.audit_log().await.unwrap();
    assert!(log.len() > 5 && log.iter().all(|r| r.keyed));
    log
}

/// The chain recomputed from `from` on, as someone with write access to
/// the store but without the key would.
fn reseal_from(log: &[AuditRecord], from: usize) -> Vec<AuditRecord> {
    let mut out: Vec<AuditRecord> = log[..from].to_vec();
    for r in &log[from..] {
        let next = AuditRecord::seal(out.last(), r.event.clone());
        out.push(next);
    }
    out
}

#[tokio::test]
async fn a_keyed_chain_needs_its_key_and_catches_a_reseal_without_it() {
    let log = keyed_log().await;
    let v = audit::verify_with(&log, Some(&key()), None).unwrap();
    assert_eq!((v.records, v.keyed), (log.len(), log.len()));
    // Without the key, or with another, it cannot be vouched for.
    let e = audit::verify(&log).unwrap_err();
    assert!(e.to_string().contains("verify with the key"), "{e}");
    let other = audit::AuditKey::new(b"another key, also 32 bytes long!".to_vec()).unwrap();
    let e = audit::verify_with(&log, Some(&other), None).unwrap_err();
    assert_eq!(e.position, 1);
    assert!(e.to_string().contains("not the key that sealed it"), "{e}");

    // The whole log re-sealed without the key: a plain chain that verifies...
    let resealed = reseal_from(&log, 0);
    audit::verify(&resealed).unwrap();
    // ...but not with the key.
    let e = audit::verify_with(&resealed, Some(&key()), None).unwrap_err();
    assert!(
        e.to_string()
            .contains("no record is sealed with the audit key"),
        "{e}"
    );

    // One record edited and the chain re-sealed from there without the key.
    let mut edited = log.clone();
    edited[3].event.outcome = "failed: nothing to see".into();
    let edited = reseal_from(&edited, 3);
    let e = audit::verify_with(&edited, Some(&key()), None).unwrap_err();
    assert_eq!(e.position, 4);
    assert!(
        e.to_string()
            .contains("re-sealed without the key from here"),
        "{e}"
    );
    // Edited and left as it was: its keyed hash no longer fits.
    let mut edited = log.clone();
    edited[3].event.actor = "someone else".into();
    let e = audit::verify_with(&edited, Some(&key()), None).unwrap_err();
    assert_eq!(e.position, 4);
    // The key never shows in Debug output.
    assert_eq!(format!("{:?}", key()), "AuditKey(<redacted>)");
}

#[tokio::test]
async fn an_anchored_head_catches_a_cut_tail_and_a_rewrite() {
    let log = applied_log().await;
    let head = audit::Head::of(log.last().unwrap());
    let text = head.to_string();
    assert_eq!(text.parse::<audit::Head>().unwrap(), head);
    assert!("12".parse::<audit::Head>().is_err());
    assert!("0:abc".parse::<audit::Head>().is_err());
    audit::verify_with(&log, None, Some(&head)).unwrap();
    // The last three records cut off: the plain chain still verifies...
    let cut = &log[..log.len() - 3];
    audit::verify(cut).unwrap();
    // ...the anchored head does not.
    let e = audit::verify_with(cut, None, Some(&head)).unwrap_err();
    assert!(e.to_string().contains("cut off the end"), "{e}");
    // Rewritten and re-sealed (no key here): the head's hash is gone.
    let mut edited = log.clone();
    edited[0].event.reason = "because".into();
    let edited = reseal_from(&edited, 0);
    audit::verify(&edited).unwrap();
    let e = audit::verify_with(&edited, None, Some(&head)).unwrap_err();
    assert!(e.to_string().contains("rewritten up to here"), "{e}");
    // A head taken earlier stays valid as the log grows.
    let earlier = audit::Head::of(&log[2]);
    audit::verify_with(&log, None, Some(&earlier)).unwrap();
}
