//! The quickstart: an HR export and a policy in, every person's accounts
//! and access out, then a mover and a leaver, with the reasons.
//!
//! `cargo run --example quickstart` (nothing to install, nothing to start).
//! It reads examples/data/hr.csv and examples/data/policy.toml, resolves
//! everyone, provisions the result into in-memory targets through the
//! `Connector` trait, then moves one person to another department and
//! terminates another, printing what changes and why.

use std::collections::BTreeMap;
use std::error::Error;
use std::path::Path;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use prov::core::{
    AccountId, Connector, ConnectorExt, CreateAccount, EntitlementId, Identity, LifecycleState,
    MembershipChange, TargetId, Value,
};
use prov::resolver::{CompiledPolicy, DesiredState, Policy};
use prov::testkit::MemoryConnector;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Reads the HR export. A bad row is an error naming its line and field.
fn read_hr(path: &Path) -> Result<Vec<Identity>> {
    let mut reader =
        csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let headers = reader.headers()?.clone();
    let mut people = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| format!("{}: {e}", path.display()))?;
        let line = row.position().map_or(0, |p| p.line());
        let field = |name: &str| -> Result<&str> {
            let i = headers
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| format!("{}: no column `{name}`", path.display()))?;
            Ok(row.get(i).unwrap_or("").trim())
        };
        let date = |name: &str| -> Result<Option<NaiveDate>> {
            let text = field(name)?;
            if text.is_empty() {
                return Ok(None);
            }
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(Some)
                .map_err(|e| {
                    format!(
                        "{}:{line}: field `{name}`: `{text}` is not a YYYY-MM-DD date ({e})",
                        path.display()
                    )
                    .into()
                })
        };
        let id = field("employee_id")?;
        if id.is_empty() {
            return Err(format!("{}:{line}: field `employee_id` is empty", path.display()).into());
        }
        let status = field("status")?;
        let state = LifecycleState::parse(status).ok_or_else(|| {
            format!(
                "{}:{line}: field `status`: unknown state `{status}`",
                path.display()
            )
        })?;
        let mut who = Identity::new(id)
            .with_state(state)
            .with_dates(date("start_date")?, date("end_date")?);
        let manager = field("manager_id")?;
        if !manager.is_empty() {
            who = who.with_manager(manager);
        }
        for name in [
            "given_name",
            "family_name",
            "email",
            "department",
            "title",
            "location",
            "employment_type",
        ] {
            who = who.with(name, field(name)?);
        }
        people.push(who);
    }
    Ok(people)
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

fn short(ent: &EntitlementId) -> &str {
    // `cn=engineering,ou=groups,...` reads better as `cn=engineering`.
    ent.as_str().split(',').next().unwrap_or(ent.as_str())
}

/// Provisions desired states into the memory targets: one create per
/// account, then one batched grant per entitlement (the engine will plan,
/// order, rate-limit and audit this; here it shows the connector side).
async fn provision(
    targets: &BTreeMap<TargetId, MemoryConnector>,
    desired: &[DesiredState],
) -> Result<()> {
    for (tid, conn) in targets {
        let mut members: BTreeMap<EntitlementId, Vec<AccountId>> = BTreeMap::new();
        for d in desired {
            let Some(t) = d.targets.get(tid) else {
                continue;
            };
            let Some(acct) = &t.account else { continue };
            let mut req = CreateAccount::new(acct.login.clone(), acct.attributes.clone());
            req.enabled = acct.enabled;
            let made = conn.create_account(req).await?;
            for ent in t.entitlements.keys() {
                members
                    .entry(ent.clone())
                    .or_default()
                    .push(made.id.clone());
            }
        }
        for (ent, accounts) in members {
            let outcome = conn
                .grant(MembershipChange::new(ent.clone(), accounts))
                .await?;
            if let Some(f) = outcome.failures.first() {
                return Err(format!("{tid}: grant {ent} to {}: {}", f.account, f.error).into());
            }
        }
    }
    Ok(())
}

