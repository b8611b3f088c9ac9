//! Quota use against IAM Identity Center's throttle: the engine provisions
//! `PROV_BENCH_AWS_USERS` (default 2,000) identity-store users, each in
//! `staff` and one of 10 department groups, through a throttling proxy in
//! front of moto. The proxy (in this process) enforces AWS's documented
//! 20 requests a second shared by the Identity Center APIs, as a token
//! bucket of 20, and answers ThrottlingException (HTTP 400, AWS's JSON
//! error body) beyond it, as AWS does; everything else it forwards to
//! moto. It counts every request: forwarded, throttled, by operation.
//!
//! ```text
//! source scripts/peers.sh; ensure_moto
//! cargo bench --bench aws
//! ```
//!
//! Each row is one provisioning (plan, then apply) at a connector pace
//! (`requests_per_second`): the default 19, and 20 (the limit itself).
//! `PROV_BENCH_AWS_PACES` (default `19,20`) picks them. Quota used: the
//! requests the proxy forwarded during the apply, over 20 a second for
//! the apply's time.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // a benchmark with a broken fixture has nothing to measure

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use prov_aws::{IdentityCenterConfig, IdentityCenterConnector};
use prov_core::{Connector, Entitlement, Identity, TargetId};
use prov_engine::{Engine, MemoryStore};
use prov_resolver::Policy;

/// AWS's documented throttle for the Identity Center APIs.
const QUOTA: f64 = 20.0;
const DEPARTMENTS: usize = 10;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the proxy saw.
#[derive(Default)]
struct Counts {
    forwarded: u64,
    throttled: u64,
    by_op: BTreeMap<String, u64>,
}

struct Proxy {
    moto: String,
    http: reqwest::Client,
    /// 20 a second, 20 deep.
    bucket: Mutex<prov_testkit::TokenBucket>,
    counts: Mutex<Counts>,
}

impl Proxy {
    fn take(&self) -> bool {
        self.bucket.lock().unwrap().take()
    }

    fn reset(&self) -> Counts {
        std::mem::take(&mut *self.counts.lock().unwrap())
    }
}

async fn forward(
    State(p): State<Arc<Proxy>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let op = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.split('.').nth(1))
        .unwrap_or("?")
        .to_owned();
    if !p.take() {
        p.counts.lock().unwrap().throttled += 1;
        return (
            StatusCode::BAD_REQUEST,
            [
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amzn-requestid", "proxy-throttled"),
            ],
            r#"{"__type":"ThrottlingException","Message":"Rate exceeded"}"#,
        )
            .into_response();
    }
    {
        let mut c = p.counts.lock().unwrap();
        c.forwarded += 1;
        *c.by_op.entry(op).or_default() += 1;
    }
    let url = format!(
        "{}{}",
        p.moto,
        uri.path_and_query().map_or("/", |x| x.as_str())
    );
    let mut req = p.http.request(method, url).body(body);
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status();
            let mut out = HeaderMap::new();
            for (k, v) in r.headers() {
                if k != "content-length" && k != "transfer-encoding" && k != "connection" {
                    out.insert(k.clone(), v.clone());
                }
            }
            let body = r.bytes().await.unwrap_or_default();
            (status, out, body).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

async fn start_proxy(moto: &str) -> (String, Arc<Proxy>) {
    let proxy = Arc::new(Proxy {
        moto: moto.to_owned(),
        http: reqwest::Client::new(),
        bucket: Mutex::new(prov_testkit::TokenBucket::new(QUOTA, QUOTA)),
        counts: Mutex::new(Counts::default()),
    });
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(Arc::clone(&proxy));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, proxy)
}

