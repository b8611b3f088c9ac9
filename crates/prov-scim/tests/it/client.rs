//! The client's transport against our server on a loopback port, and
//! against a stub that asks to slow down.

use std::sync::Arc;
use std::time::Duration;

use prov_core::ErrorKind;
use prov_scim::client::{Auth, ClientOptions, ScimClient};
use prov_scim::server::{MemoryStore, ScimServer, Tenants};
use serde_json::json;

pub(crate) const TOKEN: &str = "client-token-0123456789abcdef";

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// Our server over a memory store, one tenant signed in with [`TOKEN`],
/// configured by `setup`, on a loopback port: its SCIM base URL.
async fn our_server(
    setup: impl FnOnce(ScimServer<MemoryStore>) -> ScimServer<MemoryStore>,
) -> String {
    let mut tenants = Tenants::new();
    tenants.add_token("acme", TOKEN).unwrap();
    let scim = setup(ScimServer::new(Arc::new(MemoryStore::new()), tenants));
    format!(
        "{}/scim/v2",
        serve(axum::Router::new().nest("/scim/v2", scim.router())).await
    )
}

pub(crate) fn loopback() -> ClientOptions {
    let mut o = ClientOptions::default();
    o.danger_plaintext = true;
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transport_reads_what_the_service_does_and_keeps_its_errors() {
    let base = our_server(|s| s).await;
    let client = ScimClient::new(&base, Auth::Bearer(TOKEN.to_owned()), &loopback()).unwrap();
    let spc = client.service_provider_config().await.unwrap();
    assert!(spc.patch.supported && spc.etag.supported && spc.sort.supported);
    assert_eq!(
        (spc.bulk.max_operations, spc.filter.max_results),
        (1000, 1000)
    );
    let made = client
        .request(
            reqwest::Method::POST,
            "/Users",
            Some(&json!({"userName": "ann"})),
            None,
        )
        .await
        .unwrap();
    assert_eq!(made.status, 201);
    assert_eq!(made.etag.as_deref(), Some("W/\"1\""));
    let e = client
        .request(
            reqwest::Method::POST,
            "/Users",
            Some(&json!({"userName": "ANN"})),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(e.to_string().contains("409 uniqueness"), "{e}");
    let id = made.body.unwrap()["id"].as_str().unwrap().to_owned();
    let e = client
        .request(
            reqwest::Method::PUT,
            &format!("/Users/{id}"),
            Some(&json!({"userName": "ann"})),
            Some("W/\"9\""),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "a stale If-Match: {e}");
    let e = client
        .request(reqwest::Method::GET, "/Users/nope", None, None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let gone = client
        .request(reqwest::Method::DELETE, &format!("/Users/{id}"), None, None)
        .await
        .unwrap();
    assert_eq!((gone.status, gone.body), (204, None));
    // Wrong credentials: refused, and the token is nowhere in the error.
    let wrong = ScimClient::new(
        &base,
        Auth::Bearer("not-the-token-0123456789".to_owned()),
        &loopback(),
    )
    .unwrap();
    let e = wrong.service_provider_config().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    assert!(
        !format!("{e} {e:?} {wrong:?}").contains("not-the-token"),
        "{e:?}"
    );
    // Credentials over plain http:// are refused unless the danger switch says so.
    let e = ScimClient::new(
        &base,
        Auth::Bearer(TOKEN.to_owned()),
        &ClientOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.field(), Some("base_url"), "{e}");
    assert!(ScimClient::new("ftp://x", Auth::Bearer(TOKEN.to_owned()), &loopback()).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_down_and_unavailable_carry_the_wait() {
    use axum::http::{HeaderValue, StatusCode};
    use axum::response::IntoResponse;
    let app = axum::Router::new()
        .route("/busy", axum::routing::get(|| async {
            let mut r = (StatusCode::TOO_MANY_REQUESTS, r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"429","detail":"slow down"}"#).into_response();
            r.headers_mut().insert("retry-after", HeaderValue::from_static("7"));
            r
        }))
        .route("/down", axum::routing::get(|| async {
            let mut r = (StatusCode::SERVICE_UNAVAILABLE, "").into_response();
            r.headers_mut().insert("retry-after", HeaderValue::from_static("3"));
            r
        }))
        .route("/odd", axum::routing::get(|| async { (StatusCode::OK, "<html>") }));
    let base = serve(app).await;
    let client = ScimClient::new(
        &base,
        Auth::Basic {
            user: "u".into(),
            password: "p4ss-word".into(),
        },
        &loopback(),
    )
    .unwrap();
    let e = client
        .request(reqwest::Method::GET, "/busy", None, None)
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.retry_after()),
        (ErrorKind::RateLimited, Some(Duration::from_secs(7))),
        "{e}"
    );
    assert!(e.to_string().contains("slow down"));
    let e = client
        .request(reqwest::Method::GET, "/down", None, None)
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.retry_after()),
        (ErrorKind::Unavailable, Some(Duration::from_secs(3))),
        "{e}"
    );
    assert!(e.is_retryable());
    let e = client
        .request(reqwest::Method::GET, "/odd", None, None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unexpected, "{e}");
    assert!(!format!("{client:?}").contains("p4ss"));
}

/// The connector keeps the `Connector` contract against our own server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_passes_the_conformance_suite_against_our_server() {
    use prov_scim::client::{ScimConnector, ScimLimits};
    use prov_testkit::conformance::{self, Namespace, SuiteOptions};
    let base = our_server(|s| s).await;
    let client = ScimClient::new(&base, Auth::Bearer(TOKEN.to_owned()), &loopback()).unwrap();
    client
        .request(
            reqwest::Method::POST,
            "/Groups",
            Some(&json!({"displayName": "staff"})),
            None,
        )
        .await
        .unwrap();
    let mut limits = ScimLimits::default();
    limits.members_per_patch = 50;
    limits.page_size = 20;
    let conn = ScimConnector::new(client, limits);
    let report =
        conformance::run_all(&conn, &Namespace::new("scim"), &SuiteOptions::default()).await;
    assert!(report.is_success(), "{report}");
    assert_eq!(
        report.outcome("entitlements_are_created_and_deleted"),
        Some(&conformance::Outcome::Passed),
        "groups are created and deleted: {report}"
    );
}

