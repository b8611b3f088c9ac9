//! Kill the engine (SIGKILL) at random points of an apply, many times with
//! different seeds, and check that a rerun converges with no operation lost
//! and none applied twice in effect, that ownership survives the crash, and
//! that the audit log holds exactly one record per write the targets made.
//!
//! Each seed runs two phases, each killed twice at random points and then
//! run to completion: joiners (creates, grants), then a day of changes
//! (renames with attribute updates, movers' revokes and grants, leavers'
//! disables, and deletes past the grace period).
//!
//! The test re-runs its own binary as the child that applies (selected by
//! an environment variable), against file-backed targets and a SQLite store
//! that outlive it.
//!
//! Target writes are counted from each target's own journal: the
//! file-backed `MemoryConnector` appends every change it makes to a change
//! log saved in the same atomic file write as its state. A wrapper that
//! appended to a separate file could be killed between the target's write
//! and its own, and would then miscount; the journal cannot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, TimeZone, Utc};
use prov_core::{Connector, ConnectorExt, Identity, LifecycleState, TargetId};
use prov_engine::{ApplyOptions, Engine, LinkOrigin, SqliteStore, Store, audit};
use prov_testkit::{FaultConfig, FaultyConnector, ManualClock, MemoryConnector, MemoryLimits};

use crate::audit::journal;
use crate::planner::{person, policy};

const CHILD: &str = "PROV_CRASH_CHILD_DIR";
const PHASE: &str = "PROV_CRASH_PHASE";
const TEST: &str = "crash::a_killed_apply_converges_on_rerun";

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// Phase 1: forty joiners. Phase 2: the same people a while later: every
/// fifth renamed (a new family name: an LDAP rename and a new `cn`), left
/// long ago (LDAP delete, GitHub disable), left yesterday (disables within
/// the grace period), moved department (revokes and grants), or given a new
/// mail (an LDAP update, a GitHub rename).
fn crowd(phase: u8) -> Vec<Identity> {
    (0..40)
        .map(|i| {
            let dept = ["Engineering", "Sales"][i % 2];
            if phase == 1 {
                return person(&format!("e{i:03}"), &format!("P{i}"), "Q", dept);
            }
            match i % 5 {
                0 => person(&format!("e{i:03}"), &format!("P{i}"), "Renamed", dept),
                1 | 2 => {
                    let mut p = person(&format!("e{i:03}"), &format!("P{i}"), "Q", dept);
                    p.state = LifecycleState::Terminated;
                    p.end_date = Some(if i % 5 == 1 {
                        date(2026, 9, 1)
                    } else {
                        date(2026, 11, 21)
                    });
                    p
                }
                3 => person(
                    &format!("e{i:03}"),
                    &format!("P{i}"),
                    "Q",
                    ["Sales", "Engineering"][i % 2],
                ),
                // A new mail: an LDAP attribute update and a GitHub rename.
                _ => person(&format!("e{i:03}"), &format!("P{i}"), "Q", dept)
                    .with("email", format!("p{i}.new@example.com")),
            }
        })
        .collect()
}

fn targets(dir: &Path) -> BTreeMap<TargetId, MemoryConnector> {
    let open = |name: &str, ents: &[&str]| {
        let c =
            MemoryConnector::file_backed(dir.join(format!("{name}.json")), MemoryLimits::default())
                .unwrap_or_else(|e| panic!("{e}"));
        c.with_entitlements(ents.iter().copied())
    };
    let mut t = BTreeMap::new();
    t.insert(
        TargetId::new("ldap"),
        open("ldap", &["staff", "eng", "sales"]),
    );
    t.insert(TargetId::new("github"), open("github", &["org:eng"]));
    t
}

