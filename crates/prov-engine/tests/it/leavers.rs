//! Leavers stay gone (issue 13 item 4): a leaver event is remembered, an
//! identity gone from the sources is a leaver, grace periods count from
//! the moment of leaving.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use prov_core::{Clock, ConnectorExt, Identity, TargetId};
use prov_engine::leavers::Departure;
use prov_engine::{Absent, EngineError, Event, OpKind, PlanOptions, TargetOptions};

use crate::engine::{Setup, setup_with as setup};
use crate::planner::{lines, people, person};

const DAY: Duration = Duration::from_secs(86_400);

async fn enabled(s: &Setup, target: &str, login: &str) -> Option<bool> {
    s.targets[&TargetId::new(target)]
        .accounts_with_login(login)
        .await
        .unwrap()
        .first()
        .map(|a| a.enabled)
}

fn ops_of(plan: &prov_engine::Plan, who: &str) -> Vec<String> {
    lines(plan)
        .into_iter()
        .filter(|l| l.ends_with(&format!("[{who}]")))
        .collect()
}

#[tokio::test]
async fn a_leaver_event_is_remembered_until_the_source_says_so_or_a_rehire() {
    let s = setup(PlanOptions::default());
    s.engine.reconcile(&people()).await.unwrap();
    let (_, report) = s
        .engine
        .handle(Event::Leaver(people()[0].clone()))
        .await
        .unwrap();
    assert!(report.is_success());
    assert_eq!(enabled(&s, "ldap", "ada.lovelace").await, Some(false));
    // The next export still says Ada is active: nothing comes back.
    s.clock.advance(DAY);
    let (plan, _) = s.engine.reconcile(&people()).await.unwrap();
    assert_eq!(ops_of(&plan, "e1"), Vec::<String>::new());
    assert_eq!(enabled(&s, "ldap", "ada.lovelace").await, Some(false));
    let leavers = s.engine.leavers().await.unwrap();
    assert_eq!(leavers.len(), 1);
    assert_eq!(leavers[0].why, Departure::Event);
    // Deleted after the grace period, counted from the event (09:00), not
    // from the day's start.
    let left = leavers[0].left_at;
    assert_eq!(left, Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap());
    s.clock
        .set(left + chrono::Duration::days(30) - chrono::Duration::minutes(1));
    let plan = s.engine.plan(&people()).await.unwrap();
    assert!(
        !plan
            .ops
            .iter()
            .any(|o| matches!(o.kind, OpKind::Delete { .. })),
        "{:#?}",
        lines(&plan)
    );
    s.clock.set(left + chrono::Duration::days(30));
    let plan = s.engine.plan(&people()).await.unwrap();
    let ada = ops_of(&plan, "e1");
    assert!(
        ada.len() == 1 && ada[0].starts_with("delete  ldap: ada.lovelace"),
        "{ada:#?}"
    );
    assert!(
        plan.ops[0].reasons[0].starts_with("leaver: grace period ended 2026-12-22 09:00 UTC"),
        "{:?}",
        plan.ops[0].reasons
    );
    // A re-hire (a start date after the leaving day) gives access back.
    let mut back = people();
    back[0].start_date = chrono::NaiveDate::from_ymd_opt(2027, 1, 4);
    s.clock
        .set(Utc.with_ymd_and_hms(2027, 1, 4, 8, 0, 0).unwrap());
    let plan = s.engine.plan(&back).await.unwrap();
    assert!(
        ops_of(&plan, "e1")
            .iter()
            .any(|l| l.starts_with("enable  ldap")),
        "{:#?}",
        ops_of(&plan, "e1")
    );
}