/// scim2-server (the Python reference server, PEERS.md), started on a free port.
pub(crate) struct Scim2Server {
    child: std::process::Child,
    pub(crate) base: String,
}

impl Drop for Scim2Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn scim2_server() -> Scim2Server {
    let dir = std::env::var("PROV_TEST_SCIM2_SERVER").unwrap_or_else(|_| {
        panic!("PROV_TEST_SCIM2_SERVER (scim2-server's bin directory) is not set: run the README test command")
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(std::path::Path::new(&dir).join("scim2-server"))
        .args([
            "--hostname",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--bearer-token",
            TOKEN,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}/v2");
    let started = std::time::Instant::now();
    while reqwest::get(format!("{base}/ServiceProviderConfig"))
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "scim2-server did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Scim2Server { child, base }
}

/// The connector keeps the contract against an independent server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scim2-server: run the README test command"]
async fn the_connector_passes_the_conformance_suite_against_scim2_server() {
    use prov_scim::client::{ScimConnector, ScimLimits};
    use prov_testkit::conformance::{self, Namespace, SuiteOptions};
    let server = scim2_server().await;
    let client =
        ScimClient::new(&server.base, Auth::Bearer(TOKEN.to_owned()), &loopback()).unwrap();
    client
        .request(reqwest::Method::POST, "/Groups", Some(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "staff"})), None)
        .await
        .unwrap();
    let mut limits = ScimLimits::default();
    limits.members_per_patch = 50;
    limits.page_size = 20;
    let conn = ScimConnector::new(client, limits);
    let report =
        conformance::run_all(&conn, &Namespace::new("scim"), &SuiteOptions::default()).await;
    assert!(report.is_success(), "{report}");
    assert_eq!(
        report.outcome("entitlements_are_created_and_deleted"),
        Some(&conformance::Outcome::Passed),
        "groups are created and deleted: {report}"
    );
}

/// A cursor the connector never gave is refused (a cursor of 0 made
/// `start - 1` underflow: a panic in a debug build, a wrapped index in a
/// release one), and an attribute with no SCIM path is an error naming
/// it, not silently left out (the next plan would set it again, forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cursors_and_unmapped_attributes_are_errors() {
    use prov_core::{AttributeDelta, Connector, CreateAccount, ListRequest, UpdateAccount};
    use prov_scim::client::{ScimConnector, ScimLimits};
    let base = our_server(|s| s).await;
    let client = ScimClient::new(&base, Auth::Bearer(TOKEN.to_owned()), &loopback()).unwrap();
    let conn = ScimConnector::new(client, ScimLimits::default());
    for cursor in ["0", "-1", "x", "18446744073709551616"] {
        let e = conn
            .list_accounts(ListRequest::after(cursor))
            .await
            .unwrap_err();
        assert_eq!(
            (e.kind(), e.field()),
            (ErrorKind::InvalidInput, Some("cursor")),
            "{cursor}: {e}"
        );
        let e = conn
            .list_entitlements(ListRequest::after(cursor))
            .await
            .unwrap_err();
        assert_eq!(e.field(), Some("cursor"), "{cursor}: {e}");
    }
    // A cursor far past the end: an empty page, no overflow.
    let page = conn
        .list_accounts(ListRequest::after(i64::MAX.to_string()))
        .await
        .unwrap();
    assert!(page.items.is_empty() && page.next.is_none());
    let mut attrs = prov_core::Attributes::new();
    attrs.insert("badge_colour".to_owned(), prov_core::Value::from("red"));
    let mut create = CreateAccount::new("ann", attrs);
    create.enabled = true;
    let e = conn.create_account(create).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.field()),
        (ErrorKind::InvalidInput, Some("badge_colour")),
        "{e}"
    );
    // Two values where SCIM's mapped path takes one: refused, naming the
    // attribute (it was sent as its first value, dropping the second).
    let mut attrs = prov_core::Attributes::new();
    attrs.insert(
        "email".to_owned(),
        prov_core::Value::List(vec!["a@example.com".into(), "b@example.com".into()]),
    );
    let e = conn
        .create_account(CreateAccount::new("cat", attrs))
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.field()),
        (ErrorKind::InvalidInput, Some("email")),
        "{e}"
    );
    let made = conn
        .create_account(CreateAccount::new("bob", prov_core::Attributes::new()))
        .await
        .unwrap();
    let e = conn
        .update_account(UpdateAccount::new(
            made.id.clone(),
            AttributeDelta::default().set("badge_colour", "red"),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("badge_colour"), "{e}");
}

