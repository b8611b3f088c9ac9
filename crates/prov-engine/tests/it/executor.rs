//! The executor against memory targets with faults injected.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use prov_core::{Connector, ConnectorExt, Identity, LifecycleState, Operation, TargetId};
use prov_engine::{
    ApplyError, ApplyOptions, Executor, MemoryStore, OpStatus, PlanInput, PlanOptions, RetryPolicy,
    Store, plan,
};
use prov_testkit::{FaultConfig, FaultyConnector, MemoryConnector, MemoryLimits};

use crate::planner::{World, lines, now, people, person, policy};

fn retry(seed: u64) -> ApplyOptions {
    let mut o = ApplyOptions::default();
    let mut r = RetryPolicy::default();
    r.seed = seed;
    r.budget_ratio = 0.5;
    o.retry = r;
    o
}

pub(crate) fn crowd(n: usize) -> Vec<Identity> {
    (0..n)
        .map(|i| {
            person(
                &format!("e{i:03}"),
                &format!("P{i}"),
                "Q",
                if i % 2 == 0 { "Engineering" } else { "Sales" },
            )
        })
        .collect()
}

/// Plans against `world`, applies through faulty wrappers of its targets.
async fn apply_faulty(
    world: &World,
    who: &[Identity],
    faults: FaultConfig,
    seed: u64,
) -> (prov_engine::ApplyReport, u64) {
    let p = policy();
    let the_plan = world.plan(&p, who, now(), &PlanOptions::default()).await;
    let mut conns: BTreeMap<TargetId, Arc<dyn Connector>> = BTreeMap::new();
    let mut injected = 0;
    let mut faulty = Vec::new();
    for (i, (t, c)) in world.targets.iter().enumerate() {
        let mut f = faults.clone();
        f.seed = faults.seed + i as u64;
        let fc = Arc::new(FaultyConnector::new(c.clone(), f));
        faulty.push(fc.clone());
        conns.insert(t.clone(), fc);
    }
    let report = Executor::new(conns, retry(seed))
        .apply(&the_plan, &world.store)
        .await
        .unwrap();
    for f in faulty {
        let s = f.stats();
        injected += s.retryable + s.rate_limited + s.permanent + s.lost_replies;
    }
    (report, injected)
}

#[tokio::test(start_paused = true)]
async fn transient_faults_and_429_storms_are_retried_to_convergence() {
    let p = policy();
    let world = World::new();
    let who = crowd(60);
    let faults = FaultConfig::seeded(11)
        .retryable(0.2)
        .rate_limit_storm(0.2, Duration::from_secs(2));
    let started = tokio::time::Instant::now();
    let (report, injected) = apply_faulty(&world, &who, faults, 5).await;
    assert!(
        report.is_success(),
        "{:#?}",
        report.failures().collect::<Vec<_>>()
    );
    assert!(injected > 20, "faults were injected: {injected}");
    assert!(
        report.retries >= injected,
        "every injected fault was retried: {} retries, {injected} faults",
        report.retries
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After was honoured"
    );
    let again = world.plan(&p, &who, now(), &PlanOptions::default()).await;
    assert!(again.is_empty(), "converged: {:#?}", lines(&again));
}

/// A service that throttles request by request (IAM Identity Center: one
/// request per member) answers some members of a batch RateLimited: those
/// members are sent again, after the wait they ask for, and only they. They
/// were failed after one attempt, the batch as a whole having succeeded.
#[tokio::test(start_paused = true)]
async fn throttled_members_of_a_batch_are_sent_again() {
    let p = policy();
    let world = World::new();
    let who = crowd(60);
    let mut faults = FaultConfig::seeded(21).member_rate_limits(0.2, Duration::from_secs(1));
    faults.only = vec![Operation::Grant];
    let started = tokio::time::Instant::now();
    let p2 = p.clone();
    let (report, _) = apply_faulty(&world, &who, faults, 9).await;
    assert!(
        report.is_success(),
        "{:#?}",
        report.failures().collect::<Vec<_>>()
    );
    assert!(report.retries > 0, "members were sent again");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "their Retry-After was honoured"
    );
    let again = world.plan(&p2, &who, now(), &PlanOptions::default()).await;
    assert!(again.is_empty(), "converged: {:#?}", lines(&again));
}

