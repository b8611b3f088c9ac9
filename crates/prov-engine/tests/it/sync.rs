//! Incremental sync from the targets' change logs (`Engine::sync`).

use std::sync::Arc;

use prov_core::{Account, Connector, ConnectorExt, MembershipChange, Operation, TargetId};
use prov_engine::{Engine, Store};
use prov_testkit::{FaultConfig, FaultyConnector};

use crate::engine::setup_with;
use crate::planner::people;

fn ldap() -> TargetId {
    TargetId::new("ldap")
}

/// Changes made by hand on a target are set right from its change log,
/// for the people they touch only; the token is kept only after the
/// apply succeeded, and a sync with nothing new plans nothing.
#[tokio::test]
async fn sync_sets_right_what_was_changed_by_hand_and_keeps_the_token() {
    let s = setup_with(prov_engine::PlanOptions::default());
    let (_, report) = s.engine.reconcile(&people()).await.unwrap();
    assert!(report.is_success());

    // The first sync takes each target's first token and reads nothing.
    let (first, report) = s.engine.sync(&people()).await.unwrap();
    assert!(report.is_success() && first.plan.is_empty(), "{first:?}");
    assert_eq!(first.started.len(), 2, "{first:?}");
    let kept = s.store.change_token(&ldap()).await.unwrap();
    assert!(kept.is_some());

    // By hand: Ada's account is deleted, Bob loses a group the policy
    // gives him, and someone adds an account nobody has.
    let target = &s.targets[&ldap()];
    let accounts = target.list_all_accounts().await.unwrap();
    let ada = accounts
        .iter()
        .find(|a| a.login.starts_with("ada"))
        .unwrap();
    let bob = accounts
        .iter()
        .find(|a| a.login.starts_with("bob"))
        .unwrap();
    let group = bob.entitlements.iter().next().unwrap().clone();
    target.delete_account(&ada.id).await.unwrap();
    target
        .revoke(MembershipChange::new(group.clone(), vec![bob.id.clone()]))
        .await
        .unwrap();
    target
        .insert_account(Account::new("stray", "stray.account"))
        .unwrap();

    let (synced, report) = s.engine.sync(&people()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(synced.changes, 3, "{synced:?}");
    let who: Vec<&str> = synced.identities.iter().map(|i| i.as_str()).collect();
    assert_eq!(who, ["e1", "e2"], "Cy was not touched: {synced:?}");
    assert_eq!(synced.unclaimed.len(), 1, "{synced:?}");
    assert_eq!(synced.unclaimed[0].1.as_str(), "stray");
    assert!(
        synced.plan.ops.iter().all(|o| o.identity.is_some()
            && o.reasons.last().is_some_and(|r| r == "target change")),
        "{:#?}",
        synced.plan.ops
    );
    let names: Vec<&str> = synced.plan.ops.iter().map(|o| o.kind.name()).collect();
    assert!(
        names.contains(&"create") && names.contains(&"grant"),
        "{names:?}"
    );
    let now = target.list_all_accounts().await.unwrap();
    let ada_now = now.iter().find(|a| a.login.starts_with("ada")).unwrap();
    assert!(ada_now.enabled);
    let bob_now = now.iter().find(|a| a.id == bob.id).unwrap();
    assert!(bob_now.entitlements.contains(&group), "{bob_now:?}");
    let after = s.store.change_token(&ldap()).await.unwrap();
    assert_ne!(after, kept, "the token moved on after a successful apply");

    // What the sync itself wrote is read back next time and needs nothing.
    let (again, report) = s.engine.sync(&people()).await.unwrap();
    assert!(report.is_success() && again.plan.is_empty(), "{again:?}");
    let (quiet, _) = s.engine.sync(&people()).await.unwrap();
    assert_eq!(quiet.changes, 0, "{quiet:?}");
    assert!(quiet.identities.is_empty());
}

/// A sync whose apply fails keeps the old token: the same changes are
/// read, and set right, next time.
#[tokio::test]
async fn a_failed_sync_keeps_the_old_token() {
    let s = setup_with(prov_engine::PlanOptions::default());
    s.engine.reconcile(&people()).await.unwrap();
    s.engine.sync(&people()).await.unwrap();
    let kept = s.store.change_token(&ldap()).await.unwrap();
    let target = &s.targets[&ldap()];
    let accounts = target.list_all_accounts().await.unwrap();
    let cy = accounts.iter().find(|a| a.login.starts_with("cy")).unwrap();
    target.delete_account(&cy.id).await.unwrap();
    // The same world, but the target refuses every create: the recreate fails.
    let mut refusing = crate::planner::connectors(&s.targets);
    let mut faults = FaultConfig::seeded(1).permanent(1.0);
    faults.only = vec![Operation::CreateAccount];
    refusing.insert(
        ldap(),
        Arc::new(FaultyConnector::new(target.clone(), faults)) as Arc<dyn Connector>,
    );
    let failing = Engine::new(crate::planner::policy(), refusing, s.store.clone())
        .with_clock(s.clock.clone());
    let (failed, report) = failing.sync(&people()).await.unwrap();
    assert!(!report.is_success());
    // Cy's link went with the failed run (unlinked, then the create
    // failed): the next sync must plan Cy by name.
    assert_eq!(failed.identities.len(), 1);
    let again = s.store.change_token(&ldap()).await.unwrap().unwrap();
    let token =
        |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap()["token"].clone();
    assert_eq!(
        token(&again),
        token(kept.as_deref().unwrap()),
        "the old token: {again}"
    );
    assert!(again.contains("e3"), "with Cy pending: {again}");
    // Next time, through the target as it is, the same change is read again.
    let (synced, report) = s.engine.sync(&people()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    assert!(synced.plan.ops.iter().any(|o| o.kind.name() == "create"));
    let cy_now = target.list_all_accounts().await.unwrap();
    assert!(
        cy_now.iter().any(|a| a.login.starts_with("cy")),
        "Cy is back"
    );
    let last = s.store.change_token(&ldap()).await.unwrap().unwrap();
    assert!(!last.contains("e3"), "nothing pending: {last}");
}
