//! The quickstart: an HR export and a policy in, every person's accounts
//! and access out, then a mover and a leaver, with the reasons.
//!
//! `cargo run --example quickstart` (nothing to install, nothing to start).
//! It reads examples/data/hr.csv and examples/data/policy.toml, resolves
//! everyone, then plans and applies the result into in-memory targets with
//! the engine (the `github` target a real SCIM 2.0 service served in
//! this process, whose groups the engine creates); a second plan shows
//! nothing left to do. Then one person
//! moves to another department and another leaves: each change is planned,
//! shown with its reasons, and applied.

use std::collections::BTreeMap;
use std::error::Error;
use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use std::sync::Arc;

use prov::core::{
    Connector, ConnectorExt, EntitlementId, Identity, LifecycleState, TargetId, Value,
};
use prov::engine::{
    ApplyReport, Engine, Event, Plan, PlanOptions, SqliteStore, Store, TargetOptions, audit,
};
use prov::resolver::{CompiledPolicy, DesiredState, Policy};
use prov::sources::{Column, CsvSource, Mapping, Source};
use prov_scim::client::{Auth, ClientOptions, ScimClient, ScimConnector, ScimLimits};
use prov_scim::server::{ScimServer, Tenants};
use prov_testkit::{ManualClock, MemoryConnector};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// How the HR export's columns map to identities: the id, the lifecycle
/// state, the dates and the manager; the other columns come along as string
/// attributes under their own names.
fn hr_mapping() -> Mapping {
    Mapping::new("employee_id")
        .state("status")
        .dates("start_date", "end_date")
        .manager("manager_id")
        .attribute("given_name", Column::string("given_name").required())
        .attribute("family_name", Column::string("family_name").required())
        .attribute("email", Column::string("email").required())
}