#[tokio::test(start_paused = true)]
async fn lost_replies_do_not_duplicate_accounts() {
    let p = policy();
    let world = World::new();
    let who = crowd(20);
    // Every create takes effect but answers Timeout on its first attempt, often.
    let mut faults = FaultConfig::seeded(3).lost_replies(0.5);
    faults.only = vec![Operation::CreateAccount];
    let (report, injected) = apply_faulty(&world, &who, faults, 1).await;
    assert!(injected > 0);
    assert!(
        report.is_success(),
        "{:#?}",
        report.failures().collect::<Vec<_>>()
    );
    let ldap = world.targets[&TargetId::new("ldap")]
        .list_all_accounts()
        .await
        .unwrap();
    assert_eq!(ldap.len(), 20, "one account per person, no duplicates");
    assert_eq!(
        world.store.links().await.unwrap().len(),
        20 + 10,
        "every account linked (ldap 20, github 10)"
    );
    assert!(
        world
            .store
            .links()
            .await
            .unwrap()
            .iter()
            .all(|l| l.origin == prov_engine::LinkOrigin::Created),
        "adopted after a lost reply by its marker: still the engine's own"
    );
    assert!(
        world
            .plan(&p, &who, now(), &PlanOptions::default())
            .await
            .is_empty()
    );
}

#[tokio::test(start_paused = true)]
async fn permanent_failures_are_named_and_do_not_stop_the_rest() {
    let world = World::new();
    let who = crowd(30);
    let mut faults = FaultConfig::seeded(9).permanent(0.1);
    faults.only = vec![Operation::CreateAccount];
    let (report, injected) = apply_faulty(&world, &who, faults, 2).await;
    assert!(injected > 0);
    let failed: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| matches!(o.status, OpStatus::Failed { .. }))
        .collect();
    let skipped: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| matches!(o.status, OpStatus::Skipped { .. }))
        .collect();
    assert_eq!(
        failed.len() as u64,
        injected,
        "one failure per injected fault, no retries of permanent errors"
    );
    for f in &failed {
        assert_eq!(f.name, "create");
        assert_eq!(f.attempts, 1);
        assert!(f.identity.is_some());
        let text = f.to_string();
        assert!(
            text.contains("FAILED (unexpected)") && text.contains("injected permanent fault"),
            "{text}"
        );
    }
    // Grants for accounts whose create failed are skipped, saying why; the rest are done.
    assert!(!skipped.is_empty());
    for s in &skipped {
        assert!(
            matches!(&s.status, OpStatus::Skipped { reason } if reason.contains("the create of") && reason.contains("failed")),
            "{s}"
        );
        assert!(
            failed
                .iter()
                .any(|f| f.identity == s.identity && f.target == s.target)
        );
    }
    assert_eq!(
        report.done() + failed.len() + skipped.len(),
        report.outcomes.len()
    );
    assert!(report.done() > report.outcomes.len() / 2);
}

#[tokio::test(start_paused = true)]
async fn the_retry_budget_stops_hammering_a_failing_target() {
    let world = World::new();
    let who = crowd(40);
    let (report, _) = apply_faulty(&world, &who, FaultConfig::seeded(1).retryable(1.0), 4).await;
    assert!(!report.is_success());
    // Reserve of 20 plus 0.5 per call (this test's ratio): far fewer than 5 retries per call.
    let calls = report.calls - report.retries;
    assert!(
        report.retries <= 20 + calls / 2 + 1,
        "{} retries for {calls} first calls",
        report.retries
    );
    assert!(report.retries < calls * 5 / 2);
    for f in report
        .failures()
        .filter(|o| matches!(o.status, OpStatus::Failed { .. }))
    {
        assert!(matches!(&f.status, OpStatus::Failed { kind, .. } if kind.is_retryable()));
    }
}

