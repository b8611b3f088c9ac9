//! Leases with approval, through the engine, on a manual clock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use prov_core::{Clock, Connector, ConnectorExt, EntitlementId, Identity, TargetId};
use prov_engine::leases::{LeaseError, LeaseRequest, LeaseState};
use prov_engine::{Engine, Event, MemoryStore, Store};
use prov_resolver::Policy;
use prov_testkit::{ManualClock, MemoryConnector};

const POLICY: &str = r#"
[targets.aws]
[roles.staff]
grants.aws = ["ReadOnly"]
[roles.oncall]
max_lease_days = 7
grants.aws = ["PowerUser"]
[rules.all]
when = "true"
roles = ["staff"]
"#;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

struct Setup {
    engine: Engine,
    aws: MemoryConnector,
    clock: Arc<ManualClock>,
    store: Arc<MemoryStore>,
}

fn setup() -> Setup {
    let policy = Policy::from_toml(POLICY)
        .and_then(|p| p.compile())
        .unwrap_or_else(|e| panic!("{e}"));
    let aws = MemoryConnector::new().with_entitlements(["ReadOnly", "PowerUser"]);
    let mut conns: BTreeMap<TargetId, Arc<dyn Connector>> = BTreeMap::new();
    conns.insert(TargetId::new("aws"), Arc::new(aws.clone()));
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap(),
    ));
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::new(Arc::new(policy), conns, store.clone()).with_clock(clock.clone());
    Setup {
        engine,
        aws,
        clock,
        store,
    }
}

fn ada() -> Identity {
    Identity::new("e1")
}

async fn has_power(s: &Setup) -> bool {
    let accts = s.aws.list_all_accounts().await.unwrap();
    accts
        .iter()
        .any(|a| a.entitlements.contains(&EntitlementId::new("PowerUser")))
}

