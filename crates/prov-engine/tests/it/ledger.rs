//! The ownership ledger never lies: dead links are forgotten, two links
//! for one identity on one target are a conflict, and an account is
//! adopted as `created` only with proof.

use std::sync::Arc;

use prov_core::{AccountId, Connector, CreateAccount, IdentityId, TargetId};
use prov_engine::{
    ApplyOptions, Executor, Link, LinkOrigin, MemoryStore, OpKind, OpStatus, OutboxEntry,
    PlanOptions, PlannedOp, Store,
};
use prov_testkit::{FaultConfig, FaultyConnector, MemoryConnector, MemoryLimits};

use crate::planner::{World, lines, now, people, policy};

fn ldap() -> TargetId {
    TargetId::new("ldap")
}

async fn ldap_links_of(world: &World, who: &str) -> Vec<Link> {
    world
        .store
        .links_of(&IdentityId::new(who))
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.target == ldap())
        .collect()
}

#[tokio::test]
async fn a_link_to_an_account_deleted_on_the_target_is_forgotten_and_not_doubled() {
    let p = policy();
    let mut world = World::new();
    world.converge(&p, &people()).await;
    let before = ldap_links_of(&world, "e1").await;
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].origin, LinkOrigin::Created);
    // Someone deletes Ada's account on the directory, by hand.
    world.targets[&ldap()]
        .delete_account(&before[0].account)
        .await
        .unwrap();

    let plan = world
        .plan(&p, &people(), now(), &PlanOptions::default())
        .await;
    let unlinks: Vec<_> = plan
        .ops
        .iter()
        .filter(|o| matches!(&o.kind, OpKind::Unlink { account } if *account == before[0].account))
        .collect();
    assert_eq!(unlinks.len(), 1, "{:#?}", lines(&plan));
    assert_eq!(unlinks[0].identity.as_ref().map(|i| i.as_str()), Some("e1"));
    assert!(
        unlinks[0].reasons[0].contains("no longer lists"),
        "{:?}",
        unlinks[0].reasons
    );
    assert!(
        lines(&plan)
            .iter()
            .any(|l| l.starts_with("create  ldap: ada.lovelace")),
        "{:#?}",
        lines(&plan)
    );
    world.apply(&plan).await;

    // One link, to the new account, still the engine's own.
    let after = ldap_links_of(&world, "e1").await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after[0].account, before[0].account);
    assert_eq!(after[0].origin, LinkOrigin::Created);
    // And a reconcile with nothing to do writes nothing.
    let again = world
        .plan(&p, &people(), now(), &PlanOptions::default())
        .await;
    assert!(again.ops.is_empty(), "{:#?}", lines(&again));
}

#[tokio::test]
async fn a_dead_link_left_by_old_code_does_not_make_its_identity_look_unlinked() {
    let p = policy();
    let mut world = World::new();
    world.converge(&p, &people()).await;
    let live = ldap_links_of(&world, "e1").await.remove(0);
    // A dead duplicate link of every sort order around the live one.
    for dead in ["0-gone", "zzz-gone"] {
        world
            .store
            .put_link(&Link::new(
                ldap(),
                AccountId::new(dead),
                IdentityId::new("e1"),
                LinkOrigin::Created,
            ))
            .await
            .unwrap();
    }
    let plan = world
        .plan(&p, &people(), now(), &PlanOptions::default())
        .await;
    let got = lines(&plan);
    // Only the two dead links are forgotten: no correlation link, no create.
    assert_eq!(plan.ops.len(), 2, "{got:#?}");
    assert!(
        plan.ops
            .iter()
            .all(|o| matches!(o.kind, OpKind::Unlink { .. })),
        "{got:#?}"
    );
    world.apply(&plan).await;
    assert_eq!(ldap_links_of(&world, "e1").await, [live]);
}

