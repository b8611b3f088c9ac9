//! `prov`: plan, apply, explain, review, audit and leases, from a config file.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::print_stdout)] // a command prints its results

mod config;
mod connectors;
mod file_target;
mod graph;
mod output;
mod show;
mod validate;
mod whatif;

/// mimalloc rather than the system allocator: a plan over a million
/// accounts takes about half the time (the allocator keeps each size of
/// object together, so the planner's walk over accounts reads memory in
/// order), and freeing a large listing does not stall the next plan
/// (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use prov_core::{Connector, EntitlementId, Identity, SystemClock, TargetId};
use prov_engine::leases::{LeaseRecord, LeaseRequest};
use prov_engine::{
    ApplyError, ApplyOptions, Engine, EngineError, Plan, PostgresStore, SqliteStore, Store, audit,
};
use prov_resolver::Policy;
use prov_sources::{CsvSource, JsonLinesSource, Source};

use output::{Fail, code, out, outln};

const EXIT_CODES: &str = "Exit codes:
  0  done
  1  some operations failed (each is listed, naming identity, target, account and error)
  2  bad usage, config, policy or source (the message names file, line and field)
  3  the plan is blocked by the deletion safeguard (review it, then --allow-destructive)
  4  the plan is stale: its inputs changed since it was made, planning now gives
     other operations (a lease ended, a grace period passed), or it is older
     than max_plan_age (default 24h); plan again
  5  a target or the store cannot be reached
  6  the audit log could not be written: nothing more was sent; the operations
     stay in the store's outbox and the next run records them
  7  the plan file was edited after it was made, or has another format: refused
  8  prov apply without a plan file was not confirmed (no terminal and no --yes,
     or the answer was not `yes`); nothing was applied
  9  another run holds a target (waited 30 s; the message names it): try again
  10 applied, but some changes were held because a value the policy reads is
     missing or empty in the source (each HELD line names it): nothing was
     disabled, revoked or erased for it; fix the source and apply again
  11 not found: something the command names does not exist (a lease id, an
     identity not in the source, a target, an account, an entitlement no
     role gives, a leaver record)
  12 a target or the store refused the credentials (a wrong password or token,
     or too few rights): fix them, not the network
  13 refused: the request breaks a rule (four eyes, who may approve,
     separation of duties, a lease's longest duration or its state, an
     account linked to someone else); nothing was done
  14 prov validate found problems (each PROBLEM line names one)
  prov plan --detailed-exitcode: 0 no changes, 2 changes pending, 3 blocked
  130, 143  stopped by SIGINT or SIGTERM: operations not yet sent were skipped,
     those in flight finished and were recorded (a second signal, or 30 s
     without them finishing, exits at once; the next run records what was left)

With --json, results are JSON on standard output, and a failure is one JSON
object on one line of standard error: exit_code, kind (config, policy,
source, usage, failed, blocked, stale, unreachable, audit, tampered,
unconfirmed, busy, held, not_found, unauthenticated, refused, invalid,
stopped),
message, and file, line and field where a file is to blame (else null).
A closed standard output (prov audit export | head -1) ends the output
quietly; the exit code stays the command's.";

