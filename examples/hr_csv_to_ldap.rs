//! HR CSV + policy -> an LDAP directory, for integrators.
//!
//! ```text
//! PROV_LDAP_PASSWORD=secret cargo run --example hr_csv_to_ldap -- \
//!     ldaps://ldap.example.org:636 --suffix dc=example,dc=org \
//!     --bind cn=admin,dc=example,dc=org [--hr FILE] [--policy FILE] [--store FILE] [--apply]
//! cargo run --example hr_csv_to_ldap -- --throwaway-slapd
//! ```
//!
//! Reads the HR export (examples/data/hr.csv) and a directory policy
//! (examples/ldap/policy.toml), checks the directory (bind, bases, and
//! that every group the policy grants exists), plans, and with `--apply`
//! applies the plan and plans again (nothing left to do); on the throwaway
//! directory it then runs a mover and a leaver through `Engine::handle` and
//! checks their groups and lock in the directory. The directory is
//! the OpenLDAP preset: inetOrgPerson under `ou=people`, groupOfNames
//! under `ou=groups` with memberOf, ppolicy to disable. The store (links,
//! audit log) is a SQLite file (`--store`, by default in a temp dir). `--throwaway-slapd` starts a local slapd with the groups
//! in place (Debian packages slapd and ldap-utils) and applies into it.

use std::collections::BTreeMap;
use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;

use prov::core::{Connector, ConnectorExt, TargetId};
use prov::engine::{Engine, Plan, SqliteStore};
use prov::ldap::{Dialect, LdapConfig, LdapConnector, Password};
use prov::resolver::Policy;
use prov::sources::{Column, CsvSource, Mapping, Source};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

struct Args {
    url: Option<String>,
    suffix: String,
    bind: Option<String>,
    hr: PathBuf,
    policy: PathBuf,
    store: Option<PathBuf>,
    apply: bool,
    throwaway: bool,
}

fn usage() -> String {
    "usage: hr_csv_to_ldap (URL [--suffix DN] [--bind DN] | --throwaway-slapd) \
     [--hr FILE] [--policy FILE] [--store FILE] [--apply]\n\
     the bind password comes from PROV_LDAP_PASSWORD"
        .to_owned()
}

fn args() -> Result<Args> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut a = Args {
        url: None,
        suffix: "dc=example,dc=org".to_owned(),
        bind: None,
        hr: dir.join("data/hr.csv"),
        policy: dir.join("ldap/policy.toml"),
        store: None,
        apply: false,
        throwaway: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value\n{}", usage()))
        };
        match arg.as_str() {
            "--suffix" => a.suffix = value("--suffix")?,
            "--bind" => a.bind = Some(value("--bind")?),
            "--hr" => a.hr = value("--hr")?.into(),
            "--policy" => a.policy = value("--policy")?.into(),
            "--store" => a.store = Some(value("--store")?.into()),
            "--apply" => a.apply = true,
            "--throwaway-slapd" => a.throwaway = true,
            "-h" | "--help" => return Err(usage().into()),
            url if !url.starts_with('-') && a.url.is_none() => a.url = Some(url.to_owned()),
            other => return Err(format!("unknown argument {other}\n{}", usage()).into()),
        }
    }
    if a.url.is_none() && !a.throwaway {
        return Err(usage().into());
    }
    Ok(a)
}