/// What changes for one person between two desired states.
fn diff(before: &DesiredState, after: &DesiredState) -> Vec<String> {
    let mut out = Vec::new();
    let targets: std::collections::BTreeSet<&TargetId> =
        before.targets.keys().chain(after.targets.keys()).collect();
    for t in targets {
        let b = before.targets.get(t);
        let a = after.targets.get(t);
        let (ba, aa) = (
            b.and_then(|x| x.account.as_ref()),
            a.and_then(|x| x.account.as_ref()),
        );
        match (ba, aa) {
            (None, Some(acct)) => out.push(format!("  + {t}: create account {}", acct.login)),
            (Some(acct), None) => out.push(format!("  - {t}: remove account {}", acct.login)),
            (Some(x), Some(y)) if x.enabled && !y.enabled => {
                let when = match y.leaver.and_then(|l| l.delete_after) {
                    Some(day) => format!(", delete on or after {day}"),
                    None => String::new(),
                };
                out.push(format!("  ~ {t}: disable account {}{when}", y.login));
            }
            (Some(x), Some(y)) if x.attributes != y.attributes => {
                for (k, v) in &y.attributes {
                    if x.attributes.get(k) != Some(v) {
                        out.push(format!("  ~ {t}: set {k} = {v}"));
                    }
                }
            }
            _ => {}
        }
        let empty = BTreeMap::new();
        let be = b.map_or(&empty, |x| &x.entitlements);
        let ae = a.map_or(&empty, |x| &x.entitlements);
        for (e, sources) in ae {
            if !be.contains_key(e) {
                let why: Vec<String> = sources.iter().map(ToString::to_string).collect();
                out.push(format!("  + {t}: grant {} ({})", short(e), why.join(", ")));
            }
        }
        for e in be.keys() {
            if !ae.contains_key(e) {
                out.push(format!("  - {t}: revoke {}", short(e)));
            }
        }
    }
    out
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

async fn run() -> Result<()> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data");
    let policy = Policy::load(data.join("policy.toml"))?.compile()?;
    let mut people = read_hr(&data.join("hr.csv"))?;
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

    // Provision into in-memory targets, one per policy target.
    let targets: BTreeMap<TargetId, MemoryConnector> = policy
        .target_ids()
        .map(|t| {
            (
                t.clone(),
                MemoryConnector::new().with_entitlements(all_entitlements(&desired, t)),
            )
        })
        .collect();
    provision(&targets, &desired).await?;
    println!("\nprovisioned into memory targets:");
    for (t, conn) in &targets {
        let accounts = conn.list_all_accounts().await?;
        let grants: usize = accounts.iter().map(|a| a.entitlements.len()).sum();
        let disabled = accounts.iter().filter(|a| !a.enabled).count();
        let stats = conn.stats();
        println!(
            "  {t:<7} {:>3} accounts ({disabled} disabled), {grants:>3} memberships, {} requests",
            accounts.len(),
            stats.writes
        );
    }

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
    let before = policy.desired(&people[i], now);
    people[i] = people[i]
        .clone()
        .with("department", "Marketing")
        .with("title", "Marketing Specialist");
    let after = policy.desired(&people[i], now);
    println!(
        "\nmover: {} ({}) Sales -> Marketing",
        people[i].id,
        name(&people[i])
    );
    for line in diff(&before, &after) {
        println!("{line}");
    }

    // A leaver: an engineer is terminated today.
    let j = people
        .iter()
        .position(|p| p.id.as_str() == "E1011")
        .ok_or("E1011 missing")?;
    let before = policy.desired(&people[j], now);
    let mut leaver = people[j].clone().with_state(LifecycleState::Terminated);
    leaver.end_date = Some(now.date_naive());
    people[j] = leaver;
    let after = policy.desired(&people[j], now);
    println!(
        "\nleaver: {} ({}) terminated {}",
        people[j].id,
        name(&people[j]),
        now.date_naive()
    );
    for line in diff(&before, &after) {
        println!("{line}");
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
    Ok(())
}

fn all_entitlements(desired: &[DesiredState], target: &TargetId) -> Vec<EntitlementId> {
    let mut all: Vec<EntitlementId> = desired
        .iter()
        .filter_map(|d| d.targets.get(target))
        .flat_map(|t| t.entitlements.keys().cloned())
        .collect();
    all.sort();
    all.dedup();
    all
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