#[derive(Parser)]
#[command(name = "prov", version, about = "Provision accounts and access from HR data and a policy.", after_help = EXIT_CODES)]
struct Cli {
    /// The config file.
    #[arg(long, short, global = true, default_value = "prov.toml")]
    config: PathBuf,
    /// Print JSON for machines instead of text for people.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Checks the config, the policy and the source before anything runs,
    /// touching no target (no store either): values templates read that are
    /// empty, logins two people would share, separation-of-duties rules
    /// the birthright rules already break; with --online, entitlements the
    /// policy grants that a target lacks. Exit 0, or 14 with each problem listed.
    ///
    /// Example: prov validate --online
    Validate {
        /// Also ask each target which entitlements it has (reads only).
        #[arg(long)]
        online: bool,
    },
    /// Plan the changes that bring every target in line with the policy.
    ///
    /// Example: prov plan --out plan.json
    Plan {
        /// Also write the plan here, to apply it later.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Exit 0 when there are no changes and 2 when changes are pending
        /// (as Terraform does); a blocked plan still exits 3.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Apply a saved plan (refused if stale), or plan and apply at once.
    ///
    /// Example: prov apply plan.json
    Apply {
        /// A plan written by `prov plan --out`.
        plan: Option<PathBuf>,
        /// Apply even if the deletion safeguard blocked the plan.
        #[arg(long)]
        allow_destructive: bool,
        /// Without a plan file: apply without showing the plan and asking
        /// (needed when there is no terminal to ask on).
        #[arg(long)]
        yes: bool,
    },
    /// Sets right what changed on the targets since the last sync, from
    /// their change logs (LDAP with an accesslog database, Active
    /// Directory): only the people those changes touch are planned and
    /// applied, nobody else's accounts are read. The first sync takes each
    /// target's starting point only; `prov apply` covers what came before.
    /// A target's point moves on only when everything applied.
    ///
    /// Example: prov sync
    Sync,
    /// Sets an identity's secret attributes on a target again, from the
    /// policy (an initial password someone lost); audited, values never shown.
    ///
    /// Example: prov reset-secret E1001 ldap
    ResetSecret {
        /// The identity's id.
        identity: String,
        /// The target.
        target: String,
    },
    /// Why an identity has what it has (or one entitlement, as TARGET:ENTITLEMENT).
    ///
    /// Example: prov explain E1003 ldap:cn=eng,ou=groups,dc=example,dc=com
    Explain {
        /// The identity's id.
        identity: String,
        /// One entitlement, as TARGET:ENTITLEMENT (default: everything).
        entitlement: Option<String>,
    },
    /// What a proposed policy would change, before it is rolled out: everyone
    /// resolved under the current policy and under POLICY (no target, no
    /// store touched), and who gains and who loses which access, with the
    /// reason chains, SoD rules newly broken, and counts per target and role.
    ///
    /// Example: prov what-if policy-next.toml --format markdown > comment.md
    WhatIf {
        /// The proposed policy file.
        policy: PathBuf,
        /// `table`, `json` (also with --json) or `markdown`.
        #[arg(long)]
        format: Option<String>,
    },
    /// The rule -> role -> entitlement graph of the whole policy, or of one
    /// identity's access (its reason chains, leases and assignments included).
    ///
    /// Example: prov graph E1003 --format mermaid
    Graph {
        /// One identity's id (default: the whole policy).
        identity: Option<String>,
        /// `dot` (Graphviz) or `mermaid`.
        #[arg(long, default_value = "dot")]
        format: String,
    },
    /// An access review of every account: explained, unexplained, orphan, pending.
    ///
    /// Example: prov review --format json --out review.json
    Review {
        /// `csv` or `json` (default: `json` with --json, else `csv`).
        #[arg(long)]
        format: Option<String>,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The audit log.
    ///
    /// Example: prov audit verify
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Time-bound access.
    ///
    /// Example: prov lease list
    Lease {
        #[command(subcommand)]
        command: LeaseCommand,
    },
    /// Leavers the engine remembers (a leaver event, first seen terminated
    /// without an end date, or gone from the source).
    ///
    /// Example: prov leaver list
    Leaver {
        #[command(subcommand)]
        command: LeaverCommand,
    },
    /// Checks that every target and the store can be reached.
    ///
    /// Example: prov check
    Check,
    /// Writes a commented starter config, policy and HR sample into DIR
    /// (default: here), which `prov plan` accepts as they are; no config needed.
    ///
    /// Example: prov init acme && cd acme && prov plan
    Init {
        /// The directory (made if missing).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Overwrite files already there.
        #[arg(long)]
        force: bool,
    },
    /// Prints a shell completion script (no config needed).
    ///
    /// Example: prov completions bash > /etc/bash_completion.d/prov
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Prints the manual page (roff; no config needed).
    ///
    /// Example: prov man > /usr/local/share/man/man1/prov.1
    Man,
    /// Links an existing account to an identity by hand (how a conflict
    /// such as "an existing account has the login ..." is decided); audited.
    ///
    /// Example: prov link ldap E1001 jsmith
    Link {
        /// The target.
        target: String,
        /// The identity's id.
        identity: String,
        /// The account: its id on the target, or its login.
        account: String,
    },
    /// Forgets an account's link by hand (the target is not touched; the
    /// account is an orphan to the next plan); audited.
    ///
    /// Example: prov unlink ldap uid=jsmith,ou=people,dc=example,dc=org
    Unlink {
        /// The target.
        target: String,
        /// The account: its id on the target, or its login.
        account: String,
    },
}

#[derive(Subcommand)]
enum LeaverCommand {
    /// Every remembered leaver: identity, how and when they left.
    ///
    /// Example: prov leaver list --json
    List,
    /// Forgets a leaver record (a leaver event sent by mistake); the next
    /// plan follows the source again. Audited.
    ///
    /// Example: prov leaver clear E1002
    Clear {
        /// The identity's id.
        identity: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Checks the hash chain; names the first record edited, removed or
    /// moved. With `audit_key` configured, also that nothing was re-sealed
    /// without the key; with `--head`, that the log still reaches a head
    /// kept elsewhere (nothing cut off the end).
    ///
    /// Example: prov audit verify --head 1204:9f2c...
    Verify {
        /// A head printed by `prov audit head` earlier: SEQ:HASH.
        #[arg(long)]
        head: Option<String>,
    },
    /// Prints the chain's head (SEQ:HASH): keep it where prov cannot write,
    /// and pass it to `verify --head` later.
    ///
    /// Example: prov audit head >> /secure/prov-heads.txt
    Head,
    /// Writes the log as JSON Lines.
    ///
    /// Example: prov audit export --out audit.jsonl
    Export {
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum LeaseCommand {
    /// Asks for a role for a while; it waits for approval.
    ///
    /// Example: prov lease request E1020 oncall --duration 12h --reason "incident 4711"
    Request {
        /// Who gets the role.
        identity: String,
        /// The role (its policy names who may approve it).
        role: String,
        /// How long access lasts once approved: 30m, 12h, 7d (at most 366d).
        #[arg(long)]
        duration: String,
        /// Why, for the approver and the audit log.
        #[arg(long)]
        reason: String,
        /// How long the request may wait for a decision (default 1d).
        #[arg(long, default_value = "1d")]
        wait: String,
        /// Who asks (default: the config's actor).
        #[arg(long)]
        by: Option<String>,
    },
    /// Requests and approves in one step.
    ///
    /// Example: prov lease grant E1020 oncall --duration 2h --reason "incident 4711" --approver E1001
    Grant {
        /// Who gets the role.
        identity: String,
        /// The role.
        role: String,
        /// How long access lasts: 30m, 12h, 7d (at most 366d).
        #[arg(long)]
        duration: String,
        /// Why, for the audit log.
        #[arg(long)]
        reason: String,
        /// Who approves: an identity the role's policy allows, never the beneficiary.
        #[arg(long)]
        approver: String,
    },
    /// Approves a request; access starts now.
    ///
    /// Example: prov lease approve 3f9a2c --approver E1001
    Approve {
        /// The lease's id (from `prov lease list`).
        id: String,
        /// Who approves: an identity the role's policy allows, never the requester.
        #[arg(long)]
        approver: String,
    },
    /// Rejects a request.
    ///
    /// Example: prov lease reject 3f9a2c --by E1001 --note "not needed"
    Reject {
        /// The lease's id.
        id: String,
        /// Who rejects.
        #[arg(long)]
        by: String,
        /// Why, for the requester and the audit log.
        #[arg(long)]
        note: String,
    },
    /// Ends a lease now.
    ///
    /// Example: prov lease revoke 3f9a2c --by E1001
    Revoke {
        /// The lease's id.
        id: String,
        /// Who ends it.
        #[arg(long)]
        by: String,
    },
    /// Every lease, with where it stands now.
    ///
    /// Example: prov lease list --json
    List,
}

impl From<EngineError> for Fail {
    fn from(e: EngineError) -> Self {
        let c = match &e {
            EngineError::Stale { .. } | EngineError::Expired { .. } | EngineError::Changed(_) => {
                code::STALE
            }
            EngineError::Tampered(_) => code::TAMPERED,
            EngineError::Busy { .. } => code::BUSY,
            EngineError::Apply(ApplyError::Blocked(_)) => code::BLOCKED,
            EngineError::Refused(_) => code::REFUSED,
            EngineError::NotFound(_) => code::NOT_FOUND,
            EngineError::Apply(_) | EngineError::Reset(_) => code::USAGE,
            EngineError::Target { error, .. } | EngineError::Store(error) => unreachable(error),
            _ => code::FAILED,
        };
        Fail::new(c, e.to_string())
    }
}

/// The exit code of a target's or the store's error: refused credentials
/// are not "cannot be reached".
fn unreachable(error: &prov_core::Error) -> u8 {
    match error.kind() {
        prov_core::ErrorKind::Unauthenticated | prov_core::ErrorKind::PermissionDenied => {
            code::UNAUTHENTICATED
        }
        _ => code::UNREACHABLE,
    }
}

/// A lease command's error.
fn lease_fail(err: prov_engine::leases::LeaseError) -> Fail {
    use prov_engine::leases::LeaseError;
    let c = match &err {
        LeaseError::NotFound(_) => code::NOT_FOUND,
        LeaseError::Policy(_) | LeaseError::State { .. } | LeaseError::Lapsed { .. } => {
            code::REFUSED
        }
        LeaseError::Store(_) => code::UNREACHABLE,
        _ => code::FAILED,
    };
    Fail::new(c, err.to_string())
}

fn usage(msg: impl Into<String>) -> Fail {
    Fail::new(code::USAGE, msg)
}

struct Ctx {
    engine: Engine,
    /// The apply options from the config (retry cap, deadlines).
    apply: ApplyOptions,
    identities: Vec<Identity>,
    /// Who acts, as audit records name them: the config's actor and the OS user.
    actor: String,
    /// Who acts, as a lease names its requester: the config's actor, or the OS user.
    person: String,
    /// The audit key, when configured (for `audit verify`).
    audit_key: Option<audit::AuditKey>,
    json: bool,
}

fn parse_duration(text: &str) -> Result<Duration, Fail> {
    prov_engine::leases::human::parse(text).map_err(usage)
}

/// The audit key from the config, if set (never inline).
fn audit_key(cfg: &config::Config, base: &Path) -> Result<Option<audit::AuditKey>, Fail> {
    let Some(secret) = &cfg.audit_key else {
        return Ok(None);
    };
    if secret.is_inline() {
        return Err(usage(
            "audit_key: write it in an environment variable or a file ({ env = \"VAR\" } or \
             { file = \"PATH\" }), not in the config",
        ));
    }
    let text = secret
        .reveal(base)
        .map_err(|e| usage(format!("audit_key: {e}")))?;
    audit::AuditKey::new(text.into_bytes())
        .map(Some)
        .map_err(|e| usage(format!("audit_key: {e}")))
}

async fn open_store(cfg: &config::Config, base: &Path) -> Result<Arc<dyn Store>, Fail> {
    let key = audit_key(cfg, base)?;
    let url = match &cfg.store {
        Some(s) => s.reveal(base).map_err(|e| usage(format!("store: {e}")))?,
        None => "sqlite:prov.db".to_owned(),
    };
    if let Some(path) = url.strip_prefix("sqlite:") {
        let mut store = SqliteStore::open(base.join(path))
            .await
            .map_err(|e| Fail::new(unreachable(&e), e.to_string()))?;
        if let Some(k) = key {
            store = store.with_audit_key(k);
        }
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // The URL may hold a password: errors never repeat it.
        let mut store = PostgresStore::connect(&url)
            .await
            .map_err(|e| Fail::new(unreachable(&e), e.to_string()))?;
        if let Some(k) = key {
            store = store.with_audit_key(k);
        }
        return Ok(Arc::new(store));
    }
    Err(usage("store: use `sqlite:PATH` or a `postgres://` URL"))
}

async fn context(cli: &Cli) -> Result<Ctx, Fail> {
    // `validate` writes nothing: not even a new store file.
    let offline = matches!(
        cli.command,
        Command::Validate { .. } | Command::WhatIf { .. }
    );
    let cfg = config::load(&cli.config)?;
    let file = cli.config.display().to_string();
    // A config error naming its field.
    let bad = |field: String, msg: String| {
        usage(format!("{file}: {msg}"))
            .kind("config")
            .file(file.clone())
            .field(Some(field))
    };
    let base = cli
        .config
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let policy = Policy::load(base.join(&cfg.policy))
        .and_then(|p| p.compile())
        .map_err(|e| {
            let first = e.errors.first();
            usage(e.to_string())
                .kind("policy")
                .file(
                    first
                        .and_then(|f| f.file.clone())
                        .unwrap_or_else(|| base.join(&cfg.policy).display().to_string()),
                )
                .line(first.and_then(|f| f.line))
                .field(first.map(|f| f.path.clone()).filter(|p| !p.is_empty()))
        })?;
    // Every attribute the policy reads must come from the source: a
    // renamed column fails the load instead of reading as blank for everyone.
    let mapping = cfg
        .source
        .mapping
        .clone()
        .expect(policy.identity_attributes());
    let source: Box<dyn Source> = match cfg.source.kind.as_str() {
        "csv" => Box::new(CsvSource::new(base.join(&cfg.source.path), mapping)),
        "jsonl" => Box::new(JsonLinesSource::new(base.join(&cfg.source.path), mapping)),
        other => {
            return Err(bad(
                "source.kind".to_owned(),
                format!("source.kind: `{other}` is not a source kind (csv, jsonl)"),
            ));
        }
    };
    let identities = source.load().map_err(|e| {
        let first = e.errors.first();
        usage(e.to_string())
            .kind("source")
            .file(
                first
                    .map(|f| f.file.clone())
                    .unwrap_or_else(|| base.join(&cfg.source.path).display().to_string()),
            )
            .line(
                first
                    .map(|f| f.line)
                    .filter(|&l| l > 0)
                    .and_then(|l| usize::try_from(l).ok()),
            )
            .field(first.and_then(|f| f.field.clone()))
    })?;
    let mut connectors: BTreeMap<TargetId, Arc<dyn Connector>> = BTreeMap::new();
    for t in policy.target_ids() {
        let Some(tc) = cfg.targets.get(t.as_str()) else {
            return Err(bad(
                format!("targets.{t}"),
                format!("the policy has target `{t}`, which the config's [targets] lacks"),
            ));
        };
        let Some(kind) = connectors::kind(&tc.kind) else {
            return Err(bad(
                format!("targets.{t}.kind"),
                format!(
                    "targets.{t}.kind: `{}` is not a connector kind (known: {})",
                    tc.kind,
                    connectors::names()
                ),
            ));
        };
        let opening = connectors::Opening {
            target: t,
            config: &cfg,
            base: &base,
            policy: &policy,
            offline,
        };
        let Some(conn) = (kind.open)(&opening)? else {
            continue;
        };
        connectors.insert(t.clone(), conn);
    }
    let store: Arc<dyn Store> = if offline {
        Arc::new(prov_engine::MemoryStore::new())
    } else {
        open_store(&cfg, &base).await?
    };
    // The audit names both who the config says acts and who ran the command.
    let os_user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    let person = cfg.actor.clone().unwrap_or_else(|| os_user.clone());
    let actor = if person == os_user {
        person.clone()
    } else {
        format!("{person} (OS user {os_user})")
    };
    let policy = Arc::new(policy);
    let max_plan_age = match &cfg.max_plan_age {
        Some(text) => parse_duration(text).map_err(|f| {
            bad(
                "max_plan_age".to_owned(),
                format!("max_plan_age: {}", f.message),
            )
        })?,
        None => prov_engine::DEFAULT_MAX_PLAN_AGE,
    };
    let mut apply = ApplyOptions::default();
    if let Some(text) = &cfg.max_retry_after {
        apply.retry.max_retry_after = parse_duration(text).map_err(|f| {
            bad(
                "max_retry_after".to_owned(),
                format!("max_retry_after: {}", f.message),
            )
        })?;
    }
    for (id, t) in &cfg.targets {
        if let Some(text) = &t.apply_deadline {
            let mut limits = prov_engine::TargetLimits::default();
            limits.deadline = Some(parse_duration(text).map_err(|f| {
                bad(
                    format!("targets.{id}.apply_deadline"),
                    format!("targets.{id}.apply_deadline: {}", f.message),
                )
            })?);
            apply.targets.insert(TargetId::new(id.as_str()), limits);
        }
    }
    let engine = Engine::new(Arc::clone(&policy), connectors, store)
        .with_apply_options(apply.clone())
        .with_max_plan_age(max_plan_age)
        .with_plan_options(cfg.plan_options())
        .with_clock(Arc::new(SystemClock))
        .with_actor(actor.clone());
    Ok(Ctx {
        engine,
        apply,
        identities,
        actor,
        person,
        audit_key: audit_key(&cfg, &base)?,
        json: cli.json,
    })
}

fn print_plan(plan: &Plan, policy: &prov_resolver::CompiledPolicy) {
    show::print_ops(plan, policy, show::Style::detect());
    print_notes(plan);
    for b in &plan.blocked {
        outln!("BLOCKED {b}");
    }
    let counts: Vec<String> = plan
        .counts()
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    if plan.is_empty() {
        outln!("no changes");
    } else {
        print_table(plan);
        let s = if plan.ops.len() == 1 { "" } else { "s" };
        outln!("{} operation{s}: {}", plan.ops.len(), counts.join(", "));
    }
}

/// What a plan reports besides its operations: conflicts, orphans,
/// problems and held changes (printed by `plan` and by `apply`).
fn print_notes(plan: &Plan) {
    for c in &plan.conflicts {
        outln!(
            "CONFLICT {} {}: {} ({:?})",
            c.target,
            c.identity,
            c.message,
            c.accounts
        );
    }
    for o in &plan.orphans {
        outln!(
            "ORPHAN {} {} ({}){}",
            o.target,
            o.login,
            o.account,
            if o.owned { ", created by prov" } else { "" }
        );
    }
    for p in &plan.problems {
        outln!("PROBLEM {p}");
    }
    for h in &plan.held {
        outln!("HELD {h}");
    }
    for s in &plan.sod {
        outln!("SOD {s}");
    }
}

/// Operations per target and kind, as a table.
fn print_table(plan: &Plan) {
    const KINDS: [&str; 9] = [
        "create", "link", "unlink", "update", "enable", "revoke", "grant", "disable", "delete",
    ];
    let mut rows: BTreeMap<&str, [usize; 9]> = BTreeMap::new();
    for op in &plan.ops {
        let row = rows.entry(op.target.as_str()).or_default();
        if let Some(i) = KINDS.iter().position(|k| *k == op.kind.name())
            && let Some(cell) = row.get_mut(i)
        {
            *cell += 1;
        }
    }
    let width = rows.keys().map(|t| t.len()).max().unwrap_or(6).max(6);
    out!("\n{:<width$}", "target");
    for k in KINDS {
        out!(" {k:>7}");
    }
    outln!();
    for (t, row) in &rows {
        out!("{t:<width$}");
        for n in row {
            out!(" {n:>7}");
        }
        outln!();
    }
}

/// Shows the plan and asks on the terminal; anything but `yes` keeps it unapplied.
fn confirm(plan: &Plan, policy: &prov_resolver::CompiledPolicy, json: bool) -> Result<(), Fail> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(Fail::new(
            8,
            "prov apply without a plan file shows the plan and asks before applying, and there \
             is no terminal to ask on: pass --yes to apply without asking, or save the plan \
             (prov plan --out plan.json), review it and apply that (prov apply plan.json)"
                .to_owned(),
        ));
    }
    if !json {
        print_plan(plan, policy);
    }
    eprint!(
        "\nApply these {} operations? Only `yes` applies them: ",
        plan.ops.len()
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Fail::new(8, format!("cannot read the answer: {e}")))?;
    if answer.trim() != "yes" {
        return Err(Fail::new(
            8,
            "not applied: the answer was not `yes`".to_owned(),
        ));
    }
    Ok(())
}

/// Writes a file only its owner can read: plans, reviews and audit exports
/// name people and their access.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its mode through open: narrow it too.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(text.as_bytes())
}

fn write_or_print(out: Option<&Path>, text: &str) -> Result<(), Fail> {
    match out {
        Some(p) => {
            write_private(p, text).map_err(|e| usage(format!("{}: cannot write: {e}", p.display())))
        }
        None => output::write_out(text).map_err(|e| {
            Fail::new(
                code::FAILED,
                format!("cannot write to standard output: {e}"),
            )
        }),
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, Fail> {
    serde_json::to_string_pretty(value)
        .map_err(|e| Fail::new(1, format!("cannot encode JSON: {e}")))
}

/// The starter files `prov init` writes.
const STARTER: [(&str, &str); 3] = [
    ("prov.toml", include_str!("init/prov.toml")),
    ("policy.toml", include_str!("init/policy.toml")),
    ("hr.csv", include_str!("init/hr.csv")),
];

/// `prov init`: the starter files, never over files already there unless forced.
fn init(dir: &Path, force: bool) -> Result<(), Fail> {
    let taken: Vec<String> = STARTER
        .iter()
        .map(|(name, _)| dir.join(name))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !force && !taken.is_empty() {
        return Err(usage(format!(
            "{} already there; nothing was written (--force overwrites)",
            taken.join(", ")
        )));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| usage(format!("{}: cannot make the directory: {e}", dir.display())))?;
    for (name, text) in STARTER {
        // The HR sample names people: owner-only, as every file of theirs.
        write_private(&dir.join(name), text)
            .map_err(|e| usage(format!("{}: cannot write: {e}", dir.join(name).display())))?;
    }
    let cd = if dir == Path::new(".") {
        String::new()
    } else {
        format!("cd {} && ", dir.display())
    };
    outln!(
        "wrote {}: prov.toml, policy.toml, hr.csv
next: {cd}prov validate && prov plan",
        dir.display()
    );
    Ok(())
}

/// The commands that need no config: init, completions and the manual page.
fn without_config(command: &Command) -> Option<Result<(), Fail>> {
    use clap::CommandFactory;
    match command {
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "prov", &mut buf);
            Some(write_or_print(None, &String::from_utf8_lossy(&buf)))
        }
        Command::Init { dir, force } => Some(init(dir, *force)),
        Command::Man => {
            let mut buf = Vec::new();
            Some(
                clap_mangen::Man::new(Cli::command())
                    .render(&mut buf)
                    .map_err(|e| Fail::new(code::FAILED, format!("cannot render the manual: {e}")))
                    .and_then(|()| write_or_print(None, &String::from_utf8_lossy(&buf))),
            )
        }
        _ => None,
    }
}

async fn run(cli: Cli) -> Result<(), Fail> {
    if let Some(done) = without_config(&cli.command) {
        return done;
    }
    let ctx = context(&cli).await?;
    match &cli.command {
        Command::Validate { online } => {
            let mut found = validate::offline(&ctx.engine, &ctx.identities);
            if *online {
                found.extend(validate::online(&ctx.engine).await?);
            }
            if ctx.json {
                outln!("{}", json(&serde_json::json!({ "problems": found }))?);
            } else {
                for f in &found {
                    outln!("PROBLEM {}", f.message);
                }
                if found.is_empty() {
                    outln!(
                        "valid: {} identities, {} targets{}",
                        ctx.identities.len(),
                        ctx.engine.policy().target_ids().count(),
                        if *online {
                            ", every entitlement listed"
                        } else {
                            ""
                        }
                    );
                }
            }
            if !found.is_empty() {
                return Err(Fail::new(
                    code::INVALID,
                    format!(
                        "{} problems found (each PROBLEM line names it)",
                        found.len()
                    ),
                ));
            }
        }
        Command::Plan {
            out,
            detailed_exitcode,
        } => {
            let plan = ctx.engine.plan(&ctx.identities).await?;
            if let Some(p) = out {
                write_or_print(Some(p), &json(&plan)?)?;
            }
            if ctx.json {
                outln!("{}", json(&plan)?);
            } else {
                print_plan(&plan, ctx.engine.policy());
            }
            if !plan.blocked.is_empty() {
                return Err(Fail::new(
                    3,
                    "the plan is blocked by the deletion safeguard".to_owned(),
                ));
            }
            if *detailed_exitcode && !plan.is_empty() {
                // Changes pending: a status, not an error, so no message.
                return Err(Fail::new(2, String::new()));
            }
        }
        Command::Apply {
            plan,
            allow_destructive,
            yes,
        } => {
            let mut opts = ctx.apply.clone();
            opts.allow_destructive = *allow_destructive;
            // A progress bar on standard error, drawn only on a terminal and not for --json.
            let bar = if ctx.json {
                indicatif::ProgressBar::hidden()
            } else {
                indicatif::ProgressBar::new(0)
            };
            let tick = bar.clone();
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let signal = stop_on_signals(Arc::clone(&stop));
            let engine = ctx
                .engine
                .with_apply_options(opts)
                .with_actor(ctx.actor.clone())
                .with_stop(Arc::clone(&stop))
                .with_progress(Arc::new(move |done, total| {
                    tick.set_length(total as u64);
                    tick.set_position(done as u64);
                }));
            let applied = match plan {
                Some(p) => {
                    let text = std::fs::read_to_string(p)
                        .map_err(|e| usage(format!("{}: cannot read: {e}", p.display())))?;
                    let saved = serde_json::from_str::<Plan>(&text)
                        .map_err(|e| usage(format!("{}: not a plan: {e}", p.display())))?;
                    engine
                        .apply(&saved, &ctx.identities)
                        .await
                        .map(|r| (saved, r))
                }
                // Planned and applied under one claim on the targets: a run
                // at the same time waits its turn, then plans afresh.
                None if *yes => engine.reconcile(&ctx.identities).await,
                None => {
                    let fresh = engine.plan(&ctx.identities).await?;
                    if !fresh.is_empty() {
                        confirm(&fresh, engine.policy(), ctx.json)?;
                    }
                    engine
                        .apply(&fresh, &ctx.identities)
                        .await
                        .map(|r| (fresh, r))
                }
            };
            bar.finish_and_clear();
            let (applied, report) = applied?;
            if ctx.json {
                // The report, with what the plan reported besides its operations.
                let mut out =
                    serde_json::to_value(&report).map_err(|e| Fail::new(1, e.to_string()))?;
                if let Some(map) = out.as_object_mut() {
                    for (key, value) in [
                        ("conflicts", serde_json::to_value(&applied.conflicts)),
                        ("problems", serde_json::to_value(&applied.problems)),
                        ("held", serde_json::to_value(&applied.held)),
                        ("sod", serde_json::to_value(&applied.sod)),
                    ] {
                        map.insert(
                            key.to_owned(),
                            value.map_err(|e| Fail::new(1, e.to_string()))?,
                        );
                    }
                }
                outln!("{}", json(&out)?);
            } else {
                print_notes(&applied);
                for f in report.failures() {
                    outln!("{f}");
                }
                outln!(
                    "{} of {} operations done, {} calls to targets, {} retries",
                    report.done(),
                    report.outcomes.len(),
                    report.calls,
                    report.retries
                );
            }
            if let Some(e) = &report.audit_error {
                return Err(Fail::new(
                    6,
                    format!("the audit log could not be written: {e}"),
                ));
            }
            if report.stopped {
                let code = signal.load(std::sync::atomic::Ordering::SeqCst);
                return Err(Fail::new(
                    code,
                    format!(
                        "stopped by a signal: {} of {} operations done; the rest were not sent (run prov apply again)",
                        report.done(),
                        report.outcomes.len()
                    ),
                ));
            }
            if !report.is_success() {
                return Err(Fail::new(
                    1,
                    format!(
                        "{} operations did not complete",
                        report.outcomes.len() - report.done()
                    ),
                ));
            }
            if !applied.held.is_empty() {
                return Err(Fail::new(
                    10,
                    format!(
                        "{} changes were held for missing or empty source values (each HELD line names \
                         the identity, the target and the value); fix the source and apply again",
                        applied.held.len()
                    ),
                ));
            }
        }
        Command::Sync => {
            let engine = ctx
                .engine
                .with_apply_options(ctx.apply.clone())
                .with_actor(ctx.actor.clone());
            let (synced, report) = engine.sync(&ctx.identities).await?;
            if ctx.json {
                let unclaimed: Vec<String> = synced
                    .unclaimed
                    .iter()
                    .map(|(t, a)| format!("{t}:{a}"))
                    .collect();
                let out = serde_json::json!({
                    "changes": synced.changes,
                    "identities": synced.identities,
                    "started": synced.started,
                    "more": synced.more,
                    "unclaimed": unclaimed,
                    "report": report,
                });
                outln!("{}", json(&out)?);
            } else {
                for t in &synced.started {
                    outln!(
                        "STARTED {t}: changes are read from now on (run prov apply for what came before)"
                    );
                }
                for (t, a) in &synced.unclaimed {
                    outln!(
                        "UNCLAIMED {t}: {a} changed and is nobody's (a full plan decides about orphans)"
                    );
                }
                print_notes(&synced.plan);
                for f in report.failures() {
                    outln!("{f}");
                }
                outln!(
                    "{} changes read, {} people planned, {} of {} operations done, {} calls to targets",
                    synced.changes,
                    synced.identities.len(),
                    report.done(),
                    report.outcomes.len(),
                    report.calls
                );
                for t in &synced.more {
                    outln!("MORE {t}: more changes wait; run prov sync again");
                }
            }
            if let Some(e) = &report.audit_error {
                return Err(Fail::new(
                    6,
                    format!("the audit log could not be written: {e}"),
                ));
            }
            if !report.is_success() {
                return Err(Fail::new(
                    1,
                    format!(
                        "{} operations did not complete; the same changes are read again next time",
                        report.outcomes.len() - report.done()
                    ),
                ));
            }
        }
        Command::ResetSecret { identity, target } => {
            let who = ctx
                .identities
                .iter()
                .find(|i| i.id.as_str() == identity)
                .ok_or_else(|| usage(format!("no identity `{identity}` in the source")))?;
            let engine = ctx.engine.with_actor(ctx.actor.clone());
            let (_, report) = engine
                .reset_secrets(who, &TargetId::new(target.as_str()))
                .await?;
            if ctx.json {
                outln!("{}", json(&report)?);
            } else {
                for o in &report.outcomes {
                    outln!("{o}");
                }
            }
            if let Some(e) = &report.audit_error {
                return Err(Fail::new(
                    6,
                    format!("the audit log could not be written: {e}"),
                ));
            }
            if !report.is_success() {
                return Err(Fail::new(1, "the reset did not complete".to_owned()));
            }
        }
        Command::Link {
            target,
            identity,
            account,
        } => {
            let engine = ctx.engine.with_actor(ctx.actor.clone());
            let link = engine
                .link_account(
                    &TargetId::new(target.as_str()),
                    &prov_core::IdentityId::new(identity.as_str()),
                    account,
                    &ctx.identities,
                )
                .await?;
            if ctx.json {
                outln!("{}", json(&link)?);
            } else {
                outln!(
                    "linked {}: {} [{}]",
                    link.target,
                    link.account,
                    link.identity
                );
            }
        }
        Command::Unlink { target, account } => {
            let engine = ctx.engine.with_actor(ctx.actor.clone());
            let link = engine
                .unlink_account(&TargetId::new(target.as_str()), account)
                .await?;
            if ctx.json {
                outln!("{}", json(&link)?);
            } else {
                outln!(
                    "unlinked {}: {} (was {}'s, {})",
                    link.target,
                    link.account,
                    link.identity,
                    link.origin.as_str()
                );
            }
        }
        Command::Explain {
            identity,
            entitlement,
        } => {
            let who = ctx
                .identities
                .iter()
                .find(|i| i.id.as_str() == identity)
                .ok_or_else(|| usage(format!("no identity `{identity}` in the source")))?;
            match entitlement {
                Some(spec) => {
                    let (t, e) = spec
                        .split_once(':')
                        .ok_or_else(|| usage(format!("`{spec}` is not TARGET:ENTITLEMENT")))?;
                    let chains = ctx
                        .engine
                        .explain(who, &TargetId::new(t), &EntitlementId::new(e))
                        .await?;
                    if ctx.json {
                        outln!("{}", json(&chains)?);
                    } else if chains.is_empty() {
                        outln!("{identity} does not get {spec} from the policy");
                    } else {
                        chains.iter().for_each(|c| outln!("{c}"));
                    }
                }
                None => {
                    let desired = ctx.engine.desired(who).await?;
                    if ctx.json {
                        outln!("{}", json(&desired)?);
                    } else {
                        outln!("{identity} ({})", desired.state.as_str());
                        for (t, d) in &desired.targets {
                            let acct = d.account.as_ref().map_or("no account".to_owned(), |a| {
                                format!(
                                    "account {}{}",
                                    a.login,
                                    if a.enabled { "" } else { " (disabled)" }
                                )
                            });
                            outln!("  {t}: {acct}");
                            for (e, sources) in &d.entitlements {
                                let why: Vec<String> =
                                    sources.iter().map(ToString::to_string).collect();
                                outln!("    {e}  <- {}", why.join(", "));
                            }
                        }
                        for v in &desired.violations {
                            outln!("  SOD {}: {}", v.rule, v.roles.join(" + "));
                        }
                    }
                }
            }
        }
        Command::WhatIf { policy, format } => {
            let proposed = Policy::load(policy)
                .and_then(|p| p.compile())
                .map_err(|e| {
                    let first = e.errors.first();
                    usage(e.to_string())
                        .kind("policy")
                        .file(policy.display().to_string())
                        .line(first.and_then(|f| f.line))
                        .field(first.map(|f| f.path.clone()).filter(|p| !p.is_empty()))
                })?;
            let report = prov_resolver::what_if(
                ctx.engine.policy(),
                &proposed,
                &ctx.identities,
                chrono::Utc::now(),
            );
            let from = "the current policy";
            let to = policy.display().to_string();
            let text = match format
                .as_deref()
                .unwrap_or(if ctx.json { "json" } else { "table" })
            {
                "table" => whatif::table(&report, from, &to),
                "json" => json(&report)?,
                "markdown" => whatif::markdown(&report, from, &to),
                other => {
                    return Err(usage(format!(
                        "--format {other}: use table, json or markdown"
                    )));
                }
            };
            write_or_print(None, &text)?;
        }
        Command::Graph { identity, format } => {
            let edges = match identity {
                None => ctx.engine.policy().graph_edges(),
                Some(id) => {
                    let who = ctx
                        .identities
                        .iter()
                        .find(|i| i.id.as_str() == id)
                        .ok_or_else(|| {
                            Fail::new(code::NOT_FOUND, format!("no identity `{id}` in the source"))
                        })?;
                    let desired = ctx.engine.desired(who).await?;
                    let mut chains = Vec::new();
                    for (t, d) in &desired.targets {
                        for e in d.entitlements.keys() {
                            chains.extend(
                                ctx.engine
                                    .explain(who, t, e)
                                    .await?
                                    .iter()
                                    .map(ToString::to_string),
                            );
                        }
                    }
                    graph::chain_edges(chains.iter().map(String::as_str))
                }
            };
            let text = match format.as_str() {
                "dot" => graph::dot(&edges),
                "mermaid" => graph::mermaid(&edges),
                other => return Err(usage(format!("--format {other}: use dot or mermaid"))),
            };
            write_or_print(None, &text)?;
        }
        Command::Review { format, out } => {
            let review = ctx.engine.review(&ctx.identities).await?;
            let format = format
                .as_deref()
                .unwrap_or(if ctx.json { "json" } else { "csv" });
            let text = match format {
                "csv" => review
                    .to_csv()
                    .map_err(|e| Fail::new(1, format!("cannot write CSV: {e}")))?,
                "json" => json(&review)?,
                other => return Err(usage(format!("--format {other}: use csv or json"))),
            };
            write_or_print(out.as_deref(), &text)?;
        }
        Command::Audit { command } => {
            let log = ctx
                .engine
                .store()
                .audit_log()
                .await
                .map_err(|e| Fail::new(unreachable(&e), e.to_string()))?;
            match command {
                AuditCommand::Verify { head } => {
                    let head = head
                        .as_deref()
                        .map(str::parse::<audit::Head>)
                        .transpose()
                        .map_err(usage)?;
                    match audit::verify_with(&log, ctx.audit_key.as_ref(), head.as_ref()) {
                        Ok(v) if ctx.json => outln!(
                            "{}",
                            json(&serde_json::json!({
                                "verified": true,
                                "records": v.records,
                                "keyed": ctx.audit_key.as_ref().map(|_| v.keyed),
                                "head": head.as_ref().map(|h| h.seq),
                            }))?
                        ),
                        Ok(v) => {
                            let mut line =
                                format!("audit log verified: {} records, chain intact", v.records);
                            if ctx.audit_key.is_some() {
                                line.push_str(&format!(", {} sealed with the audit key", v.keyed));
                            }
                            if let Some(h) = &head {
                                line.push_str(&format!(", reaches head {}", h.seq));
                            }
                            outln!("{line}");
                        }
                        Err(e) => return Err(Fail::new(1, e.to_string())),
                    }
                }
                AuditCommand::Head => match log.last() {
                    Some(r) => {
                        let head = audit::Head::of(r);
                        if ctx.json {
                            outln!(
                                "{}",
                                json(&serde_json::json!({"seq": head.seq, "hash": head.hash}))?
                            );
                        } else {
                            outln!("{head}");
                        }
                    }
                    None => {
                        return Err(Fail::new(
                            1,
                            "the audit log is empty: no head yet".to_owned(),
                        ));
                    }
                },
                AuditCommand::Export { out } => {
                    let text = audit::to_jsonl(&log).map_err(|e| Fail::new(1, e.to_string()))?;
                    write_or_print(out.as_deref(), &text)?;
                }
            }
        }
        Command::Lease { command } => lease(&ctx, command).await?,
        Command::Leaver { command } => match command {
            LeaverCommand::List => {
                let all = ctx.engine.leavers().await?;
                if ctx.json {
                    outln!("{}", json(&all)?);
                } else {
                    for l in &all {
                        outln!(
                            "{}  {:<10} left {}  (recorded by {})",
                            l.identity,
                            l.why.as_str(),
                            l.left_at.to_rfc3339(),
                            l.by
                        );
                    }
                }
            }
            LeaverCommand::Clear { identity } => {
                let engine = ctx.engine.with_actor(ctx.actor.clone());
                let record = engine
                    .clear_leaver(&prov_core::IdentityId::new(identity.as_str()))
                    .await?;
                if ctx.json {
                    outln!("{}", json(&record)?);
                } else {
                    outln!(
                        "cleared leaver {} ({})",
                        record.identity,
                        record.why.as_str()
                    );
                }
            }
        },
        Command::Completions { .. } | Command::Man | Command::Init { .. } => {}
        Command::Check => {
            let results = ctx.engine.check().await;
            let bad = results.iter().filter(|(_, r)| r.is_err()).count();
            let notices = ctx.engine.notices();
            let notices_of = |what: &str| -> Vec<&str> {
                notices
                    .iter()
                    .filter(|(t, _)| t.as_str() == what)
                    .map(|(_, n)| n.as_str())
                    .collect()
            };
            if ctx.json {
                let rows: Vec<serde_json::Value> = results
                    .iter()
                    .map(|(what, r)| {
                        serde_json::json!({
                            "check": what,
                            "ok": r.is_ok(),
                            "error": r.as_ref().err().map(ToString::to_string),
                            "kind": r.as_ref().err().map(|e| e.kind().as_str()),
                            "notices": notices_of(what),
                        })
                    })
                    .collect();
                outln!("{}", json(&rows)?);
            } else {
                for (what, r) in &results {
                    match r {
                        Ok(()) => outln!("ok   {what}"),
                        Err(e) => outln!("FAIL {what}: {e}"),
                    }
                    for n in notices_of(what) {
                        outln!("     note: {n}");
                    }
                }
            }
            if bad > 0 {
                // Refused credentials say so; anything else is "cannot be reached".
                let c = results
                    .iter()
                    .filter_map(|(_, r)| r.as_ref().err())
                    .map(unreachable)
                    .max()
                    .unwrap_or(code::UNREACHABLE);
                return Err(Fail::new(
                    c,
                    format!("{bad} of {} checks failed", results.len()),
                ));
            }
        }
    }
    Ok(())
}

async fn lease(ctx: &Ctx, command: &LeaseCommand) -> Result<(), Fail> {
    let e = lease_fail;
    let rec = match command {
        LeaseCommand::Request {
            identity,
            role,
            duration,
            reason,
            wait,
            by,
        } => {
            let req = LeaseRequest::new(
                identity.as_str(),
                role.clone(),
                parse_duration(duration)?,
                by.clone().unwrap_or_else(|| ctx.person.clone()),
                reason.clone(),
            )
            .waiting(parse_duration(wait)?);
            ctx.engine
                .request_lease(req, &ctx.identities)
                .await
                .map_err(e)?
        }
        LeaseCommand::Grant {
            identity,
            role,
            duration,
            reason,
            approver,
        } => {
            let req = LeaseRequest::new(
                identity.as_str(),
                role.clone(),
                parse_duration(duration)?,
                ctx.person.clone(),
                reason.clone(),
            );
            ctx.engine
                .grant_lease(req, approver, &ctx.identities)
                .await
                .map_err(e)?
        }
        LeaseCommand::Approve { id, approver } => ctx
            .engine
            .approve_lease(id, approver, &ctx.identities)
            .await
            .map_err(e)?,
        LeaseCommand::Reject { id, by, note } => {
            ctx.engine.reject_lease(id, by, note).await.map_err(e)?
        }
        LeaseCommand::Revoke { id, by } => ctx.engine.revoke_lease(id, by).await.map_err(e)?,
        LeaseCommand::List => {
            let all = ctx.engine.leases().await.map_err(e)?;
            let now = chrono::Utc::now();
            if ctx.json {
                #[derive(serde::Serialize)]
                struct Listed<'a> {
                    #[serde(flatten)]
                    lease: &'a LeaseRecord,
                    status: prov_engine::leases::LeaseStatus,
                }
                let listed: Vec<Listed<'_>> = all
                    .iter()
                    .map(|lease| Listed {
                        lease,
                        status: lease.status(now),
                    })
                    .collect();
                outln!("{}", json(&listed)?);
            } else {
                for l in &all {
                    let window = match (l.valid_from, l.valid_until) {
                        (Some(f), Some(u)) => format!("{} .. {}", f.to_rfc3339(), u.to_rfc3339()),
                        _ => format!("decide by {}", l.decide_by.to_rfc3339()),
                    };
                    outln!(
                        "{}  {:<9} {} {}  {window}  ({})",
                        l.id,
                        l.status(now).as_str(),
                        l.request.identity,
                        l.request.role,
                        l.request.reason
                    );
                }
            }
            return Ok(());
        }
    };
    if ctx.json {
        outln!("{}", json(&rec)?);
    } else {
        outln!("{} {:?}", rec.id, rec.state);
    }
    Ok(())
}

/// On SIGINT or SIGTERM, sets `stop` (the executor sends nothing more and
/// records what is in flight) and returns the exit code to use (130 or 143).
/// A second signal, or 30 s without the apply ending, exits at once: what
/// was in flight stays in the outbox, and the next run records it.
fn stop_on_signals(stop: Arc<std::sync::atomic::AtomicBool>) -> Arc<std::sync::atomic::AtomicU8> {
    use std::sync::atomic::{AtomicU8, Ordering};
    use tokio::signal::unix::{SignalKind, signal};
    let code = Arc::new(AtomicU8::new(130));
    let out = Arc::clone(&code);
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return out;
    };
    tokio::spawn(async move {
        let first = tokio::select! {
            _ = int.recv() => 130,
            _ = term.recv() => 143,
        };
        code.store(first, Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);
        eprintln!(
            "prov: stopping: no new operations; waiting for those in flight (signal again to exit now)"
        );
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            () = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
        eprintln!(
            "prov: exiting with operations in flight: the next run records them from the outbox"
        );
        std::process::exit(i32::from(first));
    });
    out
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `--help` and `--version` print as clap prints them; a usage error
        // too, unless --json asked for one JSON object.
        Err(e) if e.use_stderr() && std::env::args().any(|a| a == "--json") => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            let message = first.strip_prefix("error: ").unwrap_or(first).to_owned();
            Fail::new(code::USAGE, message).report(true);
            return ExitCode::from(code::USAGE);
        }
        Err(e) => e.exit(),
    };
    let json = cli.json;
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            Fail::new(code::USAGE, format!("cannot start: {e}")).report(json);
            return ExitCode::from(code::USAGE);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(fail) => {
            fail.report(json);
            ExitCode::from(fail.code)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use clap::CommandFactory;

    /// Issue 14 item 3: every subcommand's `--help` describes each of its
    /// arguments and shows one example.
    #[test]
    fn every_subcommand_describes_its_arguments_and_shows_an_example() {
        fn walk(cmd: &clap::Command, path: &str, problems: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    problems.push(format!("{path}: argument {id} has no description"));
                }
            }
            let subs: Vec<&clap::Command> = cmd.get_subcommands().collect();
            if subs.is_empty() {
                let long = cmd
                    .get_long_about()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                if !long.contains("Example: prov ") {
                    problems.push(format!("{path}: no example"));
                }
            }
            for sub in subs {
                walk(sub, &path, problems);
            }
        }
        let cli = super::Cli::command();
        let mut problems = Vec::new();
        for sub in cli.get_subcommands() {
            walk(sub, "prov", &mut problems);
        }
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
