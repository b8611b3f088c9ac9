//! Separation of duties with `resolve = "remove_newer"` (issue 13 item 5):
//! access already held on both sides of a rule is left alone unless the
//! rule says to remove the newer, which needs the grant ledger's dates.

use std::sync::Arc;
use std::time::Duration;

use prov_core::{Connector, ConnectorExt, EntitlementId, MembershipChange, TargetId};
use prov_engine::{Engine, OpKind, Store};
use prov_resolver::{CompiledPolicy, Policy};

use crate::engine::setup_with;
use crate::planner::{POLICY, connectors, lines, people};

const DAY: Duration = Duration::from_secs(86_400);

/// The test policy with Cy (Engineering) also in sales and Bob (Sales)
/// also in engineering, and a rule that eng and sales must not meet.
fn policy(rule: &str) -> Arc<CompiledPolicy> {
    let text = POLICY.replace(
        "[rules.all]",
        &format!(
            "{rule}\n\n[rules.cy]\nwhen = 'id == \"e3\"'\nroles = [\"sales\"]\n\n\
             [rules.bob]\nwhen = 'id == \"e2\"'\nroles = [\"engineering\"]\n\n[rules.all]"
        ),
    );
    Arc::new(
        Policy::from_toml(&text)
            .and_then(|p| p.compile())
            .unwrap_or_else(|e| panic!("{e}")),
    )
}

const SPLIT: &str = "[sod.split]\nentitlements = [\"ldap:eng\", \"ldap:sales\"]";

#[tokio::test]
async fn a_rule_that_says_so_removes_the_newer_of_two_grants_it_can_date() {
    let s = setup_with(prov_engine::PlanOptions::default());
    let ldap = &s.targets[&TargetId::new("ldap")];
    // Day 1: everyone as the base policy has it: Cy gets eng, Bob sales.
    s.engine.reconcile(&people()).await.unwrap();
    let bob = ldap.accounts_with_login("bob.smith").await.unwrap()[0].clone();
    let cy = ldap.accounts_with_login("cy.young").await.unwrap()[0].clone();
    let dated = |grants: &[prov_engine::GrantRecord], e: &str| {
        grants
            .iter()
            .find(|g| g.entitlement.as_str() == e)
            .map(|g| g.granted_at)
    };
    let cy_grants = s
        .store
        .grants_of(&TargetId::new("ldap"), &cy.id)
        .await
        .unwrap();
    assert_eq!(
        dated(&cy_grants, "eng"),
        Some(prov_core::Clock::now(s.clock.as_ref()))
    );
    // Bob's eng arrives by hand, outside prov: no date.
    ldap.grant(MembershipChange::new(
        EntitlementId::new("eng"),
        vec![bob.id.clone()],
    ))
    .await
    .unwrap();
    // Day 2: under a rule only reported, Cy also gets sales (by prov).
    s.clock.advance(DAY);
    let report = Engine::new(
        policy(&format!("{SPLIT}\nenforce = \"report\"")),
        connectors(&s.targets),
        s.store.clone(),
    )
    .with_clock(s.clock.clone());
    let (plan, done) = report.reconcile(&people()).await.unwrap();
    assert!(done.is_success());
    assert_eq!(
        lines(&plan)
            .iter()
            .filter(|l| l.starts_with("grant"))
            .count(),
        2,
        "Cy's sales and Bob's github org:eng: {:#?}",
        lines(&plan)
    );
    // Day 3: the rule is enforced and says to remove the newer.
    s.clock.advance(DAY);
    let strict = Engine::new(
        policy(&format!("{SPLIT}\nresolve = \"remove_newer\"")),
        connectors(&s.targets),
        s.store.clone(),
    )
    .with_clock(s.clock.clone());
    let plan = strict.plan(&people()).await.unwrap();
    let got = lines(&plan);
    assert_eq!(
        got,
        vec!["revoke  ldap: sales for cy.young [e3]"],
        "{got:#?}"
    );
    assert!(
        plan.ops[0].reasons[0].contains("ldap:sales was granted last, 2026-11-23 09:00:00 UTC")
            && plan.ops[0].reasons[0].contains("ldap:eng, granted 2026-11-22 09:00:00 UTC"),
        "{:?}",
        plan.ops[0].reasons
    );
    // Bob's eng has no date: both his sides are reported and left alone.
    assert!(
        plan.sod
            .iter()
            .any(|l| l.starts_with("e2 holds both sides of rule split")
                && l.contains("no grant date for ldap:eng")),
        "{:#?}",
        plan.sod
    );
    assert!(
        plan.sod
            .iter()
            .any(|l| l.starts_with("ldap: e3's sales is revoked")),
        "{:#?}",
        plan.sod
    );
    // Applied: the revoke's record goes, and the next plan holds the grant
    // (it would complete the rule again) rather than giving it back.
    let (_, done) = strict.reconcile(&people()).await.unwrap();
    assert!(done.is_success());
    let cy_grants = s
        .store
        .grants_of(&TargetId::new("ldap"), &cy.id)
        .await
        .unwrap();
    assert_eq!(dated(&cy_grants, "sales"), None);
    assert!(dated(&cy_grants, "eng").is_some());
    let again = strict.plan(&people()).await.unwrap();
    assert!(again.ops.is_empty(), "{:#?}", lines(&again));
    assert!(
        again
            .sod
            .iter()
            .any(|l| l.starts_with("ldap: e3's grant of sales is held")),
        "{:#?}",
        again.sod
    );
    // The event path decides the same.
    let event = strict
        .plan_event(&prov_engine::Event::Mover(people()[2].clone()))
        .await
        .unwrap();
    assert!(event.ops.is_empty(), "{:#?}", lines(&event));
    // Without `remove_newer`, both-held access is only reported.
    let leave = Engine::new(policy(SPLIT), connectors(&s.targets), s.store.clone())
        .with_clock(s.clock.clone());
    let plan = leave.plan(&people()).await.unwrap();
    assert!(
        !plan
            .ops
            .iter()
            .any(|o| matches!(o.kind, OpKind::Revoke { .. })),
        "{:#?}",
        lines(&plan)
    );
}

#[test]
fn remove_newer_needs_a_prevent_rule() {
    let text = POLICY.replace(
        "[rules.all]",
        &format!("{SPLIT}\nenforce = \"report\"\nresolve = \"remove_newer\"\n\n[rules.all]"),
    );
    let err = Policy::from_toml(&text)
        .and_then(|p| p.compile())
        .unwrap_err()
        .to_string();
    assert!(err.contains("sod.split.resolve"), "{err}");
}