/// An OAuth 2.0 token endpoint (RFC 6749 section 4.4) on a loopback port:
/// it issues `oauth-token-N` with the lifetime set in `expires_in`, or a
/// token our server does not know while `issue_unknown` is set, or
/// refuses the client while `refuse` is set; it keeps what it was sent.
#[derive(Default)]
struct TokenEndpoint {
    issued: std::sync::atomic::AtomicU32,
    expires_in: std::sync::atomic::AtomicI64,
    issue_unknown: std::sync::atomic::AtomicBool,
    refuse: std::sync::atomic::AtomicBool,
    seen: std::sync::Mutex<Vec<(String, String)>>,
}

fn issued_token(n: u32) -> String {
    format!("oauth-token-{n:04}-0123456789abcdef")
}

async fn token_endpoint(endpoint: Arc<TokenEndpoint>) -> String {
    use std::sync::atomic::Ordering::SeqCst;
    let handler = move |headers: axum::http::HeaderMap, body: String| {
        let endpoint = endpoint.clone();
        async move {
            let basic = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            endpoint.seen.lock().unwrap().push((basic, body));
            // Let concurrent callers pile up behind the one fetch.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let json = |status: u16, body: serde_json::Value| {
                axum::response::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(body.to_string()))
                    .unwrap()
            };
            if endpoint.refuse.load(SeqCst) {
                return json(
                    401,
                    json!({"error": "invalid_client", "error_description": "client authentication failed"}),
                );
            }
            let n = endpoint.issued.fetch_add(1, SeqCst) + 1;
            let token = if endpoint.issue_unknown.swap(false, SeqCst) {
                "revoked-token-0123456789abcdef".to_owned()
            } else {
                issued_token(n)
            };
            let mut answer = json!({"access_token": token, "token_type": "Bearer"});
            let life = endpoint.expires_in.load(SeqCst);
            if life >= 0 {
                answer["expires_in"] = json!(life);
            }
            json(200, answer)
        }
    };
    serve(axum::Router::new().route("/token", axum::routing::post(handler))).await
}