#[tokio::test]
async fn grants_are_batched_up_to_the_connector_limit() {
    let p = policy();
    let mut limits = MemoryLimits::default();
    limits.max_batch = 7;
    let mut world = World::new();
    world.targets.insert(
        TargetId::new("ldap"),
        MemoryConnector::with_limits(limits).with_entitlements(["staff", "eng", "sales"]),
    );
    let who = crowd(30);
    let the_plan = world.plan(&p, &who, now(), &PlanOptions::default()).await;
    world.apply(&the_plan).await;
    let ldap = &world.targets[&TargetId::new("ldap")];
    // staff: 30 members -> 5 requests; eng: 15 -> 3; sales: 15 -> 3.
    assert_eq!(ldap.stats().membership_requests, 11);
    let staff = ldap.list_all_members(&"staff".into()).await.unwrap();
    assert_eq!(staff.len(), 30);
}

#[tokio::test]
async fn a_blocked_plan_is_refused_whole_unless_allowed() {
    let p = policy();
    let mut world = World::new();
    let who = crowd(20);
    let first = world.plan(&p, &who, now(), &PlanOptions::default()).await;
    world.apply(&first).await;
    let mut gone = who.clone();
    for w in gone.iter_mut().take(10) {
        w.state = LifecycleState::Terminated;
    }
    let blocked = world.plan(&p, &gone, now(), &PlanOptions::default()).await;
    assert!(!blocked.blocked.is_empty());
    let err = world
        .executor(ApplyOptions::default())
        .apply(&blocked, &world.store)
        .await
        .unwrap_err();
    assert!(matches!(err, ApplyError::Blocked(_)));
    assert!(err.to_string().contains("nothing was applied"), "{err}");
    assert!(
        world.targets[&TargetId::new("ldap")]
            .accounts()
            .iter()
            .all(|a| a.enabled)
    );
    let mut allow = ApplyOptions::default();
    allow.allow_destructive = true;
    let report = world
        .executor(allow)
        .apply(&blocked, &world.store)
        .await
        .unwrap();
    assert!(report.is_success());
    assert_eq!(
        world.targets[&TargetId::new("ldap")]
            .accounts()
            .iter()
            .filter(|a| !a.enabled)
            .count(),
        10
    );
}

#[tokio::test]
async fn renames_move_links_and_unknown_targets_are_refused() {
    let p = policy();
    let mut world = World::new();
    world.converge(&p, &people()).await;
    let mut renamed = people();
    renamed[0] = renamed[0].clone().with("family_name", "King");
    let the_plan = world
        .plan(&p, &renamed, now(), &PlanOptions::default())
        .await;
    assert!(
        lines(&the_plan)
            .iter()
            .any(|l| l.contains("rename to ada.king")),
        "{:#?}",
        lines(&the_plan)
    );
    world.apply(&the_plan).await;
    assert!(
        world
            .plan(&p, &renamed, now(), &PlanOptions::default())
            .await
            .is_empty()
    );

    let mut fewer = world.targets.clone();
    fewer.remove(&TargetId::new("github"));
    let conns = fewer
        .into_iter()
        .map(|(t, c)| (t, Arc::new(c) as Arc<dyn Connector>))
        .collect();
    let mut joiner = renamed.clone();
    joiner.push(person("e9", "Dee", "New", "Engineering"));
    let actual = world.actual().await;
    let links = world.store.links().await.unwrap();
    let with_github = plan(
        &PlanInput::new(&p, &joiner, now(), &actual, &links),
        &PlanOptions::default(),
    );
    let err = Executor::new(conns, ApplyOptions::default())
        .apply(&with_github, &MemoryStore::new())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the plan names target `github`, which has no connector"
    );
}

#[tokio::test]
async fn progress_is_reported_up_to_the_total() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let p = policy();
    let world = World::new();
    let the_plan = world
        .plan(&p, &crowd(12), now(), &PlanOptions::default())
        .await;
    let seen = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let (s, c) = (seen.clone(), calls.clone());
    let exec = world
        .executor(ApplyOptions::default())
        .with_progress(Arc::new(move |done, total| {
            assert!(done <= total);
            s.fetch_max(done, Ordering::Relaxed);
            c.fetch_add(1, Ordering::Relaxed);
        }));
    let report = exec.apply(&the_plan, &world.store).await.unwrap();
    assert!(report.is_success());
    assert_eq!(seen.load(Ordering::Relaxed), the_plan.ops.len());
    assert!(calls.load(Ordering::Relaxed) > 1);
}

