//! Resolve 1,000,000 synthetic identities against 2,000 roles (two-level
//! hierarchy, about 10 roles and 80 entitlements per identity, 8
//! entitlements per role) and 200 birthright rules, using both cores.
//!
//! `cargo bench --bench resolve`; set `PROV_BENCH_IDENTITIES` for a
//! smaller run. Prints the compiled policy's sizes, the entitlements per
//! identity and the process's peak memory after criterion's report.

#![allow(clippy::panic)] // a benchmark with a broken policy has nothing to measure

/// The allocator the `prov` binary uses; `RUSTFLAGS="--cfg prov_system_alloc"`
/// measures with the system allocator instead.
#[cfg(not(prov_system_alloc))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group};
use prov::core::Identity;
use prov::resolver::{CompiledPolicy, Policy, Role, Rule, TargetPolicy};

const TARGETS: [&str; 4] = ["ldap", "scim", "aws", "google"];
const PARENTS: usize = 400;
const CHILDREN: usize = 1600;
/// (attribute, number of values); one rule per value: 50 + 20 + 100 + 30 = 200 rules.
const ATTRS: [(&str, usize); 4] = [
    ("department", 50),
    ("location", 20),
    ("job_code", 100),
    ("cost_center", 30),
];

/// A cheap deterministic mix (splitmix64), so the data is the same every run.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn idx(x: u64, n: usize) -> usize {
    usize::try_from(x % n as u64).unwrap_or(0)
}