fn name(who: &Identity) -> String {
    let get = |k: &str| {
        who.attr(k)
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    format!("{} {}", get("given_name"), get("family_name"))
}

/// Prints a plan's operations with the first reason of each.
fn show_plan(plan: &Plan) {
    if plan.is_empty() {
        println!("  no changes");
    }
    for op in &plan.ops {
        let why = op
            .reasons
            .first()
            .map(|r| r.replace(",ou=groups,dc=example,dc=com", ""))
            .unwrap_or_default();
        let what = op.to_string().replace(",ou=groups,dc=example,dc=com", "");
        println!("  {what}\n      because {why}");
    }
    for b in &plan.blocked {
        println!("  BLOCKED: {b}");
    }
}

fn show_report(report: &ApplyReport) {
    println!(
        "  applied: {} of {} operations done, {} calls to targets",
        report.done(),
        report.outcomes.len(),
        report.calls
    );
    for f in report.failures() {
        println!("  {f}");
    }
}

fn show_everyone(policy: &CompiledPolicy, people: &[Identity], desired: &[DesiredState]) {
    let ids: Vec<&TargetId> = policy.target_ids().collect();
    print!(
        "{:<6} {:<22} {:<12} {:<10}",
        "id", "name", "department", "state"
    );
    for t in &ids {
        print!(" {:>7}", t.as_str());
    }
    println!("  roles");
    for (who, d) in people.iter().zip(desired) {
        let dept = who.attr("department").and_then(Value::as_str).unwrap_or("");
        print!(
            "{:<6} {:<22} {:<12} {:<10}",
            who.id.as_str(),
            name(who),
            dept,
            d.state.as_str()
        );
        for t in &ids {
            let cell = match d.targets.get(*t) {
                Some(dt) if dt.account.is_some() => format!("{}", dt.entitlements.len()),
                Some(dt) => format!("{}*", dt.entitlements.len()),
                None => "-".to_owned(),
            };
            print!(" {cell:>7}");
        }
        let roles: std::collections::BTreeSet<&str> =
            d.roles.iter().map(|r| r.role.as_str()).collect();
        println!("  {}", roles.into_iter().collect::<Vec<_>>().join(", "));
    }
    println!(
        "(numbers: entitlements per target; `-`: no account; `*`: entitlements without an account)"
    );
}

/// prov-scim's SCIM server with an in-memory store, served on a loopback
/// port from this process, and a SCIM client for it: the URL as shown
/// (port left out: it changes each run) and the client.
async fn scim_service() -> Result<(String, ScimClient)> {
    use std::hash::BuildHasher;
    // A token for this run only, from the standard library's random keys.
    let keys = std::collections::hash_map::RandomState::new();
    let token = format!("{:016x}{:016x}", keys.hash_one(1u8), keys.hash_one(2u8));
    let mut tenants = Tenants::new();
    tenants.add_token("quickstart", &token)?;
    let server = ScimServer::new(Arc::new(prov_scim::server::MemoryStore::new()), tenants);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().nest("/scim/v2", server.router());
    tokio::spawn(async move { axum::serve(listener, app).await });
    // Plain HTTP on the loopback only; a real service takes https://.
    let mut http = ClientOptions::default();
    http.danger_plaintext = true;
    let client = ScimClient::new(
        &format!("http://{addr}/scim/v2"),
        Auth::Bearer(token),
        &http,
    )?;
    Ok(("http://127.0.0.1:PORT/scim/v2".to_owned(), client))
}

async fn run() -> Result<()> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data");
    let policy = Policy::load(data.join("policy.toml"))?.compile()?;
    let mut people = CsvSource::new(data.join("hr.csv"), hr_mapping()).load()?;
    // The run's clock. Fixed, so that the output is the same on every run;
    // an embedding service passes its own clock's time.
    let now: DateTime<Utc> = Utc
        .with_ymd_and_hms(2026, 11, 22, 9, 0, 0)
        .single()
        .ok_or("bad date")?;
    let stats = policy.stats();
    println!(
        "policy: {} roles, {} rules ({} picked by the equality index, the rest run in CEL), {} targets, {} entitlements",
        stats.roles, stats.rules, stats.indexed_rules, stats.targets, stats.entitlements
    );
    println!("HR: {} people, resolved at {now}\n", people.len());

    let desired: Vec<DesiredState> = policy
        .resolve_many(&people, now)
        .iter()
        .map(|r| policy.describe(r))
        .collect();
    show_everyone(&policy, &people, &desired);

    for d in &desired {
        for v in &d.violations {
            println!(
                "\nSEGREGATION OF DUTIES: {} holds {} (rule `{}`: {}); access kept, flagged for review",
                d.identity,
                v.roles.join(" + "),
                v.rule,
                v.description.as_deref().unwrap_or("")
            );
        }
        for p in &d.problems {
            println!("\nPROBLEM: {p}");
        }
    }

    // The targets: `github` is a real SCIM 2.0 service, prov-scim's server
    // in this process on a loopback port, reached over HTTP by the SCIM
    // client with GitHub's published limits; it starts with no groups, and
    // the engine creates the ones the policy names. The others are
    // in-memory targets offering the entitlements the policy grants.
    let github = TargetId::new("github");
    let mut targets: BTreeMap<TargetId, Arc<dyn Connector>> = BTreeMap::new();
    for t in policy.target_ids() {
        let conn: Arc<dyn Connector> = if *t == github {
            let base = scim_service().await?;
            println!(
                "{t}: SCIM 2.0 at {} (prov-scim's server, in this process), profile `github`",
                base.0
            );
            Arc::new(ScimConnector::new(
                base.1,
                ScimLimits::of(&prov_scim::client::profile::GITHUB),
            ))
        } else {
            Arc::new(
                MemoryConnector::new()
                    .with_entitlements(policy.entitlements_on(t).into_iter().cloned()),
            )
        };
        targets.insert(t.clone(), conn);
    }
    let connectors = targets.clone();
    let mut options = PlanOptions::default();
    let mut creates = TargetOptions::default();
    creates.create_entitlements = true;
    options.targets.insert(github.clone(), creates);
    // The embedded default store: one SQLite file, here in a fresh temp dir.
    let dir = std::env::temp_dir().join(format!("prov-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("prov.db");
    let _ = std::fs::remove_file(&db);
    let store = Arc::new(SqliteStore::open(&db).await?);
    println!("\nstore: {}", db.display());
    let clock = Arc::new(ManualClock::new(now));
    let policy = Arc::new(policy);
    let engine = Engine::new(Arc::clone(&policy), connectors, store.clone())
        .with_clock(clock)
        .with_plan_options(options);

    let first = engine.plan(&people).await?;
    let counts: Vec<String> = first
        .counts()
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    println!(
        "\nplan: {} (fingerprint {})",
        counts.join(", "),
        &first.fingerprint[..16]
    );
    show_report(&engine.apply(&first, &people).await?);
    for (t, conn) in &targets {
        let accounts = conn.list_all_accounts().await?;
        let grants: usize = accounts.iter().map(|a| a.entitlements.len()).sum();
        let disabled = accounts.iter().filter(|a| !a.enabled).count();
        println!(
            "  {:<7} {:>3} accounts ({disabled} disabled), {grants:>3} memberships",
            t.as_str(),
            accounts.len()
        );
    }
    println!("plan again:");
    show_plan(&engine.plan(&people).await?);

    // Why does the on-call engineer have production access?
    let oncall = people
        .iter()
        .find(|p| p.id.as_str() == "E1005")
        .ok_or("E1005 missing")?;
    let aws = TargetId::new("aws");
    println!(
        "\nexplain {} ({}) aws:PowerUserAccess@prod",
        oncall.id,
        name(oncall)
    );
    for chain in policy.explain(
        oncall,
        &aws,
        &EntitlementId::new("PowerUserAccess@prod"),
        now,
    ) {
        println!("  {chain}");
    }
    let grace = people
        .iter()
        .find(|p| p.id.as_str() == "E1002")
        .ok_or("E1002 missing")?;
    let staff = EntitlementId::new("cn=staff,ou=groups,dc=example,dc=com");
    println!("explain {} ({}) ldap:cn=staff", grace.id, name(grace));
    for chain in policy.explain(grace, &TargetId::new("ldap"), &staff, now) {
        println!(
            "  {}",
            chain
                .to_string()
                .replace(",ou=groups,dc=example,dc=com", "")
        );
    }

    // A mover: an account executive moves to Marketing.
    let i = people
        .iter()
        .position(|p| p.id.as_str() == "E1024")
        .ok_or("E1024 missing")?;
    people[i] = people[i]
        .clone()
        .with("department", "Marketing")
        .with("title", "Marketing Specialist");
    println!(
        "\nmover: {} ({}) Sales -> Marketing",
        people[i].id,
        name(&people[i])
    );
    let (moved, report) = engine.handle(Event::Mover(people[i].clone())).await?;
    show_plan(&moved);
    show_report(&report);

    // A leaver: an engineer is terminated today.
    let j = people
        .iter()
        .position(|p| p.id.as_str() == "E1011")
        .ok_or("E1011 missing")?;
    println!(
        "\nleaver: {} ({}) terminated {}",
        people[j].id,
        name(&people[j]),
        now.date_naive()
    );
    // The HR feed sends a leaver event; the engine marks them terminated today.
    let (left, report) = engine.handle(Event::Leaver(people[j].clone())).await?;
    show_plan(&left);
    show_report(&report);
    people[j].state = LifecycleState::Terminated;
    people[j].end_date = Some(now.date_naive());
    println!("full reconcile after the events:");
    show_plan(&engine.plan(&people).await?);

    // The audit log: every operation, hash-chained.
    let log = store.audit_log().await?;
    println!(
        "\naudit log: {} records, chain {}; the last three:",
        log.len(),
        match audit::verify(&log) {
            Ok(()) => "verified".to_owned(),
            Err(e) => e.to_string(),
        }
    );
    for r in log.iter().rev().take(3).rev() {
        println!(
            "  #{} {} {} {} {} -> {} ({})",
            r.seq,
            r.event.time.format("%Y-%m-%d %H:%M"),
            r.event.target.as_ref().map(|t| t.as_str()).unwrap_or("-"),
            r.event.identity.as_ref().map(|t| t.as_str()).unwrap_or("-"),
            r.event
                .operation
                .replace(",ou=groups,dc=example,dc=com", ""),
            r.event.outcome,
            &r.hash[..12]
        );
    }

    // The contractor's access ends with the contract, with no one doing anything.
    let c = people
        .iter()
        .find(|p| p.id.as_str() == "E1015")
        .ok_or("E1015 missing")?;
    let later = Utc
        .with_ymd_and_hms(2027, 2, 1, 9, 0, 0)
        .single()
        .ok_or("bad date")?;
    println!(
        "\ncontractor {} ({}): {} today, {} on {} (contract ends {})",
        c.id,
        name(c),
        policy.resolve(c, now).state.as_str(),
        policy.resolve(c, later).state.as_str(),
        later.date_naive(),
        c.end_date.map(|d| d.to_string()).unwrap_or_default()
    );
    drop(engine);
    drop(store);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("quickstart: cannot start a runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