async fn sdk_at(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws_credential_types::Credentials::new(
            "testing", "testing", None, None, "bench",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await
}

fn policy() -> String {
    let mut p = String::from(
        "[attributes]\ngiven_name = \"string\"\nfamily_name = \"string\"\n\
         department = \"string\"\nemail = \"string\"\n\n[targets.aws]\n\
         account = \"always\"\nlogin = \"email\"\n[targets.aws.attributes]\n\
         given_name = \"given_name\"\nfamily_name = \"family_name\"\n\
         display_name = 'given_name + \" \" + family_name'\n\
         mail = \"email\"\n\n\
         [roles.staff]\ngrants.aws = [\"staff\"]\n[rules.all]\nwhen = \"true\"\nroles = [\"staff\"]\n",
    );
    for d in 0..DEPARTMENTS {
        let _ = write!(
            p,
            "\n[roles.d{d:02}]\ngrants.aws = [\"dept-{d:02}\"]\n[rules.d{d:02}]\n\
             when = 'department == \"dept-{d:02}\"'\nroles = [\"d{d:02}\"]\n"
        );
    }
    p
}

fn people(n: u64) -> Vec<Identity> {
    (0..n)
        .map(|i| {
            Identity::new(format!("e{i:05}"))
                .with("given_name", format!("Given{i}"))
                .with("family_name", format!("Family{i}"))
                .with("department", format!("dept-{:02}", i % DEPARTMENTS as u64))
                .with("email", format!("user{i:05}@example.com"))
        })
        .collect()
}

struct Row {
    pace: u32,
    plan_s: f64,
    plan_requests: u64,
    apply_s: f64,
    forwarded: u64,
    throttled: u64,
    changes: u64,
    by_op: BTreeMap<String, u64>,
    replan_s: f64,
    replan: Counts,
}

async fn once(pace: u32, who: &[Identity]) -> Row {
    let moto = prov_testkit::moto::Moto::start().unwrap_or_else(|e| panic!("{e}"));
    let (url, proxy) = start_proxy(&moto.url).await;
    // The groups, straight into moto (not counted).
    let setup = IdentityCenterConnector::with_sdk_config(&sdk_at(&moto.url).await, {
        let mut c = IdentityCenterConfig::new("d-1234567890");
        c.requests_per_second = 0;
        c
    })
    .unwrap();
    setup
        .create_entitlement(&Entitlement::group("staff"))
        .await
        .unwrap();
    for d in 0..DEPARTMENTS {
        setup
            .create_entitlement(&Entitlement::group(format!("dept-{d:02}")))
            .await
            .unwrap();
    }
    let mut cfg = IdentityCenterConfig::new("d-1234567890");
    cfg.requests_per_second = pace;
    let conn = IdentityCenterConnector::with_sdk_config(&sdk_at(&url).await, cfg).unwrap();
    let mut conns: BTreeMap<TargetId, Arc<dyn Connector>> = BTreeMap::new();
    conns.insert(TargetId::new("aws"), Arc::new(conn));
    let p = Policy::from_toml(&policy())
        .and_then(|p| p.compile())
        .unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::new(Arc::new(p), conns, Arc::new(MemoryStore::new()));
    proxy.reset();
    let t = Instant::now();
    let plan = engine.plan(who).await.unwrap_or_else(|e| panic!("{e}"));
    let plan_s = t.elapsed().as_secs_f64();
    let planned = proxy.reset();
    let changes = plan.ops.len() as u64;
    let t = Instant::now();
    let report = engine
        .apply(&plan, who)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let apply_s = t.elapsed().as_secs_f64();
    if let Some(f) = report.failures().next() {
        panic!("{} failed, the first: {f}", report.failures().count());
    }
    let applied = proxy.reset();
    let t = Instant::now();
    let again = engine.plan(who).await.unwrap_or_else(|e| panic!("{e}"));
    let replan_s = t.elapsed().as_secs_f64();
    let replanned = proxy.reset();
    assert!(
        again.is_empty(),
        "did not converge: {} operations left, the first {}; applied {:?}, report {} done",
        again.ops.len(),
        again.ops[0],
        applied.by_op,
        report.done()
    );
    let row = Row {
        pace,
        plan_s,
        plan_requests: planned.forwarded + planned.throttled,
        apply_s,
        forwarded: applied.forwarded,
        throttled: applied.throttled,
        changes,
        by_op: applied.by_op,
        replan_s,
        replan: replanned,
    };
    eprintln!(
        "pace {pace}: plan {:.1} s ({} requests), apply {:.1} s, {} forwarded, {} throttled, {} changes",
        row.plan_s, row.plan_requests, row.apply_s, row.forwarded, row.throttled, row.changes
    );
    row
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let users = env_num("PROV_BENCH_AWS_USERS", 2_000);
    let paces: Vec<u32> = std::env::var("PROV_BENCH_AWS_PACES")
        .unwrap_or_else(|_| "19,20".to_owned())
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    let who = people(users);
    let mut rows = Vec::new();
    for pace in paces {
        rows.push(once(pace, &who).await);
    }
    println!(
        "\n{users} users, each in staff and one of {DEPARTMENTS} groups, through a proxy \
         throttling beyond {QUOTA} requests a second (bucket of {QUOTA})\n"
    );
    println!(
        "| pace (requests/s) | plan | plan requests | apply | requests sent | throttled | quota used | changes | requests per change |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let sent = r.forwarded + r.throttled;
        println!(
            "| {} | {:.1} s | {} | {:.1} s | {sent} | {} ({:.2}%) | {:.1}% | {} | {:.3} |",
            r.pace,
            r.plan_s,
            r.plan_requests,
            r.apply_s,
            r.throttled,
            100.0 * r.throttled as f64 / sent.max(1) as f64,
            100.0 * r.forwarded as f64 / (r.apply_s * QUOTA),
            r.changes,
            sent as f64 / r.changes.max(1) as f64,
        );
    }
    for r in &rows {
        let ops: Vec<String> = r.by_op.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!("\npace {}, apply: {}", r.pace, ops.join(", "));
        let ops: Vec<String> = r
            .replan
            .by_op
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        println!(
            "pace {}, plan again ({users} users and their memberships read): {:.1} s, {} requests ({} throttled): {}",
            r.pace,
            r.replan_s,
            r.replan.forwarded + r.replan.throttled,
            r.replan.throttled,
            ops.join(", ")
        );
    }
}
