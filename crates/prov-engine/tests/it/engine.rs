use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use prov_core::{Account, Connector, ConnectorExt, TargetId};
use prov_engine::{Engine, EngineError, Event, MemoryStore, Plan, Store};
use prov_testkit::{ManualClock, MemoryConnector};

use crate::planner::{people, person, policy};

pub(crate) struct Setup {
    pub(crate) engine: Engine,
    pub(crate) targets: BTreeMap<TargetId, MemoryConnector>,
    pub(crate) store: Arc<MemoryStore>,
    pub(crate) clock: Arc<ManualClock>,
}

fn setup() -> Setup {
    setup_with(prov_engine::PlanOptions::default())
}

/// Two memory targets (ldap, github), a memory store and a manual clock
/// at 2026-11-22 09:00, planning with `opts`.
pub(crate) fn setup_with(opts: prov_engine::PlanOptions) -> Setup {
    let mut targets = BTreeMap::new();
    targets.insert(
        TargetId::new("ldap"),
        MemoryConnector::new().with_entitlements(["staff", "eng", "sales"]),
    );
    targets.insert(
        TargetId::new("github"),
        MemoryConnector::new().with_entitlements(["org:eng"]),
    );
    let conns = crate::planner::connectors(&targets);
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap(),
    ));
    let engine = Engine::new(policy(), conns, store.clone())
        .with_clock(clock.clone())
        .with_plan_options(opts);
    Setup {
        engine,
        targets,
        store,
        clock,
    }
}

fn writes(s: &Setup) -> u64 {
    s.targets.values().map(|c| c.stats().writes).sum()
}

#[tokio::test]
async fn a_no_op_reconcile_makes_zero_writes() {
    let s = setup();
    let (plan, report) = s.engine.reconcile(&people()).await.unwrap();
    assert!(!plan.is_empty() && report.is_success());
    let before = writes(&s);
    let (again, report) = s.engine.reconcile(&people()).await.unwrap();
    assert!(again.is_empty());
    assert_eq!(report.calls, 0);
    assert_eq!(writes(&s), before, "no writes to any target");
}

#[tokio::test]
async fn a_stale_plan_is_refused_with_a_clear_message() {
    let s = setup();
    let plan = s.engine.plan(&people()).await.unwrap();
    // Someone creates an account by hand between plan and apply.
    s.targets[&TargetId::new("ldap")]
        .insert_account(Account::new("x", "intruder"))
        .unwrap();
    let err = s.engine.apply(&plan, &people()).await.unwrap_err();
    assert!(matches!(err, EngineError::Stale { .. }));
    let text = err.to_string();
    assert!(
        text.starts_with("the plan is stale") && text.contains("nothing was applied, plan again"),
        "{text}"
    );
    assert_eq!(
        s.targets[&TargetId::new("ldap")].accounts().len(),
        1,
        "nothing applied"
    );
    // Planned again, it applies.
    let fresh = s.engine.plan(&people()).await.unwrap();
    assert!(
        s.engine
            .apply(&fresh, &people())
            .await
            .unwrap()
            .is_success()
    );
    // A changed HR record also makes a plan stale.
    let plan = s.engine.plan(&people()).await.unwrap();
    let mut changed = people();
    changed[1] = changed[1].clone().with("department", "Engineering");
    assert!(matches!(
        s.engine.apply(&plan, &changed).await,
        Err(EngineError::Stale { .. })
    ));
}

