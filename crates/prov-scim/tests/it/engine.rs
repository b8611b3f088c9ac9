//! Through the engine into scim2-server, the independent reference server
//! (issue 16 item 4): 1,000 users and 20 groups the engine makes itself;
//! a second run makes no write; a mover and a leaver change exactly what
//! they should.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use prov_core::{Connector, ConnectorExt, Identity, LifecycleState, TargetId};
use prov_engine::{Engine, MemoryStore, OpKind, PlanOptions, TargetOptions};
use prov_resolver::Policy;
use prov_scim::client::{Auth, ScimClient, ScimConnector, ScimLimits};

use crate::client::{TOKEN, loopback, scim2_server};

const PEOPLE: usize = 1_000;
const GROUPS: usize = 20;

/// Everyone gets an account; each of 20 departments its own group.
fn policy() -> String {
    let mut p = String::from(
        r#"
[attributes]
given_name = "string"
family_name = "string"
department = "string"
email = "string"

[targets.scim]
account = "always"
login = "email"
leaver = { action = "disable" }
[targets.scim.attributes]
given_name = "given_name"
family_name = "family_name"
display_name = 'given_name + " " + family_name'
department = "department"
"#,
    );
    for d in 0..GROUPS {
        let _ = write!(
            p,
            "\n[roles.d{d:02}]\ngrants.scim = [\"dept-{d:02}\"]\n\
             [rules.d{d:02}]\nwhen = 'state != \"terminated\" && department == \"dept-{d:02}\"'\nroles = [\"d{d:02}\"]\n"
        );
    }
    p
}

fn person(i: usize, dept: usize) -> Identity {
    Identity::new(format!("e{i:04}"))
        .with("given_name", format!("Given{i}"))
        .with("family_name", format!("Family{i}"))
        .with("department", format!("dept-{dept:02}"))
        .with("email", format!("user{i:04}@example.com"))
}

fn people() -> Vec<Identity> {
    (0..PEOPLE).map(|i| person(i, i % GROUPS)).collect()
}

fn lines(plan: &prov_engine::Plan) -> Vec<String> {
    let mut out: Vec<String> = plan
        .ops
        .iter()
        .map(|o| {
            let s = o.to_string();
            s.split_once(' ')
                .map_or(s.clone(), |(_, r)| r.trim().to_owned())
        })
        .collect();
    out.sort();
    out
}

fn count(plan: &prov_engine::Plan, kind: &str) -> usize {
    plan.ops.iter().filter(|o| o.kind.name() == kind).count()
}