/// Issue 13 item 8: a `Retry-After` of an hour parked the apply for an
/// hour; past the cap the operation fails at once as retryable.
#[tokio::test(start_paused = true)]
async fn a_retry_after_past_the_cap_fails_the_call_instead_of_parking_the_apply() {
    let world = World::new();
    let who = crowd(4);
    let faults = FaultConfig::seeded(2).rate_limit_storm(1.0, Duration::from_secs(3600));
    let started = tokio::time::Instant::now();
    let (report, _) = apply_faulty(&world, &who, faults, 1).await;
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "waited {:?}",
        started.elapsed()
    );
    let failure = report.failures().next().expect("every call is refused");
    let text = failure.to_string();
    assert!(
        text.contains("asked to wait 3600s, more than the 900s"),
        "{text}"
    );
    assert!(
        matches!(&failure.status, OpStatus::Failed { kind, .. } if kind.is_retryable()),
        "{text}"
    );
}

/// Each target has an apply deadline: past it, what was not sent fails as
/// retryable (and is recorded), instead of an apply that never ends.
#[tokio::test(start_paused = true)]
async fn operations_past_a_targets_deadline_are_not_sent_and_are_recorded() {
    let p = policy();
    let world = World::new();
    let who = crowd(30);
    let the_plan = world.plan(&p, &who, now(), &PlanOptions::default()).await;
    // Every call waits two seconds (a slow target); the deadline is ten.
    let faults = FaultConfig::seeded(4).rate_limit_storm(1.0, Duration::from_secs(2));
    let mut conns: BTreeMap<TargetId, Arc<dyn Connector>> = BTreeMap::new();
    for (t, c) in &world.targets {
        let mut f = faults.clone();
        f.rate_limited = 0.5;
        conns.insert(t.clone(), Arc::new(FaultyConnector::new(c.clone(), f)));
    }
    let mut opts = retry(3);
    let mut limits = prov_engine::TargetLimits::default();
    limits.deadline = Some(Duration::from_secs(10));
    limits.concurrency = Some(1);
    opts.targets.insert(TargetId::new("ldap"), limits);
    let report = Executor::new(conns, opts)
        .apply(&the_plan, &world.store)
        .await
        .unwrap();
    let late: Vec<_> = report
        .failures()
        .filter(|o| {
            o.to_string()
                .contains("deadline on this target (10s) passed")
        })
        .collect();
    assert!(
        !late.is_empty(),
        "{:#?}",
        report.failures().collect::<Vec<_>>()
    );
    assert!(late.iter().all(|o| o.target.as_str() == "ldap"));
    let log = world.store.audit_log().await.unwrap();
    assert_eq!(
        log.len(),
        report.outcomes.len(),
        "every operation is recorded, sent or not"
    );
    assert!(
        log.iter()
            .any(|r| r.event.outcome.contains("deadline on this target"))
    );
}

/// A connector whose listing hands out the same cursor for ever.
#[derive(Debug)]
struct Looping;

#[prov_core::async_trait]
impl Connector for Looping {
    fn capabilities(&self) -> prov_core::Capabilities {
        prov_core::Capabilities::default()
    }
    async fn list_accounts(
        &self,
        _req: prov_core::ListRequest,
    ) -> prov_core::Result<prov_core::Page<prov_core::Account>> {
        Ok(prov_core::Page::new(Vec::new(), Some("again".to_owned())))
    }
    async fn get_account(
        &self,
        id: &prov_core::AccountId,
    ) -> prov_core::Result<prov_core::Account> {
        Err(prov_core::Error::not_found(id.to_string()))
    }
}

#[tokio::test]
async fn a_listing_that_repeats_its_cursor_ends_with_an_error_naming_the_target() {
    let err = Looping.list_all_accounts().await.unwrap_err();
    assert!(
        err.to_string().contains("page cursor `again` twice"),
        "{err}"
    );
    let mut conns: BTreeMap<TargetId, Arc<dyn Connector>> = BTreeMap::new();
    conns.insert(TargetId::new("hr-app"), Arc::new(Looping));
    let engine = prov_engine::Engine::new(policy(), conns, Arc::new(MemoryStore::new()));
    let err = engine.plan(&people()).await.unwrap_err();
    assert!(
        err.to_string().starts_with("cannot list target hr-app: ")
            && err.to_string().contains("twice"),
        "{err}"
    );
}