#[tokio::test]
async fn events_touch_only_their_identity() {
    let s = setup();
    s.engine.reconcile(&people()).await.unwrap();
    let ldap = &s.targets[&TargetId::new("ldap")];
    // Drift elsewhere that a full reconcile would see: an account nobody explains.
    ldap.insert_account(Account::new("stray", "stray.account"))
        .unwrap();

    // Joiner.
    let dee = person("e4", "Dee", "New", "Engineering");
    let (plan, report) = s.engine.handle(Event::Joiner(dee.clone())).await.unwrap();
    assert!(report.is_success());
    assert!(plan.orphans.is_empty(), "an event plan reports no orphans");
    assert!(
        plan.ops
            .iter()
            .all(|o| o.identity.as_ref().is_some_and(|i| i.as_str() == "e4"))
    );
    assert_eq!(plan.counts().get("create"), Some(&2));
    assert!(
        plan.ops
            .iter()
            .all(|o| o.reasons.last().is_some_and(|r| r == "joiner event"))
    );

    // Mover.
    let moved = dee.clone().with("department", "Sales");
    let (plan, report) = s.engine.handle(Event::Mover(moved.clone())).await.unwrap();
    assert!(report.is_success());
    let names: Vec<&str> = plan.ops.iter().map(|o| o.kind.name()).collect();
    assert_eq!(
        names,
        ["revoke", "revoke", "grant", "disable"],
        "{:#?}",
        plan.ops
    );

    // Leaver: the source has not marked them terminated yet; the event does.
    let (plan, report) = s.engine.handle(Event::Leaver(moved)).await.unwrap();
    assert!(report.is_success());
    let acct = ldap
        .list_all_accounts()
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.login == "dee.new")
        .unwrap();
    assert!(!acct.enabled && acct.entitlements.is_empty(), "{acct:?}");
    assert!(plan.ops.iter().any(|o| o.kind.name() == "disable"));
    let log = s.store.audit_log().await.unwrap();
    assert!(
        log.iter()
            .any(|r| r.event.reason.ends_with("leaver event") && r.event.operation == "disable")
    );
    prov_engine::audit::verify(&log).unwrap();

    // The others were never touched, and the stray account is still there.
    assert!(
        ldap.accounts()
            .iter()
            .any(|a| a.login == "stray.account" && a.enabled)
    );
}

#[tokio::test]
async fn plans_never_ask_a_target_for_what_it_cannot_do() {
    use prov_testkit::MemoryLimits;
    let mut limits = MemoryLimits::default();
    limits.disable = false;
    limits.rename = false;
    let ldap = MemoryConnector::with_limits(limits).with_entitlements(["staff", "eng", "sales"]);
    let mut conns: BTreeMap<TargetId, Arc<dyn Connector>> = BTreeMap::new();
    conns.insert(TargetId::new("ldap"), Arc::new(ldap.clone()));
    conns.insert(
        TargetId::new("github"),
        Arc::new(MemoryConnector::new().with_entitlements(["org:eng"])),
    );
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap(),
    ));
    let engine = Engine::new(policy(), conns, Arc::new(MemoryStore::new())).with_clock(clock);
    engine.reconcile(&people()).await.unwrap();

    // A rename the target cannot do is reported, not attempted.
    let mut renamed = people();
    renamed[0] = renamed[0].clone().with("family_name", "King");
    let plan = engine.plan(&renamed).await.unwrap();
    assert!(plan.ops.iter().all(|o| !matches!(&o.kind, prov_engine::OpKind::Update { delta, .. } if delta.login.is_some())), "{:#?}", plan.ops);
    assert!(
        plan.problems.iter().any(|p| p
            .contains("login should change from ada.lovelace to ada.king")
            && p.contains("cannot rename")),
        "{:?}",
        plan.problems
    );

    // A leaver on a target that cannot disable: access revoked, the account stays, the plan says so.
    let (plan, report) = engine
        .handle(Event::Leaver(people()[1].clone()))
        .await
        .unwrap();
    assert!(
        report.is_success(),
        "{:?}",
        report.failures().collect::<Vec<_>>()
    );
    assert!(
        plan.ops
            .iter()
            .all(|o| !(o.target.as_str() == "ldap" && o.kind.name() == "disable"))
    );
    assert!(
        plan.ops
            .iter()
            .any(|o| o.target.as_str() == "ldap" && o.kind.name() == "revoke")
    );
    assert!(
        plan.problems
            .iter()
            .any(|p| p.contains("cannot disable accounts") && p.contains("access is revoked")),
        "{:?}",
        plan.problems
    );
    let bob = ldap
        .accounts()
        .into_iter()
        .find(|a| a.login == "bob.smith")
        .unwrap();
    assert!(bob.enabled && bob.entitlements.is_empty());

    // A pre-hire on a target that cannot disable: no account yet (created,
    // it would be enabled before the start, with its groups); on a target
    // that can, one prepared disabled.
    let hire = crate::planner::person("e9", "Dee", "Early", "Engineering")
        .with_state(prov_core::LifecycleState::PreHire);
    let (plan, report) = engine.handle(Event::Joiner(hire)).await.unwrap();
    assert!(
        report.is_success(),
        "{:?}",
        report.failures().collect::<Vec<_>>()
    );
    assert!(
        plan.ops.iter().all(|o| o.target.as_str() != "ldap"),
        "{:#?}",
        plan.ops
    );
    assert!(
        plan.held
            .iter()
            .any(|h| h.contains("not created yet") && h.contains("cannot disable")),
        "{:?}",
        plan.held
    );
    assert!(ldap.accounts().iter().all(|a| a.login != "dee.early"));
    assert!(plan.ops.iter().any(|o| o.target.as_str() == "github"
        && matches!(o.kind, prov_engine::OpKind::Create { enabled: false, .. })));
}

