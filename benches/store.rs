//! The store under an apply and under events, SQLite against memory in the
//! same run (a bench program that prints a table).
//!
//! - `apply`: one plan of 22,500 operations (4,500 joiners: on `ldap` a
//!   create and two grants, on `github` a create and a grant) applied into
//!   in-memory targets, with the memory store and with the SQLite store
//!   (a file, WAL, `synchronous = FULL`), runs taking turns.
//! - `leaver`: one leaver event (revoke and disable on 5 targets) among
//!   `PROV_BENCH_LINKED` identities (default 100,000) linked on all 5
//!   targets, for different identities in turn, with each store.
//!
//! `cargo bench --bench store`; `PROV_BENCH_RUNS` (default 5) runs per store,
//! `PROV_BENCH_EVENTS` (default 50) events per store.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout
)] // a benchmark with broken fixtures has nothing to measure

#[cfg(not(prov_system_alloc))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use prov::core::{Account, Connector, Identity, TargetId};
use prov::engine::{
    ApplyOptions, Completion, Engine, Event, LedgerChange, Link, LinkOrigin, MemoryStore,
    SqliteStore, Store, audit::AuditEvent,
};
use prov::resolver::{CompiledPolicy, Policy};
use prov_testkit::{ManualClock, MemoryConnector};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const TARGETS: [&str; 5] = ["ldap", "github", "aws", "gcp", "saas"];

fn policy(targets: &[&str]) -> CompiledPolicy {
    let mut toml = String::from(
        "[attributes]\ngiven_name = \"string\"\nfamily_name = \"string\"\ndepartment = \"string\"\nemail = \"string\"\n",
    );
    for t in targets {
        let login = if *t == "ldap" {
            "(given_name + \".\" + family_name).lowerAscii()"
        } else {
            "email"
        };
        toml.push_str(&format!(
            "[targets.{t}]\naccount = \"always\"\nlogin = '{login}'\nleaver = {{ action = \"disable\" }}\n"
        ));
    }
    toml.push_str("[roles.employee]\n");
    for t in targets {
        toml.push_str(&format!("grants.{t} = [\"staff\"]\n"));
    }
    toml.push_str(
        "[roles.eng]\ngrants.ldap = [\"eng\"]\n[roles.sales]\ngrants.ldap = [\"sales\"]\n",
    );
    toml.push_str("[rules.all]\nwhen = 'state != \"terminated\"'\nroles = [\"employee\"]\n");
    toml.push_str("[rules.eng]\nwhen = 'department == \"Engineering\"'\nroles = [\"eng\"]\n");
    toml.push_str("[rules.sales]\nwhen = 'department == \"Sales\"'\nroles = [\"sales\"]\n");
    Policy::from_toml(&toml)
        .and_then(|p| p.compile())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn person(i: usize) -> Identity {
    Identity::new(format!("e{i:07}"))
        .with("given_name", format!("P{i}"))
        .with("family_name", "Q")
        .with("department", ["Engineering", "Sales"][i % 2])
        .with("email", format!("p{i}@example.com"))
}

fn targets(names: &[&str]) -> BTreeMap<TargetId, MemoryConnector> {
    names
        .iter()
        .map(|t| {
            (
                TargetId::new(*t),
                MemoryConnector::new().with_entitlements(["staff", "eng", "sales"]),
            )
        })
        .collect()
}

fn engine(
    policy: &Arc<CompiledPolicy>,
    targets: &BTreeMap<TargetId, MemoryConnector>,
    store: Arc<dyn Store>,
) -> Engine {
    let conns: BTreeMap<TargetId, Arc<dyn Connector>> = targets
        .iter()
        .map(|(t, c)| (t.clone(), Arc::new(c.clone()) as Arc<dyn Connector>))
        .collect();
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap(),
    ));
    let mut apply = ApplyOptions::default();
    apply.allow_destructive = true;
    Engine::new(Arc::clone(policy), conns, store)
        .with_clock(clock)
        .with_apply_options(apply)
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("prov-bench-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn open(kind: &str, dir: &std::path::Path) -> Arc<dyn Store> {
    match kind {
        "memory" => Arc::new(MemoryStore::new()),
        _ => Arc::new(SqliteStore::open(dir.join("prov.db")).await.unwrap()),
    }
}

