//! Secret attributes (an initial password): never in plans, outbox rows,
//! audit records or Debug output; set on create only, never compared.

use std::sync::Arc;

use prov_core::{AttributeDelta, Connector, ConnectorExt, TargetId, UpdateAccount, Value};
use prov_engine::{
    ApplyOptions, Engine, Executor, OpKind, OpStatus, Plan, PlanOptions, SqliteStore, Store,
};
use prov_resolver::{CompiledPolicy, Policy};

use crate::planner::{POLICY, World, lines, now, people};

/// The test policy with an initial password on ldap, marked secret.
fn policy() -> Arc<CompiledPolicy> {
    let text = POLICY.replace(
        "[targets.ldap.attributes]\n",
        "secret = [\"password\"]\n[targets.ldap.attributes]\npassword = '\"Init-\" + given_name + \"-7f3q\"'\n",
    );
    Arc::new(
        Policy::from_toml(&text)
            .and_then(|p| p.compile())
            .unwrap_or_else(|e| panic!("{e}")),
    )
}

const ADA: &str = "Init-Ada-7f3q";

fn ldap() -> TargetId {
    TargetId::new("ldap")
}

fn engine(world: &World, store: Arc<dyn Store>) -> Engine {
    crate::audit::engine_with_policy(world, store, policy())
}

fn no_secret_in(what: &str, text: &str) {
    assert!(!text.contains("Init-"), "{what} holds a secret: {text}");
}