async fn engine(dir: &Path, seed: u64) -> (Engine, Arc<SqliteStore>) {
    let store = Arc::new(SqliteStore::open(dir.join("prov.db")).await.unwrap());
    let conns: BTreeMap<TargetId, Arc<dyn Connector>> = targets(dir)
        .into_iter()
        .map(|(t, c)| {
            // Latency spreads the apply over time, so kills land mid-way.
            let faults = FaultConfig::seeded(seed)
                .latency(Duration::from_micros(200), Duration::from_millis(2));
            (
                t,
                Arc::new(FaultyConnector::new(c, faults)) as Arc<dyn Connector>,
            )
        })
        .collect();
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap(),
    ));
    // Phase 2 disables and deletes more than the safeguard's share: allowed here.
    let mut apply = ApplyOptions::default();
    apply.allow_destructive = true;
    (
        Engine::new(policy(), conns, store.clone())
            .with_clock(clock)
            .with_apply_options(apply),
        store,
    )
}

/// The child: reconcile once and exit.
fn child(dir: &Path, seed: u64, phase: u8) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (engine, _) = engine(dir, seed).await;
        engine
            .reconcile(&crowd(phase))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    });
}

fn run_child(dir: &Path, seed: u64, phase: u8, kill_after: Option<Duration>) -> bool {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", TEST, "--include-ignored", "--test-threads=1"])
        .env(CHILD, dir)
        .env(PHASE, phase.to_string())
        .env("PROV_CRASH_SEED", seed.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut proc = cmd.spawn().unwrap();
    match kill_after {
        Some(wait) => {
            std::thread::sleep(wait);
            let finished = proc.try_wait().unwrap().is_some();
            proc.kill().ok(); // SIGKILL
            proc.wait().unwrap();
            finished
        }
        None => proc.wait().unwrap().success(),
    }
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn a_killed_apply_converges_on_rerun() {
    if let Ok(dir) = std::env::var(CHILD) {
        let seed = std::env::var("PROV_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let phase = std::env::var(PHASE)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        return child(Path::new(&dir), seed, phase);
    }
    let runs: u64 = std::env::var("PROV_CRASH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    // Calibrate: how long each phase's whole apply takes here, so kills land inside it.
    let scratch = std::env::temp_dir().join(format!("prov-crash-{}-calibrate", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let mut windows = [0u64; 2];
    let mut full = Duration::ZERO;
    for phase in [1u8, 2] {
        let started = std::time::Instant::now();
        assert!(
            run_child(&scratch, 0, phase, None),
            "the uninterrupted apply of phase {phase} failed"
        );
        let took = started.elapsed();
        full = full.max(took);
        windows[usize::from(phase - 1)] = u64::try_from(took.as_millis()).unwrap_or(1000).max(20);
    }
    std::fs::remove_dir_all(&scratch).unwrap();
    let mut killed_mid_way = 0;
    let mut totals = Totals::default();
    // Timing varies with load: a kill that comes after the child finished
    // narrows that phase's window for the next ones.
    for seed in 1..=runs {
        let dir: PathBuf =
            std::env::temp_dir().join(format!("prov-crash-{}-{seed}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut rng = seed.wrapping_mul(7919) + 1;
        for phase in [1u8, 2] {
            let window = &mut windows[usize::from(phase - 1)];
            // Two kills at random points, then a run to completion.
            for _ in 0..2 {
                let wait = Duration::from_millis(5 + splitmix(&mut rng) % *window);
                if run_child(&dir, seed, phase, Some(wait)) {
                    *window = (*window * 2 / 3).max(20);
                } else {
                    killed_mid_way += 1;
                }
            }
            assert!(
                run_child(&dir, seed, phase, None),
                "seed {seed} phase {phase}: the rerun failed"
            );
            // Phase 2's check covers the whole log and journals, phase 1's included.
            let seen = check(&dir, seed, phase);
            if phase == 2 {
                totals.add(seen);
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
    eprintln!(
        "crash test: {runs} seeds x 2 phases, {killed_mid_way} kills mid-apply, {} target writes \
         each with one audit record, {} unfinished operations recovered ({} found applied, \
         {} creates relinked as owned); writes by kind: {:?} (a full apply takes up to {full:?})",
        totals.writes, totals.recovered, totals.recovered_applied, totals.relinked, totals.kinds
    );
    assert!(
        totals.recovered_applied > 0,
        "no kill left an applied but unrecorded operation: the recovery path was not exercised"
    );
    for kind in [
        "create", "grant", "revoke", "rename", "update", "disable", "delete",
    ] {
        assert!(
            totals.kinds.get(kind).copied().unwrap_or(0) > 0,
            "the phases made no {kind}: {:?}",
            totals.kinds
        );
    }
    assert!(
        killed_mid_way >= runs,
        "kills should land mid-apply: {killed_mid_way} of {} (a full apply takes {full:?})",
        runs * 4
    );
}

#[derive(Default)]
struct Totals {
    writes: usize,
    recovered: usize,
    recovered_applied: usize,
    relinked: usize,
    kinds: BTreeMap<String, usize>,
}

impl Totals {
    fn add(&mut self, other: Totals) {
        self.writes += other.writes;
        self.recovered += other.recovered;
        self.recovered_applied += other.recovered_applied;
        self.relinked += other.relinked;
        for (k, n) in other.kinds {
            *self.kinds.entry(k).or_default() += n;
        }
    }
}

/// Checks convergence, ownership and the audit count against the targets' journals.
fn check(dir: &Path, seed: u64, phase: u8) -> Totals {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (engine, store) = engine(dir, seed).await;
        let plan = engine.plan(&crowd(phase)).await.unwrap();
        let at = format!("seed {seed} phase {phase}");
        assert!(
            plan.is_empty(),
            "{at}: not converged: {:#?}",
            plan.ops.iter().map(ToString::to_string).collect::<Vec<_>>()
        );
        assert!(plan.orphans.is_empty(), "{at}: orphans {:?}", plan.orphans);
        assert!(
            store.outbox_open().await.unwrap().is_empty(),
            "{at}: the outbox was not drained"
        );
        let links = store.links().await.unwrap();
        let targets = targets(dir);
        let mut accounts = 0;
        let log = store.audit_log().await.unwrap();
        audit::verify(&log).unwrap_or_else(|e| panic!("{at}: {e}"));
        let mut totals = Totals::default();
        for (t, c) in &targets {
            let all = c.list_all_accounts().await.unwrap();
            accounts += all.len();
            let mut logins: Vec<&str> = all.iter().map(|a| a.login.as_str()).collect();
            logins.sort_unstable();
            let n = logins.len();
            logins.dedup();
            assert_eq!(logins.len(), n, "{at}: {t} has an account twice");
            for a in &all {
                let link = links.iter().find(|l| &l.target == t && l.account == a.id);
                let link =
                    link.unwrap_or_else(|| panic!("{at}: {t} account {} has no link", a.login));
                // Every account was created by the engine: a crash must not
                // turn one into a merely "linked" account it may never delete.
                assert_eq!(
                    link.origin,
                    LinkOrigin::Created,
                    "{at}: {t} {} lost its ownership",
                    a.login
                );
            }
            // Exactly one audit record per write the target made, account by account.
            let written = journal(c).await;
            let mut recorded: BTreeMap<String, usize> = BTreeMap::new();
            for r in log.iter().filter(|r| r.event.target.as_ref() == Some(t)) {
                if r.event.changed_target() {
                    let account = r.event.account.as_ref().map(ToString::to_string);
                    let account = account
                        .unwrap_or_else(|| panic!("{at}: a change record names no account: {r:?}"));
                    *recorded.entry(account).or_default() += 1;
                    let kind = r.event.operation.split(' ').next().unwrap_or("").to_owned();
                    *totals.kinds.entry(kind).or_default() += 1;
                }
            }
            assert_eq!(
                recorded, written,
                "{at}: {t}: audit records per account (left) against the target's writes (right)"
            );
            totals.writes += written.values().sum::<usize>();
        }
        assert_eq!(links.len(), accounts, "{at}: one link per account");
        if phase == 1 {
            assert_eq!(accounts, 40 + 20, "{at}: one account per person and target");
        }
        for r in &log {
            assert!(r.event.run.is_some(), "{at}: a record without a run: {r:?}");
        }
        totals.recovered = log
            .iter()
            .filter(|r| r.event.outcome.starts_with("recovered: "))
            .count();
        totals.recovered_applied = log
            .iter()
            .filter(|r| r.event.outcome.starts_with("recovered: applied"))
            .count();
        totals.relinked = log
            .iter()
            .filter(|r| r.event.outcome.contains("linked as created"))
            .count();
        totals
    })
}