pub fn policy() -> CompiledPolicy {
    match source_policy().compile() {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

pub fn source_policy() -> Policy {
    let mut p = Policy::new();
    for t in TARGETS {
        p = p.target(t, TargetPolicy::default());
    }
    let role = |seed: u64| {
        let mut r = Role::new();
        for k in 0..8u64 {
            let h = mix(seed * 8 + k);
            r = r.grant(TARGETS[idx(h, 4)], format!("ent-{}", idx(h >> 8, 5000)));
        }
        r
    };
    for i in 0..PARENTS {
        p = p.role(format!("parent-{i:04}"), role(i as u64));
    }
    for i in 0..CHILDREN {
        let parent = idx(mix(1_000_000 + i as u64), PARENTS);
        p = p.role(
            format!("child-{i:04}"),
            role((PARENTS + i) as u64).inherit(format!("parent-{parent:04}")),
        );
    }
    let mut n = 0u64;
    for (attr, values) in ATTRS {
        for v in 0..values {
            n += 1;
            let c1 = format!("child-{:04}", idx(mix(2_000_000 + n), CHILDREN));
            let c2 = format!("child-{:04}", idx(mix(3_000_000 + n), CHILDREN));
            let roles: Vec<&str> = if n.is_multiple_of(2) {
                vec![&c1, &c2]
            } else {
                vec![&c1]
            };
            p = p.rule(
                format!("rule-{n:03}"),
                Rule::new(format!("{attr} == \"{attr}-{v}\""), &roles),
            );
        }
    }
    p
}

/// The peer: what a straightforward implementation does. Every rule runs in
/// the CEL interpreter for every identity, roles are walked up their
/// parents, and entitlements are collected as strings in a set.
struct Naive {
    rules: Vec<(cel::Program, Vec<String>)>,
    roles: std::collections::HashMap<String, prov::resolver::Role>,
}

impl Naive {
    fn new(p: &Policy) -> Self {
        let rules = p
            .rules
            .values()
            .map(|r| match cel::Program::compile(&r.when) {
                Ok(prog) => (prog, r.roles.clone()),
                Err(e) => panic!("{e}"),
            })
            .collect();
        Naive {
            rules,
            roles: p
                .roles
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    fn resolve(&self, who: &Identity) -> std::collections::BTreeSet<(String, String)> {
        let mut ctx = cel::Context::default();
        for (k, v) in &who.attributes {
            if let Some(s) = v.as_str() {
                ctx.add_variable_from_value(k.clone(), s.to_owned());
            }
        }
        let mut out = std::collections::BTreeSet::new();
        let mut stack: Vec<String> = Vec::new();
        for (prog, roles) in &self.rules {
            if prog.execute(&ctx) == Ok(cel::Value::Bool(true)) {
                stack.extend(roles.iter().cloned());
            }
        }
        while let Some(r) = stack.pop() {
            if let Some(role) = self.roles.get(&r) {
                for (t, ents) in &role.grants {
                    for e in ents {
                        out.insert((t.clone(), e.clone()));
                    }
                }
                stack.extend(role.inherits.iter().cloned());
            }
        }
        out
    }
}

pub fn identities(n: usize) -> Vec<Identity> {
    (0..n)
        .map(|i| {
            let mut who = Identity::new(format!("e{i:07}"));
            for (k, (attr, values)) in ATTRS.iter().enumerate() {
                let v = idx(mix((i * 4 + k) as u64), *values);
                who = who.with(*attr, format!("{attr}-{v}"));
            }
            who
        })
        .collect()
}

fn peak_rss_mib() -> Option<u64> {
    proc_status_mib("VmHWM:")
}

fn rss_mib() -> Option<u64> {
    proc_status_mib("VmRSS:")
}

fn proc_status_mib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn bench(c: &mut Criterion) {
    let n: usize = std::env::var("PROV_BENCH_IDENTITIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let policy = policy();
    let people = identities(n);
    let now = Utc
        .with_ymd_and_hms(2026, 11, 22, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let sample = policy.resolve_many(&people[..1000.min(n)], now);
    let ents: usize = sample.iter().map(|r| r.entitlement_count()).sum();
    let roles: usize = sample.iter().map(|r| policy.describe(r).roles.len()).sum();
    eprintln!(
        "policy: {:?}; per identity (first 1000): {:.1} direct roles, {:.1} entitlements; rayon threads: {}",
        policy.stats(),
        roles as f64 / sample.len().max(1) as f64,
        ents as f64 / sample.len().max(1) as f64,
        rayon_threads(),
    );
    // Check the peer agrees before timing it.
    let naive = Naive::new(&source_policy());
    for (who, res) in people.iter().zip(&sample).take(100) {
        let ours = policy.describe(res);
        let count: usize = ours.targets.values().map(|t| t.entitlements.len()).sum();
        assert_eq!(
            naive.resolve(who).len(),
            count,
            "the naive peer disagrees on {}",
            who.id
        );
    }
    eprintln!(
        "memory after building {n} identities: {} MiB (VmRSS)",
        rss_mib().unwrap_or(0)
    );
    let mut group = c.benchmark_group("resolve");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15))
        .warm_up_time(Duration::from_secs(2));
    group.bench_function(format!("resolve_many/{n}"), |b| {
        b.iter(|| black_box(policy.resolve_many(black_box(&people), now)).len())
    });
    group.bench_function(format!("resolve_many_without_drop/{n}"), |b| {
        b.iter_with_large_drop(|| policy.resolve_many(black_box(&people), now))
    });
    let small = &people[..10_000.min(n)];
    group.bench_function(format!("naive_cel_peer/{}", small.len()), |b| {
        b.iter(|| {
            small
                .iter()
                .map(|who| naive.resolve(black_box(who)).len())
                .sum::<usize>()
        })
    });
    group.bench_function(format!("ours_single_thread/{}", small.len()), |b| {
        b.iter(|| {
            small
                .iter()
                .map(|who| policy.resolve(black_box(who), now).entitlement_count())
                .sum::<usize>()
        })
    });
    // What-if: the same policy with one department's rule giving another
    // role, against the floor of resolving everyone under both policies.
    let proposed = match source_policy()
        .rule(
            "rule-001",
            Rule::new("department == \"department-0\"", &["child-0007"]),
        )
        .compile()
    {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let report = prov::resolver::what_if(&policy, &proposed, &people, now);
    eprintln!(
        "what-if: {} of {} identities change ({} targets, {} roles counted)",
        report.changes.len(),
        report.identities,
        report.targets.len(),
        report.roles.len()
    );
    drop(report);
    group.bench_function(format!("what_if/{n}"), |b| {
        b.iter(|| {
            black_box(prov::resolver::what_if(
                &policy,
                &proposed,
                black_box(&people),
                now,
            ))
            .changes
            .len()
        })
    });
    group.bench_function(format!("resolve_both_peer/{n}"), |b| {
        b.iter(|| {
            black_box(policy.resolve_many(black_box(&people), now)).len()
                + black_box(proposed.resolve_many(black_box(&people), now)).len()
        })
    });
    group.bench_function("resolve_one", |b| {
        let who = &people[0];
        b.iter(|| black_box(policy.resolve(black_box(who), now)))
    });
    group.finish();
    eprintln!("peak memory (VmHWM): {} MiB", peak_rss_mib().unwrap_or(0));
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
