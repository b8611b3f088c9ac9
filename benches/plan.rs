//! Planning at scale and one leaver event.
//!
//! - `plan_resolved`: 1,000,000 desired accounts (already resolved) against
//!   1,000,000 actual accounts on one target with 1% changed, on both cores.
//!   Peer in the same run: a naive diff that turns both sides into
//!   `HashMap<String, serde_json::Value>` and compares them.
//! - `first_reconcile_by_mail`: the same million with no links yet, every
//!   account found by the correlation rule `mail` = identity `email`.
//! - `unlinked_100_of`: a daily reconcile where 100 identities have no link
//!   yet (found by mail) among the linked million.
//! - `handle_leaver`: engine time for one leaver event across 5 memory
//!   targets (revoke and disable on each), memory store.
//!
//! `cargo bench --bench plan`; `PROV_BENCH_ACCOUNTS=N` for a smaller run.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // a benchmark with broken fixtures has nothing to measure

/// The allocator the `prov` binary uses; `RUSTFLAGS="--cfg prov_system_alloc"`
/// measures with the system allocator instead.
#[cfg(not(prov_system_alloc))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use criterion::{BatchSize, Criterion, criterion_group};
use prov::core::{Account, Connector, EntitlementId, Identity, TargetId};
use prov::engine::{
    Correlation, Engine, Event, Link, LinkOrigin, MemoryStore, OpKind, Plan, PlanInput,
    PlanOptions, TargetOptions, plan_resolved,
};
use prov::resolver::{CompiledPolicy, Policy, Resolution, Role, Rule, TargetPolicy};
use prov_testkit::MemoryConnector;

const DEPTS: usize = 20;

fn policy(targets: &[&str]) -> CompiledPolicy {
    let mut p = Policy::new();
    for t in targets {
        let mut tp = TargetPolicy::default();
        tp.attributes.insert("mail".to_owned(), "email".to_owned());
        p = p.target(*t, tp);
    }
    for r in 0..50 {
        let mut role = Role::new();
        for k in 0..5 {
            for t in targets {
                role = role.grant(*t, format!("group-{}", (r * 5 + k) % 120));
            }
        }
        p = p.role(format!("role-{r:02}"), role);
    }
    for d in 0..DEPTS {
        let roles = [format!("role-{:02}", d), format!("role-{:02}", 20 + d % 30)];
        let refs: Vec<&str> = roles.iter().map(String::as_str).collect();
        p = p.rule(
            format!("dept-{d}"),
            Rule::new(format!("department == \"d{d}\""), &refs),
        );
    }
    p.compile().unwrap_or_else(|e| panic!("{e}"))
}

fn people(n: usize) -> Vec<Identity> {
    (0..n)
        .map(|i| {
            Identity::new(format!("e{i:07}"))
                .with("department", format!("d{}", i % DEPTS))
                .with("email", format!("e{i}@example.com"))
        })
        .collect()
}

struct World {
    policy: CompiledPolicy,
    people: Vec<Identity>,
    resolutions: Vec<Resolution>,
    actual: BTreeMap<TargetId, Vec<Account>>,
    links: Vec<Link>,
}

fn world(n: usize) -> World {
    let policy = policy(&["ldap"]);
    let people = people(n);
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap();
    let resolutions = policy.resolve_many(&people, now);
    let target = TargetId::new("ldap");
    let mut accounts = Vec::with_capacity(n);
    let mut links = Vec::with_capacity(n);
    for (i, (who, res)) in people.iter().zip(&resolutions).enumerate() {
        let view = policy.targets_of(res).next().unwrap();
        let want = view.account.unwrap();
        let mut a = Account::new(format!("uid={},ou=people", who.id), want.login);
        a.attributes = want.attributes.clone();
        a.entitlements = view.entitlements().cloned().collect();
        // 1% changed: a missing group, an extra managed group, or a changed mail.
        match (i % 100, i % 300) {
            (7, 7) => {
                let first = a.entitlements.iter().next().cloned();
                if let Some(e) = first {
                    a.entitlements.remove(&e);
                }
            }
            (7, 107) => {
                a.entitlements.insert(EntitlementId::new("group-119"));
            }
            (7, _) => {
                a.attributes
                    .insert("mail".to_owned(), "old@example.com".into());
            }
            _ => {}
        }
        links.push(Link::new(
            target.clone(),
            a.id.clone(),
            who.id.clone(),
            LinkOrigin::Created,
        ));
        accounts.push(a);
    }
    let mut actual = BTreeMap::new();
    actual.insert(target, accounts);
    World {
        policy,
        people,
        resolutions,
        actual,
        links,
    }
}

/// The peer: both sides as JSON values keyed by login, compared.
fn naive_diff(w: &World) -> usize {
    let mut desired: HashMap<String, serde_json::Value> = HashMap::new();
    for res in &w.resolutions {
        for view in w.policy.targets_of(res) {
            if let Some(acct) = view.account {
                let ents: Vec<&str> = view.entitlements().map(|e| e.as_str()).collect();
                desired.insert(
                    acct.login.to_owned(),
                    serde_json::json!({"attributes": acct.attributes, "enabled": acct.enabled, "entitlements": ents}),
                );
            }
        }
    }
    let mut actual: HashMap<String, serde_json::Value> = HashMap::new();
    for a in w.actual.values().flatten() {
        let ents: Vec<&str> = a.entitlements.iter().map(|e| e.as_str()).collect();
        actual.insert(a.login.clone(), serde_json::json!({"attributes": a.attributes, "enabled": a.enabled, "entitlements": ents}));
    }
    desired
        .iter()
        .filter(|(k, v)| actual.get(*k) != Some(*v))
        .count()
}

