use prov_engine::audit::{self, AuditRecord};
use prov_engine::{PlanOptions, Store};

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
