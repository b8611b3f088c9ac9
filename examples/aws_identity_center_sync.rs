//! HR CSV + policy -> IAM Identity Center, for integrators.
//!
//! ```text
//! cargo run --example aws_identity_center_sync -- \
//!     --identity-store-id d-1234567890 [--region eu-west-1] \
//!     [--instance-arn arn:aws:sso:::instance/ssoins-... --account 111111111111] \
//!     [--hr FILE] [--policy FILE] [--store FILE] [--apply]
//! cargo run --example aws_identity_center_sync -- --throwaway-moto
//! ```
//!
//! Reads the HR export (examples/data/hr.csv) and an Identity Center
//! policy (examples/aws/policy.toml), checks the identity store and that
//! every group and permission set the policy grants exists, plans, and
//! with `--apply` applies the plan and plans again (nothing left to do).
//! Credentials come from the standard AWS chain (environment, profile,
//! SSO, container or instance role), never from a file or an argument.
//! With `--instance-arn`, permission-set account assignments
//! (`PermissionSet@AccountId`) are entitlements too; `--account` lists an
//! account's assignments before any exists. The store (links, audit log)
//! is a SQLite file (`--store`, by default in a temp dir).
//!
//! `--throwaway-moto` starts moto (the AWS emulator; `source
//! scripts/peers.sh; ensure_moto` installs it) with the policy's groups and
//! permission set in place, applies into it, then runs a mover and a leaver
//! through `Engine::handle` and checks their groups and assignments.

use std::collections::BTreeMap;
use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;

use prov::core::{Connector, ConnectorExt, Entitlement, EntitlementId, TargetId};
use prov::engine::{Engine, Plan, SqliteStore};
use prov::resolver::Policy;
use prov::sources::{Column, CsvSource, Mapping, Source};
use prov_aws::{IdentityCenterConfig, IdentityCenterConnector};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

struct Args {
    store_id: Option<String>,
    region: Option<String>,
    instance_arn: Option<String>,
    accounts: Vec<String>,
    hr: PathBuf,
    policy: PathBuf,
    store: Option<PathBuf>,
    apply: bool,
    throwaway: bool,
}

fn usage() -> String {
    "usage: aws_identity_center_sync (--identity-store-id ID [--region R] \
     [--instance-arn ARN] [--account ID]... | --throwaway-moto) \
     [--hr FILE] [--policy FILE] [--store FILE] [--apply]\n\
     credentials come from the standard AWS chain (AWS_PROFILE, AWS_ACCESS_KEY_ID, SSO, a role)"
        .to_owned()
}