/// Members of each group, by login.
async fn memberships(conn: &ScimConnector) -> BTreeMap<String, Vec<String>> {
    let logins: BTreeMap<String, String> = conn
        .list_all_accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.id.to_string(), a.login))
        .collect();
    let mut out = BTreeMap::new();
    for g in conn.list_all_entitlements().await.unwrap() {
        let mut members: Vec<String> = conn
            .list_all_members(&g.id)
            .await
            .unwrap()
            .iter()
            .map(|id| logins[id.as_str()].clone())
            .collect();
        members.sort();
        out.insert(g.id.to_string(), members);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scim2-server: run the README test command"]
async fn a_thousand_users_and_twenty_groups_into_scim2_server_then_nothing_then_exactly_a_mover_and_a_leaver()
 {
    let server = scim2_server().await;
    let client =
        ScimClient::new(&server.base, Auth::Bearer(TOKEN.to_owned()), &loopback()).unwrap();
    let conn = Arc::new(ScimConnector::new(client, ScimLimits::default()));
    let scim = TargetId::new("scim");
    let mut conns: BTreeMap<TargetId, Arc<dyn Connector>> = BTreeMap::new();
    conns.insert(scim.clone(), conn.clone() as Arc<dyn Connector>);
    let mut opts = PlanOptions::default();
    let mut t = TargetOptions::default();
    t.create_entitlements = true;
    opts.targets.insert(scim.clone(), t);
    let policy = Arc::new(Policy::from_toml(&policy()).unwrap().compile().unwrap());
    let engine = Engine::new(policy, conns, Arc::new(MemoryStore::new())).with_plan_options(opts);

    // The first run: every account, every group (none exists yet), every
    // membership.
    let (plan, report) = engine.reconcile(&people()).await.unwrap();
    assert!(
        report.is_success(),
        "{:#?}",
        report.failures().collect::<Vec<_>>()
    );
    assert_eq!(count(&plan, "create"), PEOPLE);
    assert_eq!(count(&plan, "create_entitlement"), GROUPS);
    assert_eq!(count(&plan, "grant"), PEOPLE);
    assert_eq!(plan.ops.len(), 2 * PEOPLE + GROUPS);
    let first_calls = report.calls;
    let before = memberships(&conn).await;
    assert_eq!(before.len(), GROUPS);
    assert!(
        before.values().all(|m| m.len() == PEOPLE / GROUPS),
        "{before:?}"
    );
    assert_eq!(conn.list_all_accounts().await.unwrap().len(), PEOPLE);

    // The second run: nothing to do, nothing sent.
    let (plan, report) = engine.reconcile(&people()).await.unwrap();
    assert!(plan.is_empty(), "{:#?}", lines(&plan));
    assert_eq!(report.calls, 0, "a run with nothing to do writes nothing");

    // A mover (e0003: dept-03 -> dept-04) and a leaver (e0005).
    let mut now = people();
    now[3] = person(3, 4);
    now[5].state = LifecycleState::Terminated;
    let plan = engine.plan(&now).await.unwrap();
    assert_eq!(
        lines(&plan),
        [
            "disable scim: user0005@example.com [e0005]",
            "grant   scim: dept-04 for user0003@example.com [e0003]",
            "revoke  scim: dept-03 for user0003@example.com [e0003]",
            "revoke  scim: dept-05 for user0005@example.com [e0005]",
            "update  scim: user0003@example.com (set department) [e0003]",
        ],
        "{plan:#?}"
    );
    let update = plan
        .ops
        .iter()
        .find(|o| matches!(o.kind, OpKind::Update { .. }))
        .unwrap();
    let OpKind::Update { delta, .. } = &update.kind else {
        unreachable!()
    };
    assert_eq!(
        delta.set.keys().collect::<Vec<_>>(),
        ["department"],
        "only the department changes"
    );
    let (_, report) = engine.reconcile(&now).await.unwrap();
    assert!(
        report.is_success(),
        "{:#?}",
        report.failures().collect::<Vec<_>>()
    );
    assert_eq!(report.calls, 5, "one request per change");
    // Exactly that changed on the server.
    let after = memberships(&conn).await;
    let mut expected = before.clone();
    let login = |i: usize| format!("user{i:04}@example.com");
    expected
        .get_mut("dept-03")
        .unwrap()
        .retain(|l| *l != login(3));
    expected
        .get_mut("dept-05")
        .unwrap()
        .retain(|l| *l != login(5));
    let four = expected.get_mut("dept-04").unwrap();
    four.push(login(3));
    four.sort();
    assert_eq!(after, expected);
    let accounts = conn.list_all_accounts().await.unwrap();
    let off: Vec<&str> = accounts
        .iter()
        .filter(|a| !a.enabled)
        .map(|a| a.login.as_str())
        .collect();
    assert_eq!(off, [login(5).as_str()]);
    let moved = accounts.iter().find(|a| a.login == login(3)).unwrap();
    assert_eq!(
        moved.attributes.get("department").map(ToString::to_string),
        Some("dept-04".to_owned())
    );
    // And then nothing again.
    let (plan, report) = engine.reconcile(&now).await.unwrap();
    assert!(plan.is_empty(), "{:#?}", lines(&plan));
    assert_eq!(report.calls, 0);
    println!(
        "{PEOPLE} users, {GROUPS} groups: first run {first_calls} calls; mover and leaver 5 calls"
    );
}