/// The plan as a person editing the file would change it: through its JSON.
fn edit(plan: &Plan, change: impl FnOnce(&mut serde_json::Value)) -> Plan {
    let mut json = serde_json::to_value(plan).unwrap();
    change(&mut json);
    serde_json::from_value(json).unwrap()
}

/// The same, and the digest computed again, as a careful forger would.
fn forge(plan: &Plan, change: impl FnOnce(&mut serde_json::Value)) -> Plan {
    let mut p = edit(plan, change);
    p.seal();
    p
}

fn op_index(plan: &Plan, name: &str, what: &str) -> usize {
    plan.ops
        .iter()
        .position(|o| o.kind.name() == name && o.to_string().contains(what))
        .unwrap_or_else(|| panic!("no {name} {what} in {plan:#?}"))
}

#[tokio::test]
async fn an_edited_plan_is_refused_and_nothing_is_applied() {
    let s = setup();
    let plan = s.engine.plan(&people()).await.unwrap();
    let i = op_index(&plan, "grant", " eng for");
    // A swapped entitlement, digest left as it was.
    let swapped = |j: &mut serde_json::Value| j["ops"][i]["entitlement"] = "sales".into();
    let err = s
        .engine
        .apply(&edit(&plan, swapped), &people())
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Tampered(_)), "{err}");
    assert!(
        err.to_string().contains("edited after it was made"),
        "{err}"
    );
    // The same with the digest forged: planning again shows the difference.
    let err = s
        .engine
        .apply(&forge(&plan, swapped), &people())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, EngineError::Changed(_)), "{text}");
    assert!(
        text.contains(&format!("operation {}: the plan has `", i + 1))
            && text.contains("grant   ldap: sales for")
            && text.contains("grant   ldap: eng for"),
        "{text}"
    );
    // A changed operation id.
    let err = s
        .engine
        .apply(
            &forge(&plan, |j| j["ops"][0]["id"] = "0000000000000000".into()),
            &people(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("operation 1: the plan has `0000000000000000"),
        "{err}"
    );
    // A plan of the format before digests.
    let err = s
        .engine
        .apply(&edit(&plan, |j| j["version"] = 1.into()), &people())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("plan format 1"), "{err}");
    assert!(writes(&s) == 0, "nothing was applied");
    // The plan as made applies.
    assert!(s.engine.apply(&plan, &people()).await.unwrap().is_success());
}