#[tokio::test]
async fn two_live_links_for_one_identity_on_one_target_are_a_conflict() {
    let p = policy();
    let mut world = World::new();
    world.converge(&p, &people()).await;
    let own = ldap_links_of(&world, "e1").await.remove(0);
    let other = world.targets[&ldap()]
        .create_account(CreateAccount::new("ada.l", Default::default()))
        .await
        .unwrap();
    world
        .store
        .put_link(&Link::new(
            ldap(),
            other.id.clone(),
            IdentityId::new("e1"),
            LinkOrigin::Linked,
        ))
        .await
        .unwrap();
    // Ada's department changes: she should get new groups, but which account?
    let mut who = people();
    who[0] = crate::planner::person("e1", "Ada", "Lovelace", "Sales");
    let plan = world.plan(&p, &who, now(), &PlanOptions::default()).await;
    let mut accounts = vec![own.account.clone(), other.id.clone()];
    accounts.sort();
    assert_eq!(plan.conflicts.len(), 1, "{:?}", plan.conflicts);
    assert_eq!(plan.conflicts[0].identity.as_str(), "e1");
    assert_eq!(plan.conflicts[0].target, ldap());
    assert_eq!(plan.conflicts[0].accounts, accounts);
    assert!(
        !plan
            .ops
            .iter()
            .any(|o| o.target == ldap() && o.identity.as_ref().is_some_and(|i| i.as_str() == "e1")),
        "nothing is planned for her on ldap: {:#?}",
        lines(&plan)
    );
    // Neither account is an orphan: both are hers, and the plan says so.
    assert!(plan.orphans.is_empty(), "{:?}", plan.orphans);
    // Her other target is planned as usual.
    assert!(
        plan.ops.iter().any(|o| o.target.as_str() == "github"
            && o.identity.as_ref().is_some_and(|i| i.as_str() == "e1")),
        "{:#?}",
        lines(&plan)
    );
}

#[tokio::test]
async fn a_listing_that_lost_most_accounts_cannot_make_the_engine_forget_what_it_owns() {
    let p = policy();
    let mut world = World::new();
    let many: Vec<_> = (0..20)
        .map(|i| crate::planner::person(&format!("p{i}"), "Per", &format!("Son{i}"), "Sales"))
        .collect();
    world.converge(&p, &many).await;
    let ldap_conn = &world.targets[&ldap()];
    for a in ldap_conn.accounts() {
        ldap_conn.delete_account(&a.id).await.unwrap();
    }
    let plan = world.plan(&p, &many, now(), &PlanOptions::default()).await;
    let block = plan
        .blocked
        .iter()
        .find(|b| b.target == ldap())
        .unwrap_or_else(|| panic!("{:?}", plan.blocked));
    assert_eq!(block.unlink, 20);
    assert!(
        block
            .to_string()
            .contains("forget the links of 20 accounts"),
        "{block}"
    );
}