#[tokio::test]
async fn a_secret_is_set_on_create_and_never_written_down_anywhere() {
    let world = World::new();
    let dir = std::env::temp_dir().join(format!("prov-secrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("prov.db");
    let store = Arc::new(SqliteStore::open(&db).await.unwrap());
    let engine = engine(&world, store.clone());

    let plan = engine.plan(&people()).await.unwrap();
    let create = plan
        .ops
        .iter()
        .find(|o| {
            o.target == ldap()
                && matches!(&o.kind, OpKind::Create { login, .. } if login == "ada.lovelace")
        })
        .unwrap();
    match &create.kind {
        OpKind::Create {
            attributes, secret, ..
        } => {
            assert!(!attributes.contains_key("password"), "{attributes:?}");
            assert_eq!(secret.iter().collect::<Vec<_>>(), ["password"]);
        }
        other => panic!("{other:?}"),
    }
    no_secret_in("the plan's JSON", &serde_json::to_string(&plan).unwrap());
    no_secret_in("the plan's Debug", &format!("{plan:?}"));
    no_secret_in("the plan's lines", &lines(&plan).join("\n"));
    assert!(format!("{plan:?}").contains("[redacted]"));
    let desired = policy().desired(&people()[0], now());
    no_secret_in("explain", &serde_json::to_string(&desired).unwrap());
    no_secret_in("explain's Debug", &format!("{desired:?}"));

    let report = engine.apply(&plan, &people()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    no_secret_in("the report", &format!("{report:?}"));
    // The target has it.
    let ada = world.targets[&ldap()]
        .accounts_with_login("ada.lovelace")
        .await
        .unwrap()
        .remove(0);
    assert_eq!(ada.attributes.get("password"), Some(&Value::from(ADA)));
    // The audit log and the store's files (outbox rows included, even
    // deleted ones still in the file or its write-ahead log) do not.
    let log = store.audit_log().await.unwrap();
    assert!(log.iter().any(|r| r.event.operation == "create"));
    no_secret_in("the audit log", &serde_json::to_string(&log).unwrap());
    for f in std::fs::read_dir(&dir).unwrap() {
        let path = f.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(5).any(|w| w == b"Init-"),
            "{} holds a secret",
            path.display()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_secret_is_never_compared_or_re_set_by_later_plans() {
    let p = policy();
    let mut world = World::new();
    world.converge(&p, &people()).await;
    let conn = &world.targets[&ldap()];
    let ada = conn
        .accounts_with_login("ada.lovelace")
        .await
        .unwrap()
        .remove(0);
    // Ada changed her own password; Bob's cannot be read back (as AD's unicodePwd).
    conn.update_account(UpdateAccount::new(
        ada.id.clone(),
        AttributeDelta::default().set("password", "her own"),
    ))
    .await
    .unwrap();
    let bob = conn
        .accounts_with_login("bob.smith")
        .await
        .unwrap()
        .remove(0);
    conn.update_account(UpdateAccount::new(
        bob.id,
        AttributeDelta::default().remove("password"),
    ))
    .await
    .unwrap();
    let again = world
        .plan(&p, &people(), now(), &PlanOptions::default())
        .await;
    assert!(again.is_empty(), "{:#?}", lines(&again));
    let still = conn.get_account(&ada.id).await.unwrap();
    assert_eq!(
        still.attributes.get("password"),
        Some(&Value::from("her own"))
    );
}

#[tokio::test]
async fn a_plan_from_a_file_gets_its_secret_only_by_planning_again() {
    let world = World::new();
    let store: Arc<dyn Store> = Arc::new(prov_engine::MemoryStore::new());
    let engine = engine(&world, store.clone());
    let made = engine.plan(&people()[..1]).await.unwrap();
    let saved: Plan = serde_json::from_str(&serde_json::to_string(&made).unwrap()).unwrap();
    assert!(saved.secrets.is_empty());

    // Straight to the executor: the create cannot be made right, so it is
    // refused, naming the attribute, and nothing is created.
    let report = Executor::new(world.connectors(), ApplyOptions::default())
        .apply(&saved, store.as_ref())
        .await
        .unwrap();
    let create = crate::planner::outcome(&report, "create", &ldap());
    let text = create.to_string();
    assert!(matches!(create.status, OpStatus::Failed { .. }), "{text}");
    assert!(
        text.contains("secret attribute password has no value") && text.contains("Engine::apply"),
        "{text}"
    );
    assert!(world.targets[&ldap()].accounts().is_empty());

    // Engine::apply plans again and computes it.
    let world = World::new();
    let engine = crate::secrets::engine(&world, Arc::new(prov_engine::MemoryStore::new()));
    let report = engine.apply(&saved, &people()[..1]).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    let ada = world.targets[&ldap()].accounts().remove(0);
    assert_eq!(ada.attributes.get("password"), Some(&Value::from(ADA)));
}

#[test]
fn a_secret_that_is_not_an_attribute_is_refused_by_name() {
    let text = POLICY.replace(
        "[targets.ldap.attributes]\n",
        "secret = [\"pasword\"]\n[targets.ldap.attributes]\n",
    );
    let err = Policy::from_toml(&text)
        .and_then(|p| p.compile())
        .unwrap_err()
        .to_string();
    assert!(err.contains("targets.ldap.secret"), "{err}");
    assert!(
        err.contains("`pasword` is not one of the target's attributes"),
        "{err}"
    );
}

#[tokio::test]
async fn an_explicit_reset_sets_the_secret_again_and_records_it_without_its_value() {
    let world = World::new();
    let store = Arc::new(prov_engine::MemoryStore::new());
    let engine = engine(&world, store.clone());
    let who = &people()[..1];
    engine.reconcile(who).await.unwrap();
    let conn = &world.targets[&ldap()];
    let ada = conn.accounts().remove(0);
    conn.update_account(UpdateAccount::new(
        ada.id.clone(),
        AttributeDelta::default().set("password", "forgotten"),
    ))
    .await
    .unwrap();
    let (plan, report) = engine.reset_secrets(&who[0], &ldap()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(
        lines(&plan),
        [format!(
            "update  ldap: {} (reset secret password) [e1]",
            ada.id
        )]
    );
    no_secret_in("the reset plan", &serde_json::to_string(&plan).unwrap());
    assert_eq!(
        conn.get_account(&ada.id)
            .await
            .unwrap()
            .attributes
            .get("password"),
        Some(&Value::from(ADA))
    );
    let log = store.audit_log().await.unwrap();
    let rec = log.last().unwrap();
    assert_eq!(rec.event.operation, "update password");
    assert!(
        rec.event.reason.contains("reset of secret attributes"),
        "{rec:?}"
    );
    no_secret_in("the audit log", &serde_json::to_string(&log).unwrap());
    // A target without secrets for her, or no account: refused, nothing done.
    let github = TargetId::new("github");
    let err = engine.reset_secrets(&who[0], &github).await.unwrap_err();
    assert!(err.to_string().contains("no secret attribute"), "{err}");
    let nobody = crate::planner::person("e9", "No", "Body", "Sales");
    let err = engine.reset_secrets(&nobody, &ldap()).await.unwrap_err();
    assert!(err.to_string().contains("0 linked accounts"), "{err}");
    // And the next reconcile leaves it alone again.
    let (again, _) = engine.reconcile(who).await.unwrap();
    assert!(again.is_empty(), "{:#?}", lines(&again));
}