/// OAuth 2.0 client credentials against a real token endpoint and our
/// server: the token is fetched once and reused while fresh, once for
/// many callers at a time, renewed when its lifetime runs out, replaced
/// once when the service refuses it; a refusal by the token endpoint is
/// Unauthenticated with its `error`, and the secret appears nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_tokens_are_reused_renewed_and_replaced() {
    use prov_scim::client::ClientCredentials;
    use std::sync::atomic::Ordering::SeqCst;
    let endpoint = Arc::new(TokenEndpoint::default());
    endpoint.expires_in.store(3600, SeqCst);
    let token_url = format!("{}/token", token_endpoint(endpoint.clone()).await);
    let mut tenants = Tenants::new();
    for n in 1..=20 {
        tenants.add_token("acme", &issued_token(n)).unwrap();
    }
    let scim = ScimServer::new(Arc::new(MemoryStore::new()), tenants);
    let base = format!(
        "{}/scim/v2",
        serve(axum::Router::new().nest("/scim/v2", scim.router())).await
    );
    let secret = "s3cret+/x";
    let creds = ClientCredentials::new(&token_url, "prov client", secret).with_scope("scim:write");
    let client = ScimClient::new(&base, Auth::OAuth2(creds.clone()), &loopback()).unwrap();
    assert!(!format!("{client:?}").contains(secret));

    // Eight callers with no token yet: one fetch between them.
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let c = client.clone();
        calls.spawn(async move { c.request(reqwest::Method::GET, "/Users", None, None).await });
    }
    while let Some(r) = calls.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!((client.tokens_fetched(), client.requests_sent()), (1, 8));
    {
        let seen = endpoint.seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        // RFC 6749 section 2.3.1: id and secret form-encoded, then Basic.
        assert_eq!(seen[0].0, "Basic cHJvdiUyMGNsaWVudDpzM2NyZXQlMkIlMkZ4");
        assert_eq!(
            seen[0].1,
            "grant_type=client_credentials&scope=scim%3Awrite"
        );
    }
    // Fresh for an hour: reused.
    client
        .request(reqwest::Method::GET, "/Users", None, None)
        .await
        .unwrap();
    assert_eq!(client.tokens_fetched(), 1);

    // A token that lives 0 seconds is renewed before every request.
    let brief = ScimClient::new(&base, Auth::OAuth2(creds.clone()), &loopback()).unwrap();
    endpoint.expires_in.store(0, SeqCst);
    for _ in 0..3 {
        brief
            .request(reqwest::Method::GET, "/Users", None, None)
            .await
            .unwrap();
    }
    assert_eq!(brief.tokens_fetched(), 3);
    // One that lives 4 seconds is renewed at half its life.
    endpoint.expires_in.store(4, SeqCst);
    let short = ScimClient::new(&base, Auth::OAuth2(creds.clone()), &loopback()).unwrap();
    short
        .request(reqwest::Method::GET, "/Users", None, None)
        .await
        .unwrap();
    short
        .request(reqwest::Method::GET, "/Users", None, None)
        .await
        .unwrap();
    assert_eq!(short.tokens_fetched(), 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    short
        .request(reqwest::Method::GET, "/Users", None, None)
        .await
        .unwrap();
    assert_eq!(short.tokens_fetched(), 2);

    // A token the service refuses (401) is replaced once, and the request
    // sent again with the new one.
    endpoint.expires_in.store(3600, SeqCst);
    endpoint.issue_unknown.store(true, SeqCst);
    let replaced = ScimClient::new(&base, Auth::OAuth2(creds.clone()), &loopback()).unwrap();
    replaced
        .request(reqwest::Method::GET, "/Users", None, None)
        .await
        .unwrap();
    assert_eq!(
        (replaced.tokens_fetched(), replaced.requests_sent()),
        (2, 2)
    );

    // The token endpoint refuses the client: Unauthenticated, with the
    // endpoint's error code and description; no secret in it.
    endpoint.refuse.store(true, SeqCst);
    let refused = ScimClient::new(&base, Auth::OAuth2(creds), &loopback()).unwrap();
    let e = refused
        .request(reqwest::Method::GET, "/Users", None, None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(e.to_string().contains("invalid_client"), "{e}");
    assert!(
        e.to_string().contains("client authentication failed"),
        "{e}"
    );
    assert!(!format!("{e} {e:?}").contains(secret), "{e:?}");
    assert_eq!(refused.requests_sent(), 0);
}

/// What our server enforces to stand in for a service with `profile`'s
/// published limits: its page cap, its cap on membership changes per
/// PATCH, no `/Bulk` where it has none, and its filter rules (AWS and
/// Atlassian: only `eq` joined by `and`, on userName, externalId and
/// displayName).
fn enforcing(profile: &prov_scim::client::Profile) -> prov_scim::server::ServerConfig {
    use prov_scim::server::{FilterRules, ServerConfig};
    let mut config = ServerConfig::default();
    config.max_results = profile.page_size as u64;
    config.max_member_changes = Some(profile.members_per_patch);
    config.bulk = profile.bulk;
    let mut rules = FilterRules::default();
    rules.or = profile.filter_or;
    rules.only_eq = !profile.filter_or;
    if !profile.filter_by_id && !profile.filter_by_member {
        rules.attributes = Some(
            ["userName", "externalId", "displayName"]
                .map(str::to_owned)
                .to_vec(),
        );
    }
    config.filters = rules;
    config
}

/// Every profile keeps the `Connector` contract against our server
/// enforcing that profile's limits (paces left out: the next test paces).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_profile_passes_the_suite_against_a_server_enforcing_its_limits() {
    use prov_scim::client::{Profile, ScimConnector, ScimLimits};
    use prov_testkit::conformance::{self, Namespace, SuiteOptions};
    let mut served = Vec::new();
    for profile in Profile::ALL {
        // Profiles that differ only in their paces are served the same.
        let key = (
            profile.page_size,
            profile.members_per_patch,
            profile.bulk,
            profile.filter_or,
            profile.filter_by_id,
            profile.filter_by_member,
        );
        if served.contains(&key) {
            continue;
        }
        served.push(key);
        let base = our_server(|s| s.config(enforcing(profile))).await;
        let client = ScimClient::new(&base, Auth::Bearer(TOKEN.to_owned()), &loopback()).unwrap();
        client
            .request(
                reqwest::Method::POST,
                "/Groups",
                Some(&json!({"displayName": "staff"})),
                None,
            )
            .await
            .unwrap();
        let conn = ScimConnector::new(client.clone(), ScimLimits::of(profile));
        let report =
            conformance::run_all(&conn, &Namespace::new("scim"), &SuiteOptions::default()).await;
        assert!(report.is_success(), "profile {}: {report}", profile.name);
        println!(
            "profile {}: {} requests",
            profile.name,
            client.requests_sent()
        );
    }
    assert_eq!(served.len(), 4, "generic, aws, github and atlassian");
    // The server does enforce them: a client that ignores the AWS profile
    // (`or` filters, 1,000 members a PATCH) fails against it.
    let aws = Profile::named("aws").unwrap();
    let base = our_server(|s| s.config(enforcing(aws))).await;
    let client = ScimClient::new(&base, Auth::Bearer(TOKEN.to_owned()), &loopback()).unwrap();
    client
        .request(
            reqwest::Method::POST,
            "/Groups",
            Some(&json!({"displayName": "staff"})),
            None,
        )
        .await
        .unwrap();
    let conn = ScimConnector::new(client, ScimLimits::default());
    let report =
        conformance::run_all(&conn, &Namespace::new("scim"), &SuiteOptions::default()).await;
    assert!(!report.is_success(), "{report}");
    let text = report.to_string();
    assert!(text.contains("invalidFilter"), "{text}");
}

