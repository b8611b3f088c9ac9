use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use prov_core::{Account, Connector, EntitlementId, Identity, MembershipChange, TargetId};
use prov_engine::review::Finding;
use prov_engine::{Engine, MemoryStore};
use prov_resolver::Policy;
use prov_testkit::{ManualClock, MemoryConnector};

const POLICY: &str = r#"
[attributes]
department = "string"
[targets.ldap]
[roles.staff]
grants.ldap = ["staff"]
[roles.pay-init]
grants.ldap = ["pay-init"]
[roles.pay-approve]
grants.ldap = ["pay-approve"]
[rules.all]
when = "true"
roles = ["staff"]
[rules.finance]
when = 'department == "Finance"'
roles = ["pay-init"]
[[assignments]]
id = "a1"
identity = "e2"
role = "pay-approve"
[sod.payments]
roles = ["pay-init", "pay-approve"]
# Reported, not prevented: e2 holds both sides, and the review flags it.
enforce = "report"
"#;

#[tokio::test]
async fn the_review_explains_flags_creep_orphans_pending_and_sod() {
    let policy = Policy::from_toml(POLICY)
        .and_then(|p| p.compile())
        .unwrap_or_else(|e| panic!("{e}"));
    let ldap = MemoryConnector::new().with_entitlements([
        "staff",
        "pay-init",
        "pay-approve",
        "domain-admins",
    ]);
    let mut conns: BTreeMap<TargetId, Arc<dyn Connector>> = BTreeMap::new();
    conns.insert(TargetId::new("ldap"), Arc::new(ldap.clone()));
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap(),
    ));
    let engine =
        Engine::new(Arc::new(policy), conns, Arc::new(MemoryStore::new())).with_clock(clock);
    let people = vec![
        Identity::new("e1").with("department", "Engineering"),
        Identity::new("e2").with("department", "Finance"),
    ];
    engine.reconcile(&people).await.unwrap();
    // By hand, outside the policy: e1 made a domain admin; a stray account.
    let e1 = ldap
        .accounts()
        .into_iter()
        .find(|a| a.login == "e1")
        .unwrap();
    ldap.grant(MembershipChange::new(
        EntitlementId::new("domain-admins"),
        vec![e1.id.clone()],
    ))
    .await
    .unwrap();
    let mut stray = Account::new("stray", "old.svc");
    stray.entitlements.insert(EntitlementId::new("staff"));
    ldap.insert_account(stray).unwrap();
    // Someone removed e2 from staff by hand: the policy still gives it.
    let e2 = ldap
        .accounts()
        .into_iter()
        .find(|a| a.login == "e2")
        .unwrap();
    ldap.revoke(MembershipChange::new(
        EntitlementId::new("staff"),
        vec![e2.id.clone()],
    ))
    .await
    .unwrap();
    // e3 joins but is not applied yet.
    let mut all = people.clone();
    all.push(Identity::new("e3").with("department", "Engineering"));

    let review = engine.review(&all).await.unwrap();
    let find = |login: &str, ent: &str| {
        review
            .rows
            .iter()
            .find(|r| r.login == login && r.entitlement.as_ref().is_some_and(|e| e.as_str() == ent))
            .unwrap()
    };
    let staff = find("e1", "staff");
    assert_eq!(staff.finding, Finding::Explained);
    assert_eq!(staff.reasons, ["rule all -> role staff -> ldap:staff"]);
    assert_eq!(
        find("e1", "domain-admins").finding,
        Finding::Unexplained,
        "privilege creep is flagged"
    );
    assert_eq!(find("old.svc", "staff").finding, Finding::Orphan);
    assert_eq!(
        find("e2", "pay-approve").reasons,
        ["assignment a1 -> role pay-approve -> ldap:pay-approve"]
    );
    assert_eq!(
        find("e2", "pay-init").sod,
        ["payments"],
        "SoD violations are flagged on the identity's rows"
    );
    assert!(find("e1", "staff").sod.is_empty());
    let pending: Vec<_> = review
        .with(Finding::Pending)
        .map(|r| (r.login.as_str(), r.entitlement.as_ref().map(|e| e.as_str())))
        .collect();
    assert_eq!(
        pending,
        [("e2", Some("staff"))],
        "e3 has no account yet, so nothing is pending on one"
    );

    let csv = review.to_csv().unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("identity,target,account,login,enabled,entitlement,finding,reasons,sod")
    );
    assert!(csv.contains(",domain-admins,unexplained,,"), "{csv}");
    assert!(csv.contains(",old.svc,true,staff,orphan,,"), "{csv}");
    let json = serde_json::to_string(&review).unwrap();
    let back: prov_engine::review::Review = serde_json::from_str(&json).unwrap();
    assert_eq!(back, review);
}