fn args() -> Result<Args> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut a = Args {
        store_id: None,
        region: None,
        instance_arn: None,
        accounts: Vec::new(),
        hr: dir.join("data/hr.csv"),
        policy: dir.join("aws/policy.toml"),
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
            "--identity-store-id" => a.store_id = Some(value("--identity-store-id")?),
            "--region" => a.region = Some(value("--region")?),
            "--instance-arn" => a.instance_arn = Some(value("--instance-arn")?),
            "--account" => a.accounts.push(value("--account")?),
            "--hr" => a.hr = value("--hr")?.into(),
            "--policy" => a.policy = value("--policy")?.into(),
            "--store" => a.store = Some(value("--store")?.into()),
            "--apply" => a.apply = true,
            "--throwaway-moto" => a.throwaway = true,
            "-h" | "--help" => return Err(usage().into()),
            other => return Err(format!("unknown argument {other}\n{}", usage()).into()),
        }
    }
    if a.store_id.is_none() && !a.throwaway {
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
    for h in &plan.held {
        println!("  HELD: {h}");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// A throwaway moto with the policy's groups and permission sets in place:
/// the server, the SDK configuration for it, the identity store and
/// instance.
async fn throwaway(
    wanted: &[EntitlementId],
) -> Result<(prov_testkit::moto::Moto, aws_config::SdkConfig, String)> {
    let server = prov_testkit::moto::Moto::start()?;
    // moto takes any credentials: fixed ones for it, never real ones.
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&server.url)
        .credentials_provider(aws_credential_types::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let admin = aws_sdk_ssoadmin::Client::new(&sdk);
    let instance = admin
        .list_instances()
        .send()
        .await?
        .instances()
        .first()
        .and_then(|i| i.instance_arn())
        .ok_or("moto has no Identity Center instance")?
        .to_owned();
    let setup = IdentityCenterConnector::with_sdk_config(
        &sdk,
        IdentityCenterConfig::new("d-1234567890").with_instance(&instance),
    )?;
    for e in wanted {
        match e.as_str().split_once('@') {
            Some((set, _)) => {
                admin
                    .create_permission_set()
                    .instance_arn(&instance)
                    .name(set)
                    // As AWS writes it (moto's default is a number the SDK
                    // cannot read back).
                    .session_duration("PT1H")
                    .send()
                    .await?;
            }
            None => {
                setup
                    .create_entitlement(&Entitlement::group(e.as_str()))
                    .await?;
            }
        }
    }
    println!("throwaway moto at {} (instance {instance})", server.url);
    Ok((server, sdk, instance))
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

    let target = TargetId::new("aws");
    let wanted: Vec<EntitlementId> = policy
        .entitlements_on(&target)
        .into_iter()
        .cloned()
        .collect();
    let moto = if args.throwaway {
        let (server, sdk, instance) = throwaway(&wanted).await?;
        args.store_id = Some("d-1234567890".to_owned());
        args.instance_arn = Some(instance);
        args.accounts = vec!["111111111111".to_owned()];
        args.apply = true;
        Some((server, sdk))
    } else {
        None
    };

    let store_id = args.store_id.clone().ok_or_else(usage)?;
    let mut cfg = IdentityCenterConfig::new(store_id);
    cfg.region = args.region.clone();
    cfg.instance_arn = args.instance_arn.clone();
    cfg.accounts = args.accounts.clone();
    let aws = Arc::new(match &moto {
        Some((_, sdk)) => IdentityCenterConnector::with_sdk_config(sdk, cfg)?,
        // The standard chain: environment, profile, SSO, a role.
        None => IdentityCenterConnector::connect(cfg).await?,
    });
    aws.check().await?;
    let present: Vec<EntitlementId> = aws
        .list_all_entitlements()
        .await?
        .into_iter()
        .map(|e| e.id)
        .collect();
    let missing: Vec<&EntitlementId> = wanted.iter().filter(|e| !present.contains(e)).collect();
    if !missing.is_empty() {
        println!(
            "warning: the policy grants what Identity Center does not have (a group, or a \
             permission set without --instance-arn / --account): {missing:?}; grants of them will fail"
        );
    }
    let before = aws.list_all_accounts().await?.len();
    println!("identity store: {before} users");

    let store_path = match &args.store {
        Some(p) => p.clone(),
        None => {
            let dir = std::env::temp_dir().join(format!("prov-aws-ic-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            dir.join("prov.db")
        }
    };
    let store = Arc::new(SqliteStore::open(&store_path).await?);
    println!("store: {}", store_path.display());
    let mut connectors: BTreeMap<TargetId, Arc<dyn Connector>> = BTreeMap::new();
    connectors.insert(target, aws.clone());
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
        "\napplied: {} of {} operations in {:.2?} (requests paced under Identity Center's 20 a second)",
        report.done(),
        report.outcomes.len(),
        started.elapsed(),
    );
    for f in report.failures() {
        println!("  {f}");
    }
    let accounts = aws.list_all_accounts().await?;
    let held: usize = accounts.iter().map(|a| a.entitlements.len()).sum();
    println!(
        "identity store: {} users, {held} group memberships and assignments",
        accounts.len()
    );
    println!("\nplan again:");
    let again = engine.plan(&people).await?;
    show(&again, 8);
    if !report.is_success() || !again.is_empty() {
        return Err("Identity Center did not converge".into());
    }
    if moto.is_some() {
        movers_and_leavers(&engine, &aws, people).await?;
    }
    drop(moto);
    Ok(())
}

/// On the throwaway moto only: a mover out of Engineering (its group and
/// its permission set taken away, the new department's group given) and a
/// leaver (deleted), each planned and applied at once through
/// `Engine::handle`.
async fn movers_and_leavers(
    engine: &Engine,
    aws: &IdentityCenterConnector,
    mut people: Vec<prov::core::Identity>,
) -> Result<()> {
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
            aws.list_all_accounts()
                .await
                .map(|all| all.into_iter().find(|a| a.login == login))
        }
    };

    // A mover: Engineering to Support.
    let i = find(&people, "E1011")?;
    people[i] = people[i].clone().with("department", "Support");
    println!("\nmover: {} Engineering -> Support", people[i].id);
    let (plan, report) = engine.handle(Event::Mover(people[i].clone())).await?;
    show(&plan, 8);
    let moved = account("radia.perlman@example.com")
        .await?
        .ok_or("the mover's user is gone")?;
    let held: Vec<&str> = moved
        .entitlements
        .iter()
        .map(EntitlementId::as_str)
        .collect();
    println!("  applied: {} done; now holds {held:?}", report.done());
    if !held.contains(&"support")
        || held.contains(&"engineering")
        || held.iter().any(|e| e.starts_with("ViewOnlyAccess@"))
    {
        return Err(format!("the mover holds {held:?}").into());
    }

    // A leaver: the user deleted (Identity Center's API cannot disable).
    let j = find(&people, "E1024")?;
    println!("\nleaver: {}", people[j].id);
    let (plan, report) = engine.handle(Event::Leaver(people[j].clone())).await?;
    show(&plan, 8);
    println!("  applied: {} done", report.done());
    if account("leslie.lamport@example.com").await?.is_some() {
        return Err("the leaver's user is still there".into());
    }
    Ok(())
}