#[tokio::test]
async fn a_person_clears_a_leaver_record_and_it_is_audited() {
    let s = setup(PlanOptions::default());
    s.engine.reconcile(&people()).await.unwrap();
    s.engine
        .handle(Event::Leaver(people()[1].clone()))
        .await
        .unwrap();
    let cleared = s
        .engine
        .clear_leaver(&prov_core::IdentityId::new("e2"))
        .await
        .unwrap();
    assert_eq!(cleared.why, Departure::Event);
    let (plan, _) = s.engine.reconcile(&people()).await.unwrap();
    assert!(
        ops_of(&plan, "e2")
            .iter()
            .any(|l| l.starts_with("enable  ldap")),
        "{:#?}",
        lines(&plan)
    );
    let log = s.engine.store().audit_log().await.unwrap();
    assert!(log.iter().any(|r| r.event.operation == "leaver.clear"));
    assert!(matches!(
        s.engine
            .clear_leaver(&prov_core::IdentityId::new("e2"))
            .await,
        Err(EngineError::NotFound(_))
    ));
}

#[tokio::test]
async fn an_identity_gone_from_the_sources_is_a_leaver_and_a_truncated_export_is_blocked() {
    let s = setup(PlanOptions::default());
    s.engine.reconcile(&people()).await.unwrap();
    let t0 = s.clock.now();
    // Cy is gone from the export: disabled now (not left enabled forever).
    let fewer = &people()[..2];
    let (plan, report) = s.engine.reconcile(fewer).await.unwrap();
    assert!(report.is_success());
    assert!(
        ops_of(&plan, "e3")
            .iter()
            .any(|l| l.starts_with("disable ldap: cy.young")),
        "{:#?}",
        lines(&plan)
    );
    assert!(
        plan.held.is_empty(),
        "nothing to fix in a source: {:?}",
        plan.held
    );
    assert_eq!(enabled(&s, "ldap", "cy.young").await, Some(false));
    let leavers = s.engine.leavers().await.unwrap();
    assert_eq!(
        (leavers[0].why, leavers[0].left_at),
        (Departure::Absent, t0)
    );
    // Deleted once the grace period from the moment it was seen gone ends.
    s.clock.set(t0 + chrono::Duration::days(30));
    let (plan, _) = s.engine.reconcile(fewer).await.unwrap();
    assert!(
        ops_of(&plan, "e3")
            .iter()
            .any(|l| l.starts_with("delete  ldap")),
        "{:#?}",
        lines(&plan)
    );
    // Back in the export: its record goes.
    s.engine.reconcile(&people()).await.unwrap();
    assert!(s.engine.leavers().await.unwrap().is_empty());

    // A truncated export (2 of 12 people) is blocked, not obeyed, and
    // nothing is remembered as gone.
    let s = setup(PlanOptions::default());
    let many: Vec<Identity> = (0..12)
        .map(|i| person(&format!("e{i}"), &format!("P{i}"), "Q", "Sales"))
        .collect();
    s.engine.reconcile(&many).await.unwrap();
    let err = s.engine.reconcile(&many[..2]).await.unwrap_err();
    assert!(err.to_string().contains("--allow-destructive"), "{err}");
    assert!(s.engine.leavers().await.unwrap().is_empty());
    assert_eq!(enabled(&s, "ldap", "p5.q").await, Some(true));
}

#[tokio::test]
async fn a_target_can_ignore_identities_gone_from_the_sources() {
    let mut opts = PlanOptions::default();
    let mut t = TargetOptions::default();
    t.absent = Absent::Ignore;
    opts.targets.insert(TargetId::new("github"), t);
    let s = setup(opts);
    s.engine.reconcile(&people()).await.unwrap();
    let (plan, _) = s.engine.reconcile(&people()[..2]).await.unwrap();
    let cy = ops_of(&plan, "e3");
    assert!(cy.iter().any(|l| l.starts_with("disable ldap")), "{cy:#?}");
    assert!(!cy.iter().any(|l| l.contains("github")), "{cy:#?}");
    assert!(
        plan.orphans.iter().any(|o| o.target.as_str() == "github"
            && o.former_identity
                .as_ref()
                .is_some_and(|i| i.as_str() == "e3")),
        "{:#?}",
        plan.orphans
    );
}