/// A directory where a person makes an account with the login of the
/// engine's create just before it lands: the first attempt fails
/// (transient), the retry finds the login taken.
#[derive(Debug)]
struct Interloper {
    inner: MemoryConnector,
    raced: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

#[prov_core::async_trait]
impl Connector for Interloper {
    fn capabilities(&self) -> prov_core::Capabilities {
        self.inner.capabilities()
    }
    async fn list_accounts(
        &self,
        req: prov_core::ListRequest,
    ) -> prov_core::Result<prov_core::Page<prov_core::Account>> {
        self.inner.list_accounts(req).await
    }
    async fn get_account(&self, id: &AccountId) -> prov_core::Result<prov_core::Account> {
        self.inner.get_account(id).await
    }
    async fn create_account(&self, req: CreateAccount) -> prov_core::Result<prov_core::Account> {
        let first = self.raced.lock().unwrap().insert(req.login.clone());
        if first {
            // Someone else's account, made by hand: no marker.
            self.inner
                .create_account(CreateAccount::new(req.login.clone(), Default::default()))
                .await?;
            return Err(prov_core::Error::new(
                prov_core::ErrorKind::Unavailable,
                "503 Service Unavailable",
            ));
        }
        self.inner.create_account(req).await
    }
    async fn update_account(&self, req: prov_core::UpdateAccount) -> prov_core::Result<AccountId> {
        self.inner.update_account(req).await
    }
    async fn grant(
        &self,
        req: prov_core::MembershipChange,
    ) -> prov_core::Result<prov_core::BatchOutcome> {
        self.inner.grant(req).await
    }
}

#[tokio::test(start_paused = true)]
async fn an_account_someone_made_meanwhile_is_not_adopted_as_created() {
    let p = policy();
    let world = World::new();
    let who = &people()[..1];
    let plan = world.plan(&p, who, now(), &PlanOptions::default()).await;
    let conns = world.connectors_with(&ldap(), |inner| {
        Arc::new(Interloper {
            inner,
            raced: Default::default(),
        })
    });
    let report = Executor::new(conns, ApplyOptions::default())
        .apply(&plan, &world.store)
        .await
        .unwrap();
    let create = crate::planner::outcome(&report, "create", &ldap());
    let text = create.to_string();
    assert!(
        matches!(&create.status, OpStatus::Failed { kind, .. } if *kind == prov_core::ErrorKind::Conflict),
        "{text}"
    );
    assert!(text.contains("not adopted as created"), "{text}");
    assert!(
        ldap_links_of(&world, "e1").await.is_empty(),
        "the person's account is not the engine's"
    );
    // The next plan does not take it over: a conflict for a person; a
    // target that adopts by login links it, as linked (never deleted as
    // prov's own).
    let next = world.plan(&p, who, now(), &PlanOptions::default()).await;
    assert!(
        next.conflicts.iter().any(|c| c.target == ldap()) && lines(&next).is_empty(),
        "{next:#?}"
    );
    let mut adopt = PlanOptions::default();
    adopt.default.adopt = prov_engine::Adopt::Login;
    let next = world.plan(&p, who, now(), &adopt).await;
    assert!(
        lines(&next)
            .iter()
            .any(|l| l.starts_with("link    ldap: ada.lovelace")),
        "{:#?}",
        lines(&next)
    );
}

#[tokio::test(start_paused = true)]
async fn a_lost_reply_on_a_target_without_markers_is_a_conflict_not_an_adoption() {
    let p = policy();
    let mut limits = MemoryLimits::default();
    limits.create_marker = false;
    let mut world = World::new();
    world.targets.insert(
        ldap(),
        MemoryConnector::with_limits(limits).with_entitlements(["staff", "eng", "sales"]),
    );
    let who = &people()[..1];
    let plan = world.plan(&p, who, now(), &PlanOptions::default()).await;
    let mut faults = FaultConfig::seeded(1).lost_replies(1.0);
    faults.only = vec![prov_core::Operation::CreateAccount];
    let conns = world.connectors_with(&ldap(), |c| Arc::new(FaultyConnector::new(c, faults)));
    let report = Executor::new(conns, ApplyOptions::default())
        .apply(&plan, &world.store)
        .await
        .unwrap();
    let create = crate::planner::outcome(&report, "create", &ldap());
    let text = create.to_string();
    assert!(
        text.contains("the connector keeps no create marker"),
        "{text}"
    );
    assert!(ldap_links_of(&world, "e1").await.is_empty());
}

#[tokio::test]
async fn recovery_adopts_a_created_account_only_with_its_marker() {
    let world = World::new();
    let conn = &world.targets[&ldap()];
    for (login, marked) in [("ada.lovelace", true), ("bob.smith", false)] {
        let store = Arc::new(MemoryStore::new());
        let op: PlannedOp = serde_json::from_value(serde_json::json!({
            "id": format!("op-{login}"), "target": "ldap", "identity": "e1", "op": "create",
            "login": login, "attributes": {}, "enabled": true, "reasons": ["joiner"]
        }))
        .unwrap();
        store
            .outbox_begin(&[OutboxEntry::new("r7", "host:1", op, now())])
            .await
            .unwrap();
        // The create landed before the kill (with its marker), or a
        // person made an account with that login (without one).
        let mut req = CreateAccount::new(login, Default::default());
        if marked {
            req = req.with_marker(format!("prov:r7:op-{login}"));
        }
        let made = conn.create_account(req).await.unwrap();
        let engine = crate::audit::engine_over(&world, store.clone());
        assert_eq!(engine.recover().await.unwrap(), 1);
        let log = store.audit_log().await.unwrap();
        let outcome = &log[0].event.outcome;
        let link = store.link(&ldap(), &made.id).await.unwrap();
        if marked {
            assert!(outcome.starts_with("recovered: applied"), "{outcome}");
            assert!(outcome.contains("linked as created"), "{outcome}");
            assert_eq!(link.map(|l| l.origin), Some(LinkOrigin::Created));
        } else {
            assert!(outcome.starts_with("recovered: unknown"), "{outcome}");
            assert!(outcome.contains("not adopted as created"), "{outcome}");
            assert_eq!(link, None);
        }
    }
}