fn show(plan: &Plan, limit: usize) {
    if plan.is_empty() {
        println!("  no changes");
        return;
    }
    let counts: Vec<String> = plan
        .counts()
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    println!("  {}", counts.join(", "));
    for op in plan.ops.iter().take(limit) {
        let why = op.reasons.first().cloned().unwrap_or_default();
        println!("  {op}\n      because {why}");
    }
    if plan.ops.len() > limit {
        println!("  ... and {} more", plan.ops.len() - limit);
    }
    for b in &plan.blocked {
        println!("  BLOCKED: {b}");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<()> {
    let mut args = args()?;
    let policy = Arc::new(Policy::load(&args.policy)?.compile()?);
    let mapping = Mapping::new("employee_id")
        .state("status")
        .dates("start_date", "end_date")
        .manager("manager_id")
        .attribute("given_name", Column::string("given_name").required())
        .attribute("family_name", Column::string("family_name").required())
        .attribute("email", Column::string("email").required());
    let people = CsvSource::new(&args.hr, mapping).load()?;
    println!("HR: {} people from {}", people.len(), args.hr.display());

    // A local throwaway directory, with the policy's groups in place.
    let target = TargetId::new("ldap");
    let groups: Vec<String> = policy
        .entitlements_on(&target)
        .into_iter()
        .map(|e| e.as_str().to_owned())
        .collect();
    let throwaway = if args.throwaway {
        // With TLS, as a real directory: the bind goes over StartTLS,
        // trusting the throwaway CA.
        let server = prov_testkit::slapd::Slapd::start_with(&{
            let mut o = prov_testkit::slapd::SlapdOptions::default();
            o.tls = true;
            o
        })?;
        let names: Vec<&str> = groups.iter().map(String::as_str).collect();
        server.add_groups(&["groupOfNames"], "member", &names)?;
        args.url = Some(server.url.clone());
        args.suffix = server.suffix.clone();
        args.bind = Some(server.admin_dn.clone());
        args.apply = true;
        println!("throwaway slapd at {} ({})", server.url, server.suffix);
        Some(server)
    } else {
        None
    };

    let url = args.url.clone().ok_or_else(usage)?;
    let mut cfg = LdapConfig::new(Dialect::OpenLdap, url, &args.suffix);
    if let Some(dn) = &args.bind {
        let password = match &throwaway {
            Some(server) => server.admin_password.clone(),
            None => std::env::var("PROV_LDAP_PASSWORD")
                .map_err(|_| "set PROV_LDAP_PASSWORD to the bind password")?,
        };
        cfg = cfg.bind(dn.clone(), Password::new(password));
    }
    if let Some(server) = &throwaway {
        cfg.groups.placeholder_member = Some(server.nobody());
        // StartTLS with the throwaway CA (a plain password bind is refused).
        cfg.connection.tls = prov::ldap::Tls::StartTls;
        cfg.connection.ca_file = Some(server.ca_file());
    }
    let ldap = Arc::new(LdapConnector::new(cfg)?);
    ldap.check().await?;
    let present: Vec<String> = ldap
        .list_all_entitlements()
        .await?
        .into_iter()
        .map(|e| e.id.as_str().to_owned())
        .collect();
    let missing: Vec<&String> = groups.iter().filter(|g| !present.contains(g)).collect();
    if !missing.is_empty() {
        println!(
            "warning: the policy grants groups the directory does not have under {}: {missing:?}; grants of them will fail",
            ldap.config().groups.base
        );
    }
    let before = ldap.list_all_accounts().await?.len();
    println!(
        "directory: {before} accounts under {}",
        ldap.config().accounts.base
    );

    let store_path = match &args.store {
        Some(p) => p.clone(),
        None => {
            let dir = std::env::temp_dir().join(format!("prov-hr-to-ldap-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            dir.join("prov.db")
        }
    };
    let store = Arc::new(SqliteStore::open(&store_path).await?);
    println!("store: {}", store_path.display());
    let mut connectors: BTreeMap<TargetId, Arc<dyn Connector>> = BTreeMap::new();
    connectors.insert(target, ldap.clone());
    let engine = Engine::new(Arc::clone(&policy), connectors, store);

    println!("\nplan:");
    let plan = engine.plan(&people).await?;
    show(&plan, 8);
    if !args.apply {
        println!("\n(dry run: --apply applies it)");
        return Ok(());
    }
    let started = std::time::Instant::now();
    let report = engine.apply(&plan, &people).await?;
    println!(
        "\napplied: {} of {} operations in {:.2?}, {} calls to the directory",
        report.done(),
        report.outcomes.len(),
        started.elapsed(),
        report.calls
    );
    for f in report.failures() {
        println!("  {f}");
    }
    let accounts = ldap.list_all_accounts().await?;
    let memberships: usize = accounts.iter().map(|a| a.entitlements.len()).sum();
    let disabled = accounts.iter().filter(|a| !a.enabled).count();
    println!(
        "directory: {} accounts ({disabled} disabled), {memberships} group memberships",
        accounts.len()
    );
    if let Some(a) = accounts.first() {
        println!(
            "  e.g. {} {:?} groups {:?}",
            a.id, a.attributes, a.entitlements
        );
    }
    println!("\nplan again:");
    let again = engine.plan(&people).await?;
    show(&again, 8);
    if !report.is_success() || !again.is_empty() {
        return Err("the directory did not converge".into());
    }
    if throwaway.is_some() {
        movers_and_leavers(&engine, &ldap, people).await?;
    }
    drop(throwaway);
    Ok(())
}

/// On the throwaway directory only: a mover and a leaver, each planned and
/// applied at once through `Engine::handle`, checked in the directory.
async fn movers_and_leavers(
    engine: &Engine,
    ldap: &LdapConnector,
    mut people: Vec<prov::core::Identity>,
) -> Result<()> {
    use prov::core::EntitlementId;
    use prov::engine::Event;
    let find = |people: &[prov::core::Identity], id: &str| {
        people
            .iter()
            .position(|p| p.id.as_str() == id)
            .ok_or_else(|| format!("{id} is not in the HR file"))
    };
    let account = |login: &str| {
        let login = login.to_owned();
        async move {
            ldap.list_all_accounts()
                .await
                .map(|all| all.into_iter().find(|a| a.login == login))
        }
    };

    // A mover: Sales to Marketing.
    let i = find(&people, "E1024")?;
    people[i] = people[i].clone().with("department", "Marketing");
    println!("\nmover: {} Sales -> Marketing", people[i].id);
    let (plan, report) = engine.handle(Event::Mover(people[i].clone())).await?;
    show(&plan, 8);
    let moved = account("leslie.lamport")
        .await?
        .ok_or("the mover's account is gone")?;
    let groups: Vec<&str> = moved
        .entitlements
        .iter()
        .map(EntitlementId::as_str)
        .collect();
    println!("  applied: {} done; groups now {groups:?}", report.done());
    if !groups.contains(&"marketing") || groups.contains(&"sales") {
        return Err(format!("the mover's groups are {groups:?}").into());
    }

    // A leaver: access revoked and the account locked at once.
    let j = find(&people, "E1011")?;
    println!("\nleaver: {}", people[j].id);
    let (plan, report) = engine.handle(Event::Leaver(people[j].clone())).await?;
    show(&plan, 8);
    let left = account("radia.perlman")
        .await?
        .ok_or("the leaver's account is gone")?;
    println!(
        "  applied: {} done; enabled {}, groups {:?}",
        report.done(),
        left.enabled,
        left.entitlements
    );
    if left.enabled || !left.entitlements.is_empty() {
        return Err("the leaver still has access".into());
    }
    Ok(())
}