/// How many accounts a plan links (correlation found them).
fn links_in(plan: &Plan) -> usize {
    plan.ops
        .iter()
        .filter(|o| matches!(o.kind, OpKind::Link { .. }))
        .count()
}

fn bench_plan(c: &mut Criterion) {
    let n: usize = std::env::var("PROV_BENCH_ACCOUNTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let w = world(n);
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap();
    let opts = PlanOptions::default();
    let input = PlanInput::new(&w.policy, &w.people, now, &w.actual, &w.links);
    let plan = plan_resolved(&input, &w.resolutions, &opts);
    let changed = naive_diff(&w);
    eprintln!(
        "{n} accounts: the plan has {} operations {:?}; the naive peer finds {changed} changed accounts",
        plan.ops.len(),
        plan.counts()
    );
    assert_eq!(changed, n / 100, "the peer sees the 1% changed");
    assert!(plan.orphans.is_empty() && plan.blocked.is_empty());
    let mut g = c.benchmark_group("plan");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(2));
    // Times planning `input` with `opts`.
    let mut time_plan = |name: &str, input: &PlanInput<'_>, opts: &PlanOptions| {
        g.bench_function(format!("{name}/{n}"), |b| {
            b.iter(|| {
                black_box(plan_resolved(black_box(input), &w.resolutions, opts))
                    .ops
                    .len()
            })
        });
    };
    time_plan("plan_resolved", &input, &opts);
    // A first reconcile against an existing directory: no links yet, every
    // account found by its mail (correlation rule mail = email).
    let mut first_opts = PlanOptions::default();
    let mut by_mail = TargetOptions::default();
    by_mail.correlation = vec![Correlation::new("mail", "email")];
    first_opts.targets.insert(TargetId::new("ldap"), by_mail);
    let unlinked = PlanInput::new(&w.policy, &w.people, now, &w.actual, &[]);
    let first = plan_resolved(&unlinked, &w.resolutions, &first_opts);
    eprintln!(
        "first reconcile by mail: {} links, {} operations",
        links_in(&first),
        first.ops.len()
    );
    let old_mail = prov::core::Value::from("old@example.com");
    let changed_mail = w
        .actual
        .values()
        .flatten()
        .filter(|a| a.attributes.get("mail") == Some(&old_mail))
        .count();
    assert_eq!(
        links_in(&first),
        n - changed_mail,
        "all but the changed mails correlate"
    );
    time_plan("first_reconcile_by_mail", &unlinked, &first_opts);
    // A daily reconcile: 100 identities without a link yet (joiners whose
    // accounts were made by hand) among the linked million.
    let few = 100.min(n);
    let some_unlinked = PlanInput::new(
        &w.policy,
        &w.people,
        now,
        &w.actual,
        w.links.get(few..).unwrap_or_default(),
    );
    let daily = plan_resolved(&some_unlinked, &w.resolutions, &first_opts);
    assert_eq!(
        links_in(&daily),
        few,
        "each unlinked identity is found by mail"
    );
    time_plan("unlinked_100_of", &some_unlinked, &first_opts);
    g.bench_function(format!("fingerprint_only/{n}"), |b| {
        b.iter(|| black_box(prov::engine::fingerprint(black_box(&input))))
    });
    g.bench_function(format!("naive_json_diff/{n}"), |b| {
        b.iter(|| black_box(naive_diff(black_box(&w))))
    });
    g.finish();
}

fn bench_leaver(c: &mut Criterion) {
    let targets = ["ldap", "google", "github", "aws", "slack"];
    let policy = Arc::new(policy(&targets));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let who = Identity::new("e0000042")
        .with("department", "d2")
        .with("email", "e42@example.com");
    let setup = || {
        let conns: BTreeMap<TargetId, Arc<dyn Connector>> = targets
            .iter()
            .map(|t| {
                let c = MemoryConnector::new()
                    .with_entitlements((0..120).map(|g| format!("group-{g}")));
                (TargetId::new(*t), Arc::new(c) as Arc<dyn Connector>)
            })
            .collect();
        let clock = Arc::new(prov_testkit::ManualClock::new(
            Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap(),
        ));
        let engine =
            Engine::new(Arc::clone(&policy), conns, Arc::new(MemoryStore::new())).with_clock(clock);
        rt.block_on(engine.handle(Event::Joiner(who.clone())))
            .unwrap();
        engine
    };
    let mut g = c.benchmark_group("event");
    g.sample_size(50);
    g.bench_function("handle_leaver/5_targets", |b| {
        b.iter_batched(
            setup,
            |engine| {
                let (plan, report) = rt
                    .block_on(engine.handle(Event::Leaver(who.clone())))
                    .unwrap();
                assert!(report.is_success());
                black_box(plan.ops.len())
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_plan, bench_leaver);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
