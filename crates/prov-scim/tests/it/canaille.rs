//! A real identity provider we did not write provisions into our server:
//! Canaille (an OIDC provider with a SCIM client), as ../shared/PEERS.md
//! describes, driven by its command line. Canaille logs SCIM errors and
//! exits 0, so the test checks what arrived in our store.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use prov_scim::server::{Kind, MemoryStore, Query, ScimServer, ScimStore, Tenants};
use serde_json::Value;

const TOKEN: &str = "canaille-token-0123456789abcdef";

fn canaille_bin() -> PathBuf {
    let dir = std::env::var("PROV_TEST_CANAILLE").unwrap_or_else(|_| {
        panic!(
            "PROV_TEST_CANAILLE (Canaille's bin directory) is not set: run the README test command"
        )
    });
    Path::new(&dir).join("canaille")
}

fn canaille(config: &Path, args: &[&str]) -> String {
    let out = Command::new(canaille_bin())
        .args(args)
        .env("CANAILLE_CONFIG", config)
        .output()
        .unwrap_or_else(|e| panic!("canaille {args:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "canaille {args:?}: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The JSON object a `canaille create ...` prints last.
fn created(stdout: &str) -> Value {
    let start = stdout.rfind("\n{").map_or(0, |i| i + 1);
    serde_json::from_str(stdout[start..].trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

async fn all(store: &MemoryStore, kind: Kind) -> Vec<prov_scim::server::Stored> {
    let mut q = Query::default();
    q.start_index = 1;
    q.count = 1000;
    store.query("canaille", kind, &q).await.unwrap().resources
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Canaille: run the README test command"]
async fn canaille_provisions_users_and_groups_into_our_server() {
    let store = Arc::new(MemoryStore::new());
    let mut tenants = Tenants::new();
    tenants.add_token("canaille", TOKEN).unwrap();
    let scim = ScimServer::new(store.clone(), tenants);
    let app = axum::Router::new().nest("/scim/v2", scim.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = std::env::temp_dir().join(format!("prov-canaille-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("canaille.toml");
    std::fs::write(
        &config,
        format!(
            "SECRET_KEY = \"a-test-secret-key-for-canaille\"\nSERVER_NAME = \"127.0.0.1:5000\"\n\
             [CANAILLE_SQL]\nDATABASE_URI = \"sqlite:///{}\"\n\
             [CANAILLE_SCIM]\nENABLE_SERVER = true\nENABLE_CLIENT = true\n",
            dir.join("canaille.sqlite").display()
        ),
    )
    .unwrap();
    let run = {
        let config = config.clone();
        move |args: Vec<String>| {
            let config = config.clone();
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                canaille(&config, &args)
            })
        }
    };
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<String>>();
    run(s(&["db", "upgrade"])).await.unwrap();
    let base = format!("http://127.0.0.1:{port}/scim/v2");
    let client = created(
        &run(s(&[
            "create",
            "client",
            "--client-id",
            "prov",
            "--client-name",
            "prov",
            "--client-uri",
            &base,
            "--redirect-uris",
            &format!("http://127.0.0.1:{port}/cb"),
            "--grant-types",
            "authorization_code",
            "--response-types",
            "code",
            "--scope",
            "openid",
            "--token-endpoint-auth-method",
            "client_secret_basic",
        ]))
        .await
        .unwrap(),
    );
    let client_id = client["id"].as_str().unwrap().to_owned();
    let now = prov_core::Clock::now(&prov_core::SystemClock)
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    run(s(&[
        "create",
        "token",
        "--token-id",
        "seed",
        "--access-token",
        TOKEN,
        "--client",
        &client_id,
        "--audience",
        &client_id,
        "--scope",
        "openid",
        "--issue-date",
        &now,
        "--lifetime",
        "86400",
    ]))
    .await
    .unwrap();

    // A user: created in Canaille, provisioned into us.
    let alice = created(
        &run(s(&[
            "create",
            "user",
            "--user-name",
            "alice",
            "--given-name",
            "Alice",
            "--family-name",
            "Liddell",
            "--emails",
            "alice@example.org",
        ]))
        .await
        .unwrap(),
    );
    let users = all(&store, Kind::User).await;
    assert_eq!(users.len(), 1, "Canaille provisioned alice: {users:?}");
    let ours = &users[0];
    assert_eq!(ours.text("userName"), Some("alice"));
    assert_eq!(ours.attributes["name"]["givenName"], "Alice");
    assert_eq!(ours.attributes["name"]["familyName"], "Liddell");
    assert_eq!(
        ours.values("emails").collect::<Vec<_>>(),
        ["alice@example.org"]
    );
    assert_eq!(
        ours.text("externalId"),
        alice["id"].as_str(),
        "Canaille's id is our externalId"
    );
    let alice_ours = ours.id.clone();

    let bob = created(
        &run(s(&[
            "create",
            "user",
            "--user-name",
            "bob",
            "--given-name",
            "Bob",
            "--family-name",
            "Builder",
            "--emails",
            "bob@example.org",
        ]))
        .await
        .unwrap(),
    );
    // A group of both: its members are our ids.
    run(s(&[
        "create",
        "group",
        "--display-name",
        "eng",
        "--members",
        alice["id"].as_str().unwrap(),
        "--members",
        bob["id"].as_str().unwrap(),
    ]))
    .await
    .unwrap();
    let groups = all(&store, Kind::Group).await;
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0].text("displayName"), Some("eng"));
    let mut members: Vec<&str> = groups[0].values("members").collect();
    members.sort_unstable();
    let bob_ours = all(&store, Kind::User)
        .await
        .into_iter()
        .find(|u| u.text("userName") == Some("bob"))
        .unwrap()
        .id;
    let mut want = vec![alice_ours.as_str(), bob_ours.as_str()];
    want.sort_unstable();
    assert_eq!(members, want);
    assert_eq!(
        store
            .groups_of("canaille", &alice_ours)
            .await
            .unwrap()
            .len(),
        1
    );

    // Deleting alice in Canaille deletes her here, and takes her out of eng.
    run(s(&[
        "delete",
        "user",
        "--id",
        alice["id"].as_str().unwrap(),
        "--noconfirm",
    ]))
    .await
    .unwrap();
    let users = all(&store, Kind::User).await;
    assert_eq!(
        users.iter().map(|u| u.text("userName")).collect::<Vec<_>>(),
        [Some("bob")]
    );
    let groups = all(&store, Kind::Group).await;
    assert_eq!(
        groups[0].values("members").collect::<Vec<_>>(),
        [bob_ours.as_str()]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