/// A service that answers 429 past its rate: a client keeping to a pace
/// within it is never refused; one that ignores it is told how long to
/// wait, in whole seconds, as a `RateLimited` error the engine retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_client_stays_within_a_rate_limit_an_unpaced_one_is_told_to_wait() {
    use prov_core::RateLimit;
    use prov_scim::client::{Pace, Route};
    // 20 requests a second, 10 at once.
    let mut config = prov_scim::server::ServerConfig::default();
    let mut limit = RateLimit::new(20, Duration::from_secs(1));
    limit.burst = 10;
    config.rate_limit = Some(limit);
    let burst = |client: ScimClient| async move {
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let c = client.clone();
                tokio::spawn(async move {
                    let mut out = Vec::new();
                    for _ in 0..10 {
                        out.push(c.request(reqwest::Method::GET, "/Users", None, None).await);
                    }
                    out
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    };

    // Paced at 10 a second (600 a minute), 5 at once: 40 requests in
    // about 3.5 s, none refused.
    let base = our_server(|s| s.config(config.clone())).await;
    let mut options = loopback();
    options.paces = vec![Pace::new(
        "test",
        prov_scim::client::METHODS,
        Route::Any,
        600,
        5,
    )];
    let paced = ScimClient::new(&base, Auth::Bearer(TOKEN.to_owned()), &options).unwrap();
    let answers = burst(paced.clone()).await;
    let refused: Vec<_> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(paced.requests_sent(), 40);

    // Unpaced against a fresh server: past the first ten, refused with a
    // wait of one second (a request is due every 50 ms).
    let base = our_server(|s| s.config(config)).await;
    let unpaced = ScimClient::new(&base, Auth::Bearer(TOKEN.to_owned()), &loopback()).unwrap();
    let answers = burst(unpaced).await;
    let refused: Vec<_> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    // Unless 40 requests took 1.5 s, some were refused (about 29 are).
    assert!(!refused.is_empty(), "none of 40 refused");
    for e in refused {
        assert_eq!(
            (e.kind(), e.retry_after()),
            (ErrorKind::RateLimited, Some(Duration::from_secs(1))),
            "{e}"
        );
        assert!(e.is_retryable());
        assert!(e.to_string().contains("429"), "{e}");
    }
}