#[tokio::test]
async fn an_added_delete_and_an_emptied_safeguard_are_refused() {
    let mut s = setup();
    let mut opts = prov_engine::PlanOptions::default();
    opts.default.safety.always_allowed = 0;
    s.engine = s.engine.with_plan_options(opts);
    s.engine.reconcile(&people()).await.unwrap();
    // Two of three leave: the safeguard blocks the disables.
    let mut gone = people();
    for p in gone.iter_mut().take(2) {
        *p = p
            .clone()
            .with_state(prov_core::LifecycleState::Terminated)
            .with_dates(None, chrono::NaiveDate::from_ymd_opt(2026, 11, 22));
    }
    let plan = s.engine.plan(&gone).await.unwrap();
    assert!(!plan.blocked.is_empty());
    let before = writes(&s);
    let err = s
        .engine
        .apply(
            &forge(&plan, |j| j["blocked"] = serde_json::json!([])),
            &gone,
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("safety blocks: the plan has none where planning now gives"),
        "{text}"
    );
    // A delete slipped in (a copy of a disable turned into a delete).
    let i = op_index(&plan, "disable", "ldap");
    let err = s
        .engine
        .apply(
            &forge(&plan, |j| {
                let mut op = j["ops"][i].clone();
                op["op"] = "delete".into();
                op["account"] = op["account"]["id"].clone();
                op.as_object_mut().unwrap().remove("enabled");
                j["ops"].as_array_mut().unwrap().push(op);
            }),
            &gone,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("which planning now does not give"),
        "{err}"
    );
    assert_eq!(writes(&s), before, "nothing was applied");
}

#[tokio::test]
async fn a_plan_expires_with_its_age() {
    let s = setup();
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap(),
    ));
    let conns = crate::planner::connectors(&s.targets);
    let engine = Engine::new(policy(), conns, s.store.clone())
        .with_clock(clock.clone())
        .with_max_plan_age(std::time::Duration::from_secs(3600));
    let plan = engine.plan(&people()).await.unwrap();
    clock.advance(std::time::Duration::from_secs(3601));
    let err = engine.apply(&plan, &people()).await.unwrap_err();
    assert!(matches!(err, EngineError::Expired { .. }), "{err}");
    assert!(err.to_string().contains("within 1h of being made"), "{err}");
    // Dated in the future (another machine's clock, or an edit).
    let future = forge(&plan, |j| j["planned_for"] = "2026-11-23T09:00:00Z".into());
    assert!(matches!(
        engine.apply(&future, &people()).await,
        Err(EngineError::Expired { .. })
    ));
    assert_eq!(writes(&s), 0);
}

/// Issue 13 item 1: a joiner whose existing account matches a correlation
/// rule (mail = email) is linked by the event, as a full plan links it;
/// before, the event looked by login only and made a second account.
#[tokio::test]
async fn a_joiner_event_links_the_account_a_correlation_rule_matches() {
    let s = setup();
    let mut options = prov_engine::PlanOptions::default();
    let mut ldap = prov_engine::TargetOptions::default();
    ldap.correlation = vec![
        prov_engine::Correlation::new("mail", "email"),
        prov_engine::Correlation::login(),
    ];
    options.targets.insert(TargetId::new("ldap"), ldap);
    let engine = Engine::new(
        policy(),
        crate::planner::connectors(&s.targets),
        s.store.clone(),
    )
    .with_clock(Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap(),
    )))
    .with_plan_options(options);
    // Ada's directory account, made by hand under another login.
    let target = &s.targets[&TargetId::new("ldap")];
    let mut mine = Account::new("hand-made", "alovelace");
    mine.attributes
        .insert("mail".into(), "ada@example.com".into());
    target.insert_account(mine).unwrap();
    let ada = person("e1", "Ada", "Lovelace", "Engineering");
    let full = engine.plan(std::slice::from_ref(&ada)).await.unwrap();
    let (plan, report) = engine.handle(Event::Joiner(ada)).await.unwrap();
    assert!(report.is_success(), "{:?}", report.failures().next());
    let kinds = |p: &Plan| -> Vec<String> {
        crate::planner::lines(p)
            .into_iter()
            .filter(|l| l.contains(" ldap: "))
            .collect()
    };
    assert_eq!(
        kinds(&plan),
        kinds(&full),
        "the event decides as the full plan"
    );
    let accounts = target.list_all_accounts().await.unwrap();
    assert_eq!(accounts.len(), 1, "linked, not duplicated: {accounts:?}");
    let links = s.store.links_of(&"e1".into()).await.unwrap();
    assert!(
        links
            .iter()
            .any(|l| l.target.as_str() == "ldap" && l.account.as_str() == "hand-made"),
        "{links:?}"
    );
}