async fn sync(s: &Setup) {
    let (_, report) = s.engine.handle(Event::Mover(ada())).await.unwrap();
    assert!(
        report.is_success(),
        "{:?}",
        report.failures().collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_request_longer_than_the_role_allows_is_refused_naming_the_maximum() {
    let s = setup();
    let err = s
        .engine
        .request_lease(LeaseRequest::new("e1", "oncall", 8 * DAY, "e1", "incident"))
        .await
        .unwrap_err();
    assert!(matches!(err, LeaseError::Policy(_)));
    assert!(
        err.to_string()
            .contains("longer than the 7-day maximum of role `oncall`"),
        "{err}"
    );
    let err = s
        .engine
        .request_lease(LeaseRequest::new("e1", "root", DAY, "e1", "x"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown role `root`"), "{err}");
    assert!(s.engine.leases().await.unwrap().is_empty());
}

#[tokio::test]
async fn access_starts_at_approval_not_at_the_request_and_ends_by_itself() {
    let s = setup();
    sync(&s).await;
    let req =
        LeaseRequest::new("e1", "oncall", 2 * DAY, "e1", "on call this week").waiting(4 * HOUR);
    let rec = s.engine.request_lease(req).await.unwrap();
    assert_eq!(rec.state, LeaseState::Requested);
    sync(&s).await;
    assert!(!has_power(&s).await, "no access while waiting for approval");

    s.clock.advance(3 * HOUR);
    let approved = s.engine.approve_lease(&rec.id, "manager-7").await.unwrap();
    let approved_at = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
    assert_eq!(
        approved.valid_from,
        Some(approved_at),
        "the clock starts at approval"
    );
    assert_eq!(
        approved.valid_until,
        Some(approved_at + chrono::Duration::days(2))
    );
    sync(&s).await;
    assert!(has_power(&s).await);
    assert_eq!(
        s.engine.next_lease_change(s.clock.now()).await.unwrap(),
        approved.valid_until
    );

    // Two days after approval (not after the request) it ends by itself.
    s.clock.advance(2 * DAY - HOUR);
    sync(&s).await;
    assert!(has_power(&s).await, "still within the window");
    s.clock.advance(HOUR);
    sync(&s).await;
    assert!(
        !has_power(&s).await,
        "the end is exclusive and needs nobody"
    );

    let log = s.store.audit_log().await.unwrap();
    let ops: Vec<&str> = log
        .iter()
        .map(|r| r.event.operation.as_str())
        .filter(|o| o.starts_with("lease."))
        .collect();
    assert_eq!(
        ops,
        [
            format!("lease.request {} oncall", rec.id),
            format!("lease.approve {} oncall", rec.id)
        ]
    );
    prov_engine::audit::verify(&log).unwrap();
}

#[tokio::test]
async fn a_request_not_decided_in_time_lapses_and_a_future_start_is_kept() {
    let s = setup();
    let rec = s
        .engine
        .request_lease(LeaseRequest::new("e1", "oncall", DAY, "e1", "x").waiting(HOUR))
        .await
        .unwrap();
    s.clock.advance(2 * HOUR);
    let err = s.engine.approve_lease(&rec.id, "boss").await.unwrap_err();
    assert!(matches!(err, LeaseError::Lapsed { .. }));
    assert!(err.to_string().contains("request it again"), "{err}");

    let start = s.clock.now() + chrono::Duration::days(3);
    let rec = s
        .engine
        .request_lease(LeaseRequest::new("e1", "oncall", DAY, "e1", "next week").starting(start))
        .await
        .unwrap();
    let ok = s.engine.approve_lease(&rec.id, "boss").await.unwrap();
    assert_eq!(
        ok.valid_from,
        Some(start),
        "approved early, access still starts when asked"
    );
    sync(&s).await;
    assert!(!has_power(&s).await);
    assert_eq!(
        s.engine.next_lease_change(s.clock.now()).await.unwrap(),
        Some(start)
    );
    // A decided lease cannot be decided again.
    assert!(matches!(
        s.engine.reject_lease(&rec.id, "boss", "no").await,
        Err(LeaseError::State { .. })
    ));
}

#[tokio::test]
async fn revoking_one_of_two_overlapping_leases_keeps_access() {
    let s = setup();
    let a = s
        .engine
        .grant_lease(
            LeaseRequest::new("e1", "oncall", 3 * DAY, "e1", "a"),
            "boss",
        )
        .await
        .unwrap();
    let b = s
        .engine
        .grant_lease(LeaseRequest::new("e1", "oncall", DAY, "e1", "b"), "boss")
        .await
        .unwrap();
    sync(&s).await;
    assert!(has_power(&s).await);
    s.engine.revoke_lease(&a.id, "security").await.unwrap();
    sync(&s).await;
    assert!(has_power(&s).await, "lease b still gives it");
    s.engine.revoke_lease(&b.id, "security").await.unwrap();
    sync(&s).await;
    assert!(!has_power(&s).await, "the last lease gone, the access goes");
    let rejected = s
        .engine
        .request_lease(LeaseRequest::new("e1", "oncall", DAY, "e1", "c"))
        .await
        .unwrap();
    let r = s
        .engine
        .reject_lease(&rejected.id, "boss", "not on the rota")
        .await
        .unwrap();
    assert_eq!(
        (r.state, r.note.as_deref()),
        (LeaseState::Rejected, Some("not on the rota"))
    );
    assert!(matches!(
        s.engine.revoke_lease(&r.id, "x").await,
        Err(LeaseError::State { .. })
    ));
    assert!(matches!(
        s.engine.approve_lease("nope", "x").await,
        Err(LeaseError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_plan_made_under_a_lease_is_refused_once_the_lease_has_ended() {
    let s = setup();
    sync(&s).await;
    s.engine
        .grant_lease(
            LeaseRequest::new("e1", "oncall", HOUR, "e1", "incident"),
            "boss",
        )
        .await
        .unwrap();
    let plan = s.engine.plan(&[ada()]).await.unwrap();
    assert!(
        plan.ops.iter().any(|o| o.to_string().contains("PowerUser")),
        "{plan:#?}"
    );
    // Applied three hours later, within the plan age but after the lease.
    s.clock.advance(3 * HOUR);
    let err = s.engine.apply(&plan, &[ada()]).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, prov_engine::EngineError::Changed(_)) && text.contains("PowerUser"),
        "{text}"
    );
    assert!(!has_power(&s).await, "the ended lease gave nothing");
}
