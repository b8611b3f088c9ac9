//! A small service that Okta or Microsoft Entra ID provisions users and
//! groups into: prov's SCIM router mounted at `/scim/v2` on the service's
//! own axum app, over a SQLite file, with the tenant's bearer token from
//! the environment.
//!
//! ```text
//! PROV_SCIM_TOKEN=$(openssl rand -hex 32) cargo run --example scim_server
//! ```
//!
//! Settings (environment):
//! - `PROV_SCIM_TOKEN`: the bearer token the identity provider sends
//!   (required, at least 16 bytes; only its SHA-256 is kept);
//! - `PROV_SCIM_TENANT`: the tenant it acts for (default `default`);
//! - `PROV_SCIM_DB`: the SQLite file (default `scim.db`, created 0600);
//! - `PROV_SCIM_ADDR`: where to listen (default `127.0.0.1:8080`);
//! - `PROV_SCIM_BASE_URL`: the public URL of `/scim/v2`, for `Location`
//!   headers (default: derived from each request).
//!
//! In Okta: "SCIM connector base URL" = `https://HOST/scim/v2`, "Unique
//! identifier field for users" = `userName`, authentication mode "HTTP
//! Header" with the token. In Entra ID: "Tenant URL" = `https://HOST/scim/v2`,
//! "Secret Token" = the token. Serve it behind TLS.
//!
//! `--self-test` starts the service on a free loopback port with a
//! throwaway database and token, provisions a user and a group into it
//! over HTTP as an identity provider would, prints what the service
//! heard, and exits: what the README's test command runs.

use std::sync::Arc;

use prov_scim::server::{ScimEvent, ScimServer, SqliteStore, Tenants};

fn describe(e: &ScimEvent) -> String {
    match e {
        ScimEvent::Created {
            kind, id, resource, ..
        } => format!(
            "created {} {id} ({})",
            kind.as_str(),
            resource["userName"]
                .as_str()
                .or(resource["displayName"].as_str())
                .unwrap_or("?")
        ),
        ScimEvent::Updated { kind, id, .. } => format!("updated {} {id}", kind.as_str()),
        ScimEvent::Deactivated { id, .. } => format!("deactivated user {id}"),
        ScimEvent::Reactivated { id, .. } => format!("reactivated user {id}"),
        ScimEvent::Deleted { kind, id, .. } => format!("deleted {} {id}", kind.as_str()),
        ScimEvent::MembershipChanged {
            group,
            added,
            removed,
            ..
        } => format!(
            "group {group}: {} joined, {} left",
            added.len(),
            removed.len()
        ),
        _ => "another change".to_owned(),
    }
}

async fn service(
    token: &str,
    tenant: &str,
    db: &std::path::Path,
    base_url: Option<String>,
    heard: Arc<std::sync::Mutex<Vec<String>>>,
) -> Result<axum::Router, Box<dyn std::error::Error>> {
    let mut tenants = Tenants::new();
    tenants.add_token(tenant, token)?;
    let store = SqliteStore::open(db).await?;
    let mut scim = ScimServer::new(Arc::new(store), tenants).on_event(move |e| {
        // The service reacts here: create its own account, revoke sessions
        // on a deactivation, ... (a password, when sent, is in the event).
        let line = describe(e);
        println!("scim: {line}");
        if let Ok(mut h) = heard.lock() {
            h.push(line);
        }
    });
    if let Some(url) = base_url {
        scim = scim.base_url(url);
    }
    Ok(axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .nest("/scim/v2", scim.router()))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--self-test") {
        return self_test().await;
    }
    let token = std::env::var("PROV_SCIM_TOKEN")
        .map_err(|_| "set PROV_SCIM_TOKEN to the bearer token the identity provider sends")?;
    let tenant = std::env::var("PROV_SCIM_TENANT").unwrap_or_else(|_| "default".to_owned());
    let db = std::env::var("PROV_SCIM_DB").unwrap_or_else(|_| "scim.db".to_owned());
    let addr = std::env::var("PROV_SCIM_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let app = service(
        &token,
        &tenant,
        std::path::Path::new(&db),
        std::env::var("PROV_SCIM_BASE_URL").ok(),
        Arc::default(),
    )
    .await?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("SCIM for tenant {tenant} at http://{addr}/scim/v2 (store {db})");
    axum::serve(listener, app).await?;
    Ok(())
}

async fn self_test() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("prov-scim-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let token = "self-test-token-0123456789abcdef";
    let heard: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let app = service(token, "default", &dir.join("scim.db"), None, heard.clone()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/scim/v2", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let send = |method: reqwest::Method, path: &str, body: Option<serde_json::Value>| {
        let mut req = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(token)
            .header("content-type", "application/scim+json");
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        req.send()
    };
    // What Okta does first: is the user there?
    let found: serde_json::Value = send(
        reqwest::Method::GET,
        "/Users?filter=userName%20eq%20%22ada%40example.org%22",
        None,
    )
    .await?
    .json()
    .await?;
    assert_eq!(found["totalResults"], 0);
    let made = send(
        reqwest::Method::POST,
        "/Users",
        Some(serde_json::json!({"userName": "ada@example.org", "name": {"givenName": "Ada"}, "active": true})),
    )
    .await?;
    assert_eq!(made.status(), 201);
    let user: serde_json::Value = made.json().await?;
    let id = user["id"].as_str().ok_or("no id")?.to_owned();
    let group = send(
        reqwest::Method::POST,
        "/Groups",
        Some(serde_json::json!({"displayName": "engineering", "members": [{"value": id}]})),
    )
    .await?;
    assert_eq!(group.status(), 201);
    let off = send(
        reqwest::Method::PATCH,
        &format!("/Users/{id}"),
        Some(
            serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "value": {"active": false}}]}),
        ),
    )
    .await?;
    assert_eq!(off.status(), 200);
    let unauthorised = http.get(format!("{base}/Users")).send().await?;
    assert_eq!(unauthorised.status(), 401);
    let heard = heard.lock().map_err(|_| "poisoned")?.clone();
    assert_eq!(heard.len(), 5, "{heard:?}");
    println!("self-test passed: {} changes heard", heard.len());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