/// One apply of 22,500 operations into fresh targets; returns its duration.
async fn apply_once(kind: &str, policy: &Arc<CompiledPolicy>, people: &[Identity]) -> Duration {
    let dir = scratch(kind);
    let store = open(kind, &dir).await;
    let t = targets(&["ldap", "github"]);
    let e = engine(policy, &t, store);
    let plan = e.plan(people).await.unwrap();
    assert_eq!(plan.ops.len(), people.len() * 5);
    let started = Instant::now();
    let report = e.apply(&plan, people).await.unwrap();
    let took = started.elapsed();
    assert!(report.is_success(), "{:?}", report.failures().next());
    let _ = std::fs::remove_dir_all(&dir);
    took
}

/// A store holding `n` identities linked on every target (and the targets
/// holding their accounts), written in large completions.
async fn linked_world(
    kind: &str,
    n: usize,
) -> (
    Arc<dyn Store>,
    BTreeMap<TargetId, MemoryConnector>,
    std::path::PathBuf,
) {
    let dir = scratch(&format!("{kind}-linked"));
    let store = open(kind, &dir).await;
    let t = targets(&TARGETS);
    let mut batch = Vec::new();
    for i in 0..n {
        let p = person(i);
        for (target, conn) in &t {
            let login = if target.as_str() == "ldap" {
                format!("p{i}.q")
            } else {
                format!("p{i}@example.com")
            };
            let mut a = Account::new(format!("{target}-{i}"), login);
            a.entitlements.insert("staff".into());
            if target.as_str() == "ldap" {
                a.entitlements.insert([("eng"), ("sales")][i % 2].into());
            }
            conn.insert_account(a.clone()).unwrap();
            let ev = AuditEvent::new(
                Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap(),
                "bench",
                "link",
                "setup",
                "done",
            );
            batch.push(
                Completion::new("setup", format!("{target}-{i}"), ev).with_ledger(
                    LedgerChange::Put(Link::new(
                        target.clone(),
                        a.id.clone(),
                        p.id.clone(),
                        LinkOrigin::Created,
                    )),
                ),
            );
        }
        if batch.len() >= 20_000 {
            store.complete(std::mem::take(&mut batch)).await.unwrap();
        }
    }
    store.complete(batch).await.unwrap();
    (store, t, dir)
}

async fn leavers(kind: &str, n: usize, events: usize, policy: &Arc<CompiledPolicy>) -> Duration {
    let (store, t, dir) = linked_world(kind, n).await;
    let e = engine(policy, &t, store);
    let mut times = Vec::with_capacity(events);
    for k in 0..events {
        // Spread over the population, each identity once.
        let i = (k * 7_919) % n;
        let started = Instant::now();
        let (plan, report) = e.handle(Event::Leaver(person(i))).await.unwrap();
        times.push(started.elapsed());
        assert!(report.is_success(), "{:?}", report.failures().next());
        assert_eq!(plan.ops.len(), 5 + 5 + 1, "5 disables, 6 revokes");
    }
    let _ = std::fs::remove_dir_all(&dir);
    median(times)
}

fn main() {
    let runs = env("PROV_BENCH_RUNS", 5);
    let linked = env("PROV_BENCH_LINKED", 100_000);
    let events = env("PROV_BENCH_EVENTS", 50);
    let joiners = env("PROV_BENCH_JOINERS", 4_500);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let two = Arc::new(policy(&["ldap", "github"]));
        let people: Vec<Identity> = (0..joiners).map(person).collect();
        let ops = joiners * 5;
        let (mut mem, mut sql) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            mem.push(apply_once("memory", &two, &people).await);
            sql.push(apply_once("sqlite", &two, &people).await);
        }
        let (m, s) = (median(mem), median(sql));
        let rate = |d: Duration| ops as f64 / d.as_secs_f64();
        println!("| apply of {ops} operations, median of {runs} | time | ops/s |");
        println!("|---|---|---|");
        println!(
            "| memory store | {:.1} ms | {:.0} |",
            m.as_secs_f64() * 1e3,
            rate(m)
        );
        println!(
            "| SQLite store (file, WAL, synchronous=FULL) | {:.1} ms | {:.0} |",
            s.as_secs_f64() * 1e3,
            rate(s)
        );
        println!("| SQLite / memory | | {:.1}% |", 100.0 * rate(s) / rate(m));
        println!();
        let five = Arc::new(policy(&TARGETS));
        let lm = leavers("memory", linked, events, &five).await;
        let ls = leavers("sqlite", linked, events, &five).await;
        println!(
            "| leaver event, {linked} identities linked on 5 targets, median of {events} | time |"
        );
        println!("|---|---|");
        println!("| memory store | {:.2} ms |", lm.as_secs_f64() * 1e3);
        println!("| SQLite store | {:.2} ms |", ls.as_secs_f64() * 1e3);
    });
}
