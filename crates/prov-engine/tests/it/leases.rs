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
approvers = ["boss", "manager-7"]
approver_roles = ["security-lead"]
grants.aws = ["PowerUser"]
[roles.security-lead]
[rules.security]
when = 'department == "Security"'
roles = ["security-lead"]
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
    setup_with(POLICY)
}

fn setup_with(policy: &str) -> Setup {
    let policy = Policy::from_toml(policy)
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

/// Everyone the sources know: Ada, the two named approvers, a security
/// lead (an approver by role), and Eve, who may approve nothing.
fn people() -> Vec<Identity> {
    vec![
        ada(),
        Identity::new("boss"),
        Identity::new("manager-7"),
        Identity::new("sec-1").with("department", "Security"),
        Identity::new("eve").with("department", "Sales"),
    ]
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
        .request_lease(
            LeaseRequest::new("e1", "oncall", 8 * DAY, "e1", "incident"),
            &people(),
        )
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
        .request_lease(LeaseRequest::new("e1", "root", DAY, "e1", "x"), &people())
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
    let rec = s.engine.request_lease(req, &people()).await.unwrap();
    assert_eq!(rec.state, LeaseState::Requested);
    sync(&s).await;
    assert!(!has_power(&s).await, "no access while waiting for approval");

    s.clock.advance(3 * HOUR);
    let approved = s
        .engine
        .approve_lease(&rec.id, "manager-7", &people())
        .await
        .unwrap();
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
        .request_lease(
            LeaseRequest::new("e1", "oncall", DAY, "e1", "x").waiting(HOUR),
            &people(),
        )
        .await
        .unwrap();
    s.clock.advance(2 * HOUR);
    let err = s
        .engine
        .approve_lease(&rec.id, "boss", &people())
        .await
        .unwrap_err();
    assert!(matches!(err, LeaseError::Lapsed { .. }));
    assert!(err.to_string().contains("request it again"), "{err}");

    let start = s.clock.now() + chrono::Duration::days(3);
    let rec = s
        .engine
        .request_lease(
            LeaseRequest::new("e1", "oncall", DAY, "e1", "next week").starting(start),
            &people(),
        )
        .await
        .unwrap();
    let ok = s
        .engine
        .approve_lease(&rec.id, "boss", &people())
        .await
        .unwrap();
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
            &people(),
        )
        .await
        .unwrap();
    let b = s
        .engine
        .grant_lease(
            LeaseRequest::new("e1", "oncall", DAY, "e1", "b"),
            "boss",
            &people(),
        )
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
        .request_lease(LeaseRequest::new("e1", "oncall", DAY, "e1", "c"), &people())
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
        s.engine.approve_lease("nope", "x", &people()).await,
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
            &people(),
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

fn refused(r: Result<prov_engine::leases::LeaseRecord, LeaseError>, says: &str) {
    match r {
        Err(LeaseError::Policy(m)) => assert!(m.contains(says), "{m}"),
        other => panic!("expected a refusal saying `{says}`, got {other:?}"),
    }
}

/// Issue 13 item 6: before, a requester approved their own request, a
/// made-up approver was accepted, and a lease went to an identity the
/// sources lack.
#[tokio::test]
async fn leases_need_four_eyes_and_an_approver_the_policy_names() {
    let s = setup();
    let ask = |by: &str| LeaseRequest::new("e1", "oncall", DAY, by, "incident");
    let rec = s
        .engine
        .request_lease(ask("boss"), &people())
        .await
        .unwrap();
    refused(
        s.engine.approve_lease(&rec.id, "boss", &people()).await,
        "cannot also approve",
    );
    refused(
        s.engine.approve_lease(&rec.id, " BOSS", &people()).await,
        "cannot also approve",
    );
    refused(
        s.engine.approve_lease(&rec.id, "e1", &people()).await,
        "gets the access",
    );
    refused(
        s.engine.approve_lease(&rec.id, "the-cfo", &people()).await,
        "approver `the-cfo` is not in the sources",
    );
    refused(
        s.engine.approve_lease(&rec.id, "eve", &people()).await,
        "`eve` may not approve leases of role `oncall`",
    );
    // A grant by one person alone is refused before anything is recorded.
    let before = s.engine.leases().await.unwrap().len();
    refused(
        s.engine.grant_lease(ask("boss"), "boss", &people()).await,
        "cannot also approve",
    );
    assert_eq!(s.engine.leases().await.unwrap().len(), before);
    // A named approver and a holder of an approver role may.
    let ok = s
        .engine
        .approve_lease(&rec.id, "manager-7", &people())
        .await;
    assert_eq!(ok.unwrap().state, LeaseState::Approved);
    let other = s.engine.request_lease(ask("e1"), &people()).await.unwrap();
    let ok = s.engine.approve_lease(&other.id, "sec-1", &people()).await;
    assert_eq!(ok.unwrap().decided_by.as_deref(), Some("sec-1"));
    // An approver who has left may not.
    let mut gone = people();
    gone[1].state = prov_core::LifecycleState::Terminated;
    let third = s.engine.request_lease(ask("e1"), &gone).await.unwrap();
    refused(
        s.engine.approve_lease(&third.id, "boss", &gone).await,
        "approver `boss` has left",
    );
    // The identity must be in the sources and active.
    refused(
        s.engine
            .request_lease(
                LeaseRequest::new("ghost", "oncall", DAY, "boss", "x"),
                &people(),
            )
            .await,
        "`ghost` is not in the sources",
    );
    let mut left = people();
    left[0].state = prov_core::LifecycleState::Terminated;
    refused(
        s.engine.request_lease(ask("boss"), &left).await,
        "`e1` has left",
    );
    // A role that names no approvers cannot be leased to anyone.
    let staff = s
        .engine
        .request_lease(LeaseRequest::new("e1", "staff", DAY, "e1", "x"), &people())
        .await
        .unwrap();
    refused(
        s.engine.approve_lease(&staff.id, "boss", &people()).await,
        "names no approvers",
    );
}

/// Issue 13 item 6: `--duration 100000000d` aborted the process with a
/// chrono overflow; an ended lease listed as approved; durations were
/// `{secs, nanos}` in JSON.
#[tokio::test]
async fn lease_times_are_bounded_checked_and_written_as_people_write_them() {
    let s = setup();
    let huge = Duration::from_secs(100_000_000 * 86_400);
    refused(
        s.engine
            .request_lease(
                LeaseRequest::new("e1", "oncall", huge, "e1", "x"),
                &people(),
            )
            .await,
        "a lease lasts at most 366d",
    );
    refused(
        s.engine
            .request_lease(
                LeaseRequest::new("e1", "oncall", DAY, "e1", "x").waiting(Duration::MAX),
                &people(),
            )
            .await,
        "waits at most 30d",
    );
    let at_the_end = chrono::DateTime::<Utc>::MAX_UTC - chrono::Duration::hours(1);
    refused(
        s.engine
            .request_lease(
                LeaseRequest::new("e1", "oncall", DAY, "e1", "x").starting(at_the_end),
                &people(),
            )
            .await,
        "the duration is too long",
    );
    let rec = s
        .engine
        .grant_lease(
            LeaseRequest::new("e1", "oncall", 2 * DAY, "e1", "x"),
            "boss",
            &people(),
        )
        .await
        .unwrap();
    use prov_engine::leases::LeaseStatus;
    assert_eq!(rec.status(s.clock.now()), LeaseStatus::Active);
    s.clock.advance(3 * DAY);
    assert_eq!(rec.status(s.clock.now()), LeaseStatus::Expired);
    let json = serde_json::to_value(&rec.request).unwrap();
    assert_eq!(
        (json["duration"].as_str(), json["wait"].as_str()),
        (Some("2d"), Some("1d"))
    );
    let mut old = json.clone();
    old["duration"] = serde_json::json!({"secs": 7200, "nanos": 0});
    let back: LeaseRequest = serde_json::from_value(old).unwrap();
    assert_eq!(back.duration, 2 * HOUR, "records stored before still read");
}

/// Issue 13 item 5: a lease completing a conflict was approved without a
/// word; a rule enforced as `prevent` refuses it, naming the rule.
#[tokio::test]
async fn a_lease_that_would_complete_a_separation_of_duties_conflict_is_refused() {
    let s = setup_with(&format!(
        "{POLICY}\n[sod.watch]\ndescription = \"who watches the watchers\"\nroles = [\"oncall\", \"security-lead\"]\n"
    ));
    let err = s
        .engine
        .request_lease(
            LeaseRequest::new("sec-1", "oncall", DAY, "sec-1", "incident"),
            &people(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, LeaseError::Policy(_)), "{err}");
    assert!(
        err.to_string().contains(
            "would complete separation-of-duties rule watch (who watches the watchers); refused"
        ),
        "{err}"
    );
    // The same grant in one step is refused too; Ada, no security lead, may have it.
    assert!(
        s.engine
            .grant_lease(
                LeaseRequest::new("sec-1", "oncall", DAY, "boss", "incident"),
                "boss",
                &people(),
            )
            .await
            .is_err()
    );
    let ok = s
        .engine
        .request_lease(
            LeaseRequest::new("e1", "oncall", DAY, "e1", "incident"),
            &people(),
        )
        .await
        .unwrap();
    s.engine
        .approve_lease(&ok.id, "boss", &people())
        .await
        .unwrap();
    // `report` only reports.
    let s = setup_with(&format!(
        "{POLICY}\n[sod.watch]\nroles = [\"oncall\", \"security-lead\"]\nenforce = \"report\"\n"
    ));
    s.engine
        .request_lease(
            LeaseRequest::new("sec-1", "oncall", DAY, "sec-1", "incident"),
            &people(),
        )
        .await
        .unwrap();
}
