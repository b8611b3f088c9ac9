//! The `prov` command, run as a user runs it, on a config in a temp dir.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test reports failure by panicking

use std::path::{Path, PathBuf};
use std::process::Command;

const POLICY: &str = r#"
[targets.ldap]
account = "always"
[roles.staff]
grants.ldap = ["staff"]
[roles.oncall]
max_lease_days = 7
approvers = ["e2"]
grants.ldap = ["oncall"]
[rules.all]
when = "true"
roles = ["staff"]
"#;

fn setup(people: usize) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "prov-cli-{}-{people}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(dir.join("targets")).unwrap();
    std::fs::write(dir.join("policy.toml"), POLICY).unwrap();
    let mut csv = String::from("id,name,status\n");
    for i in 0..people {
        csv.push_str(&format!("e{i},Person {i},active\n"));
    }
    std::fs::write(dir.join("hr.csv"), csv).unwrap();
    std::fs::write(
        dir.join("prov.toml"),
        "policy = \"policy.toml\"\nactor = \"tester\"\n\n[source]\nkind = \"csv\"\npath = \"hr.csv\"\n[source.mapping]\nid = \"id\"\nstate = \"status\"\n\n[targets.ldap]\nkind = \"file\"\npath = \"targets/ldap.json\"\n",
    )
    .unwrap();
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Runs one SQL statement with `psql` (installed by scripts/peers.sh).
fn psql(db_url: &str, sql: &str) -> bool {
    Command::new("psql")
        .args([db_url, "-qc", sql])
        .status()
        .is_ok_and(|s| s.success())
}

/// A fresh database on the PostgreSQL that scripts/test.sh started, so
/// runs never see each other's rows; returns its URL.
fn pg_database(prefix: &str) -> String {
    let url = std::env::var("PROV_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("PROV_TEST_POSTGRES_URL is not set: run ./scripts/test.sh, which starts a private PostgreSQL")
    });
    let name = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        rand_suffix() % 1_000_000_000
    );
    assert!(
        psql(&url, &format!("CREATE DATABASE {name}")),
        "cannot create a database with psql at {url}"
    );
    let (server, _) = url.rsplit_once('/').expect("a database URL ends in /NAME");
    format!("{server}/{name}")
}

/// Points the configuration in `dir` at the store `url`.
fn use_store(dir: &Path, url: &str) {
    let cfg = dir.join("prov.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("store = \"{url}\"\n{text}")).unwrap();
}

/// How many accounts a file target holds (0 before it is first written):
/// its snapshot's, then its journal's puts and deletes.
fn accounts_in(target: &Path) -> usize {
    let mut ids: std::collections::BTreeSet<String> = std::fs::read(target)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| {
            v["accounts"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
        })
        .unwrap_or_default();
    let mut journal = target.as_os_str().to_owned();
    journal.push(".journal");
    let text = std::fs::read_to_string(journal).unwrap_or_default();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            break; // a torn last line
        };
        if let Some(id) = v["put"]["account"]["id"].as_str() {
            ids.insert(id.to_owned());
        } else if let Some(id) = v["delete"].as_str() {
            ids.remove(id);
        }
    }
    ids.len()
}

/// A file target's files, snapshot and journal, as one text.
fn target_text(target: &Path) -> String {
    let mut journal = target.as_os_str().to_owned();
    journal.push(".journal");
    std::fs::read_to_string(target).unwrap_or_default()
        + &std::fs::read_to_string(journal).unwrap_or_default()
}

fn prov(dir: &Path, args: &[&str]) -> (i32, String, String) {
    prov_with(dir, args, &[])
}

/// `prov` with extra environment variables.
fn prov_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_prov"))
        .arg("--config")
        .arg(dir.join("prov.toml"))
        .args(args)
        .envs(env.iter().copied())
        // No terminal, as in CI and cron: `apply` without a plan file needs `--yes`.
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn plan_apply_and_a_stale_plan() {
    let dir = setup(10);
    let plan = dir.join("plan.json");
    // Without a terminal, apply without a plan file asks for --yes and applies nothing.
    let (code, _, err) = prov(&dir, &["apply"]);
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("pass --yes"), "{err}");
    let (code, out, err) = prov(&dir, &["plan", "--detailed-exitcode"]);
    assert_eq!((code, err.as_str()), (2, ""), "changes pending: {out}");
    let (code, out, _) = prov(&dir, &["plan", "--out", plan.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        out.ends_with("20 operations: 10 create, 10 grant\n"),
        "{out}"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&plan).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a plan names people and their access");
    }
    // An edited plan file is refused with its own exit code, nothing applied.
    let text = std::fs::read_to_string(&plan).unwrap();
    let mut edited: serde_json::Value = serde_json::from_str(&text).unwrap();
    edited["ops"][0]["reasons"] = serde_json::json!(["approved by the CISO"]);
    let forged = dir.join("forged.json");
    std::fs::write(&forged, edited.to_string()).unwrap();
    let (code, _, err) = prov(&dir, &["apply", forged.to_str().unwrap()]);
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("edited after it was made"), "{err}");
    let (code, out, err) = prov(&dir, &["apply", plan.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("20 of 20 operations done"), "{out}");
    let (code, out, _) = prov(&dir, &["plan"]);
    assert_eq!((code, out.as_str()), (0, "no changes\n"));
    assert_eq!(prov(&dir, &["plan", "--detailed-exitcode"]).0, 0);
    let (code, _, err) = prov(&dir, &["apply", plan.to_str().unwrap()]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("the plan is stale") && err.contains("plan again"),
        "{err}"
    );
    let (code, out, _) = prov(&dir, &["check"]);
    assert_eq!((code, out.as_str()), (0, "ok   store\nok   ldap\n"));
    let (code, out, _) = prov(&dir, &["audit", "verify"]);
    assert_eq!(code, 0);
    assert_eq!(out, "audit log verified: 20 records, chain intact\n");
    let (code, out, _) = prov(&dir, &["--json", "plan"]);
    assert_eq!(code, 0);
    let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(parsed["ops"].as_array().map(Vec::len), Some(0));
}

#[test]
fn the_safeguard_blocks_with_exit_3_until_allowed() {
    let dir = setup(20);
    assert_eq!(prov(&dir, &["apply", "--yes"]).0, 0);
    // A broken export terminates 10 of 20.
    let mut csv = String::from("id,name,status\n");
    for i in 0..20 {
        csv.push_str(&format!(
            "e{i},Person {i},{}\n",
            if i < 10 { "terminated" } else { "active" }
        ));
    }
    std::fs::write(dir.join("hr.csv"), csv).unwrap();
    let (code, out, err) = prov(&dir, &["apply", "--yes"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("blocked by the deletion safeguard"), "{err}");
    let (code, out, _) = prov(&dir, &["plan"]);
    assert_eq!(code, 3);
    assert!(
        out.contains("BLOCKED ldap: the plan would disable 10 and delete 0 of 20 accounts"),
        "{out}"
    );
    let (code, out, err) = prov(&dir, &["apply", "--yes", "--allow-destructive"]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn config_policy_and_source_errors_name_file_line_and_field() {
    let dir = setup(2);
    let cfg = dir.join("prov.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("kind = \"file\"", "kind = \"file\"\ncolour = \"blue\""),
    )
    .unwrap();
    let (code, _, err) = prov(&dir, &["plan"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("prov.toml:13:") && err.contains("colour"),
        "{err}"
    );
    std::fs::write(
        &cfg,
        text.replace(
            "kind = \"file\"\npath = \"targets/ldap.json\"",
            "kind = \"ldap\"",
        ),
    )
    .unwrap();
    let (code, _, err) = prov(&dir, &["plan"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("prov.toml:11: targets.ldap: missing field `url` (kind `ldap`)"),
        "{err}"
    );
    std::fs::write(&cfg, text.replace("kind = \"file\"", "kind = \"smtp\"")).unwrap();
    let (code, _, err) = prov(&dir, &["plan"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("targets.ldap.kind: `smtp` is not a connector kind (known: ldap, scim, aws-identity-center, aws-iam, file)"),
        "{err}"
    );
    std::fs::write(&cfg, &text).unwrap();
    std::fs::write(
        dir.join("policy.toml"),
        POLICY.replace("roles = [\"staff\"]", "roles = [\"staf\"]"),
    )
    .unwrap();
    let (code, _, err) = prov(&dir, &["plan"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("policy.toml:12: rules.all.roles: unknown role `staf`"),
        "{err}"
    );
    std::fs::write(dir.join("policy.toml"), POLICY).unwrap();
    std::fs::write(
        dir.join("hr.csv"),
        "id,name,status\ne1,A,active\ne2,B,retired\n",
    )
    .unwrap();
    let (code, _, err) = prov(&dir, &["plan"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("hr.csv:3: field `status`: unknown state `retired`"),
        "{err}"
    );
}

/// `prov lease request e1 oncall` for `duration`, as the config's actor.
fn request_oncall(dir: &Path, duration: &str, reason: &str) -> (i32, String, String) {
    prov(
        dir,
        &[
            "lease",
            "request",
            "e1",
            "oncall",
            "--duration",
            duration,
            "--reason",
            reason,
        ],
    )
}

#[test]
fn leases_from_the_command_line() {
    let dir = setup(3);
    assert_eq!(prov(&dir, &["apply", "--yes"]).0, 0);
    let (code, _, err) = request_oncall(&dir, "8d", "x");
    assert_eq!(code, 13, "refused: {err}");
    assert!(
        err.contains("longer than the 7-day maximum of role `oncall`"),
        "{err}"
    );
    let (code, out, _) = request_oncall(&dir, "2d", "incident");
    assert_eq!(code, 0);
    let id = out.split_whitespace().next().unwrap().to_owned();
    assert!(out.contains("Requested"), "{out}");
    let (_, out, _) = prov(&dir, &["plan"]);
    assert_eq!(out, "no changes\n", "no access before approval");
    // Four eyes: the one who gets the access, and a name the policy does
    // not give, are refused.
    let (code, _, err) = prov(&dir, &["lease", "approve", &id, "--approver", "e1"]);
    assert_eq!(code, 13);
    assert!(err.contains("gets the access"), "{err}");
    let (code, _, err) = prov(&dir, &["lease", "approve", &id, "--approver", "e0"]);
    assert_eq!(code, 13);
    assert!(
        err.contains("`e0` may not approve leases of role `oncall`"),
        "{err}"
    );
    let (code, _, err) = request_oncall(&dir, "100000000d", "x");
    assert_eq!(code, 13, "refused, not aborted: {err}");
    assert!(err.contains("a lease lasts at most 366d"), "{err}");
    assert_eq!(
        prov(&dir, &["lease", "approve", &id, "--approver", "e2"]).0,
        0
    );
    let (_, out, _) = prov(&dir, &["plan"]);
    assert!(
        out.contains("e1: mover: gains oncall\n  + grant   ldap: oncall for e1\n")
            && out.contains(&format!("lease {id}")),
        "{out}"
    );
    assert_eq!(prov(&dir, &["apply", "--yes"]).0, 0);
    let (_, out, _) = prov(&dir, &["explain", "e1", "ldap:oncall"]);
    assert!(out.starts_with(&format!("lease {id} (until ")), "{out}");
    assert_eq!(
        prov(&dir, &["lease", "revoke", &id, "--by", "security"]).0,
        0
    );
    let (_, out, _) = prov(&dir, &["plan"]);
    assert!(out.contains("revoke  ldap: oncall for e1"), "{out}");
    let (code, out, _) = prov(&dir, &["review", "--format", "csv"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("identity,target,account,login,enabled,entitlement,finding,reasons,sod\n"),
        "{out}"
    );
    assert!(
        out.contains(",oncall,unexplained,"),
        "the revoked lease's access is unexplained until applied: {out}"
    );
}

/// The LDAP example's failure (51 accounts created, 107 grants failed
/// with "group does not exist", exit 1): with `create_entitlements`, the
/// groups the policy names are made first, and retired once it stops
/// naming them.
#[test]
fn an_ldap_target_that_creates_its_groups() {
    let server = prov_testkit::slapd::Slapd::start().unwrap();
    let dir = setup(10);
    let config = format!(
        "policy = \"policy.toml\"\n\n[source]\nkind = \"csv\"\npath = \"hr.csv\"\n[source.mapping]\nid = \"id\"\nstate = \"status\"\n\n\
         [targets.ldap]\nkind = \"ldap\"\nurl = \"{}\"\nsuffix = \"{}\"\nbind_dn = \"{}\"\npassword = {{ env = \"PROV_TEST_LDAP_PASSWORD\" }}\n\
         placeholder_member = \"{}\"\ndanger_allow_plaintext_bind = true\ncreate_entitlements = true\n",
        server.url,
        server.suffix,
        server.admin_dn,
        server.nobody()
    );
    std::fs::write(dir.join("prov.toml"), &config).unwrap();
    let secret = [("PROV_TEST_LDAP_PASSWORD", server.admin_password.as_str())];
    let run = |args: &[&str]| prov_with(&dir, args, &secret);
    let groups = || {
        server
            .tool(
                "ldapsearch",
                &[
                    "-LLL",
                    "-b",
                    &server.groups(),
                    "(objectClass=groupOfNames)",
                    "cn",
                ],
                "",
            )
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("cn: ").map(str::to_owned))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    };
    assert!(groups().is_empty());
    // validate --online: a missing group is not a problem here.
    let (code, out, err) = run(&["validate", "--online"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&["plan"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("+ create_entitlement ldap: oncall"), "{out}");
    assert!(out.contains("+ create_entitlement ldap: staff"), "{out}");
    assert!(
        out.ends_with("22 operations: 10 create, 2 create_entitlement, 10 grant\n"),
        "{out}"
    );
    let (code, out, err) = run(&["apply", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("22 of 22 operations done"), "{out}");
    assert_eq!(groups(), ["oncall", "staff"]);
    let (code, out, _) = run(&["plan"]);
    assert_eq!((code, out.as_str()), (0, "no changes\n"));
    // The policy renames a group: the new one is made, the old one (the
    // engine's) emptied and deleted.
    std::fs::write(
        dir.join("policy.toml"),
        POLICY.replace("grants.ldap = [\"staff\"]", "grants.ldap = [\"all-staff\"]"),
    )
    .unwrap();
    let (code, out, err) = run(&["apply", "--yes"]);
    // Ten revokes of ten holders: past the safeguard, held.
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("staff"), "{out}{err}");
    let (code, out, err) = run(&["apply", "--yes", "--allow-destructive"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("22 of 22 operations done"), "{out}");
    assert_eq!(groups(), ["all-staff", "oncall"]);
    let (code, out, _) = run(&["plan"]);
    assert_eq!((code, out.as_str()), (0, "no changes\n"));
}

#[test]
fn ldap_targets_from_the_config_against_slapd() {
    let server = prov_testkit::slapd::Slapd::start().unwrap();
    server
        .add_groups(&["groupOfNames"], "member", &["staff", "oncall"])
        .unwrap();
    let dir = setup(10);
    let config = format!(
        "policy = \"policy.toml\"\n\n[source]\nkind = \"csv\"\npath = \"hr.csv\"\n[source.mapping]\nid = \"id\"\nstate = \"status\"\n\n\
         [targets.ldap]\nkind = \"ldap\"\nurl = \"{}\"\nsuffix = \"{}\"\nbind_dn = \"{}\"\npassword = {{ env = \"PROV_TEST_LDAP_PASSWORD\" }}\n\
         placeholder_member = \"{}\"\ndanger_allow_plaintext_bind = true\n",
        server.url,
        server.suffix,
        server.admin_dn,
        server.nobody()
    );
    std::fs::write(dir.join("prov.toml"), &config).unwrap();
    let secret = [("PROV_TEST_LDAP_PASSWORD", server.admin_password.as_str())];
    let run = |args: &[&str]| prov_with(&dir, args, &secret);
    let (code, out, err) = run(&["check"]);
    // The danger switch is on (a test slapd without TLS): check says so.
    assert_eq!(
        (code, out.lines().take(2).collect::<Vec<_>>()),
        (0, vec!["ok   store", "ok   ldap"]),
        "{err}"
    );
    assert!(
        out.contains("note: danger_allow_plaintext_bind: the bind password goes to"),
        "{out}{err}"
    );
    let (code, out, err) = run(&["plan"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.ends_with("20 operations: 10 create, 10 grant\n"),
        "{out}"
    );
    let (code, out, err) = run(&["apply", "--yes"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("20 of 20 operations done"), "{out}");
    let (code, out, _) = run(&["plan"]);
    assert_eq!((code, out.as_str()), (0, "no changes\n"));
    let listed = server
        .tool(
            "ldapsearch",
            &["-LLL", "-b", &server.groups(), "(cn=staff)", "member"],
            "",
        )
        .unwrap();
    assert_eq!(listed.matches("member: uid=e").count(), 10, "{listed}");
    // Without the password: a clear error naming the field, the secret never printed.
    let out = Command::new(env!("CARGO_BIN_EXE_prov"))
        .arg("--config")
        .arg(dir.join("prov.toml"))
        .arg("check")
        .env_remove("PROV_TEST_LDAP_PASSWORD")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("targets.ldap.password") && err.contains("PROV_TEST_LDAP_PASSWORD"),
        "{err}"
    );
    // validate --online asks the directory for the groups the policy grants.
    let (code, out, err) = run(&["validate", "--online"]);
    assert_eq!(code, 0, "{out}{err}");
    std::fs::write(
        dir.join("policy.toml"),
        POLICY.replace("grants.ldap = [\"oncall\"]", "grants.ldap = [\"on-call\"]"),
    )
    .unwrap();
    let (code, out, _) = run(&["validate", "--online"]);
    assert_eq!(code, 14, "{out}");
    assert!(
        out.contains("PROBLEM ldap: the policy grants on-call, which the target does not list"),
        "{out}"
    );
    assert_eq!(
        run(&["validate"]).0,
        0,
        "offline, the directory is not asked"
    );
    std::fs::write(dir.join("policy.toml"), POLICY).unwrap();
    // A wrong password is refused credentials (exit 12), not "cannot be
    // reached" (5, which it was): the fix is the secret, not the network.
    let wrong = [("PROV_TEST_LDAP_PASSWORD", "not-the-password")];
    let (code, out, err) = prov_with(&dir, &["check"], &wrong);
    assert_eq!(code, 12, "{out}{err}");
    assert!(out.contains("FAIL ldap"), "{out}");
    let (code, _, err) = prov_with(&dir, &["--json", "plan"], &wrong);
    assert_eq!(code, 12, "{err}");
    let e: serde_json::Value = serde_json::from_str(err.trim()).unwrap();
    assert_eq!(e["kind"], "unauthenticated", "{e}");
    assert!(!err.contains("not-the-password"), "{err}");
    // Without the danger switch, a password bind over plain ldap:// is
    // refused before anything is sent (it was accepted: the password
    // crossed the network in the clear).
    std::fs::write(
        dir.join("prov.toml"),
        config.replace("danger_allow_plaintext_bind = true\n", ""),
    )
    .unwrap();
    let (code, _, err) = run(&["check"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("prov.toml:12: targets.ldap.url: binding with a password over")
            && err.contains("in the clear")
            && err.contains("danger_allow_plaintext_bind"),
        "{err}"
    );
    assert!(!err.contains(&server.admin_password));
    // A file target given an LDAP key is told so, with its line.
    std::fs::write(
        dir.join("prov.toml"),
        config.replace(
            "kind = \"ldap\"",
            "kind = \"file\"\npath = \"targets/x.json\"",
        ),
    )
    .unwrap();
    let (code, _, err) = run(&["plan"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "prov.toml:13: targets.ldap: unknown field `url`, expected `path` (kind `file`)"
        ),
        "{err}"
    );
    assert!(!err.contains(&server.admin_password));
    // Every LDAP-only field is named, not silently ignored.
    for field in [
        "page_size = 50",
        "accounts_base = \"ou=x\"",
        "max_in_flight = 4",
    ] {
        std::fs::write(
            dir.join("prov.toml"),
            format!(
                "policy = \"policy.toml\"\n\n[source]\nkind = \"csv\"\npath = \"hr.csv\"\n[source.mapping]\nid = \"id\"\nstate = \"status\"\n\n\
                 [targets.ldap]\nkind = \"file\"\npath = \"targets/x.json\"\n{field}\n"
            ),
        )
        .unwrap();
        let (code, _, err) = run(&["plan"]);
        assert_eq!(code, 2, "{err}");
        let name = field.split(' ').next().unwrap_or_default();
        assert!(
            err.contains(&format!(
                "prov.toml:13: targets.ldap: unknown field `{name}`, expected `path` (kind `file`)"
            )),
            "{err}"
        );
    }
}

#[test]
fn the_shipped_ldap_config_parses() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/cli/ldap.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_prov"))
        .arg("--config")
        .arg(&config)
        .arg("plan")
        .env_remove("PROV_LDAP_PASSWORD")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Everything up to the secret is valid: the only complaint is the missing password.
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "targets.ldap.password: the environment variable PROV_LDAP_PASSWORD is not set"
        ),
        "{err}"
    );
}

#[test]
fn a_keyed_audit_log_and_its_head() {
    let dir = setup(5);
    let cfg = dir.join("prov.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    // Top-level keys go before the first table.
    std::fs::write(
        &cfg,
        format!("audit_key = {{ env = \"PROV_TEST_AUDIT_KEY\" }}\n{text}"),
    )
    .unwrap();
    let key = [("PROV_TEST_AUDIT_KEY", "a key of thirty-two bytes, kept!")];
    // The key must be there: no silent fall back to an unkeyed log.
    let (code, _, err) = prov(&dir, &["apply", "--yes"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("audit_key") && err.contains("PROV_TEST_AUDIT_KEY"),
        "{err}"
    );
    let (code, _, err) = prov_with(&dir, &["apply", "--yes"], &key);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = prov_with(&dir, &["audit", "verify"], &key);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "audit log verified: 10 records, chain intact, 10 sealed with the audit key\n"
    );
    let (code, head, _) = prov_with(&dir, &["audit", "head"], &key);
    assert_eq!(code, 0);
    assert!(head.starts_with("10:"), "{head}");
    let (code, out, err) = prov_with(&dir, &["audit", "verify", "--head", head.trim()], &key);
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with(", reaches head 10\n"), "{out}");
    // A head the log does not reach (as after its end was cut off).
    let beyond = format!("11:{}", &head.trim()[3..]);
    let (code, _, err) = prov_with(&dir, &["audit", "verify", "--head", &beyond], &key);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cut off the end"), "{err}");
    // Another key does not vouch for it.
    let other = [("PROV_TEST_AUDIT_KEY", "another key, also 32 bytes long!")];
    let (code, _, err) = prov_with(&dir, &["audit", "verify"], &other);
    assert_eq!(code, 1, "{err}");
    // Written inline in the config, the key is refused.
    std::fs::write(
        &cfg,
        format!("audit_key = \"inline-secret-of-some-length\"\n{text}"),
    )
    .unwrap();
    let (code, _, err) = prov(&dir, &["audit", "verify"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not in the config"), "{err}");
    assert!(
        !err.contains("inline-secret"),
        "the key is never repeated: {err}"
    );
}

/// Two `prov` processes decide one lease at once, many times: exactly one
/// decision wins each time, and the audit log records only that one.
fn decisions_race(dir: &Path, rounds: usize) {
    for round in 0..rounds {
        let (code, out, err) = prov(
            dir,
            &[
                "lease",
                "request",
                "e1",
                "oncall",
                "--duration",
                "1h",
                "--reason",
                "race",
            ],
        );
        assert_eq!(code, 0, "{err}");
        let id = out.split_whitespace().next().unwrap().to_owned();
        let spawn = |args: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_prov"))
                .arg("--config")
                .arg(dir.join("prov.toml"))
                .args(args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let a = spawn(&["lease", "approve", &id, "--approver", "e2"]);
        let r = spawn(&["lease", "reject", &id, "--by", "security", "--note", "no"]);
        let (a, r) = (a.wait_with_output().unwrap(), r.wait_with_output().unwrap());
        let won = [a.status.success(), r.status.success()];
        assert_eq!(
            won.iter().filter(|w| **w).count(),
            1,
            "round {round}: approve {:?} / reject {:?}: {} {}",
            a.status,
            r.status,
            String::from_utf8_lossy(&a.stderr),
            String::from_utf8_lossy(&r.stderr)
        );
        let loser = if won[0] { &r } else { &a };
        let text = String::from_utf8_lossy(&loser.stderr);
        assert!(text.contains(&id), "the loser names the lease: {text}");
    }
    let (code, out, _) = prov(dir, &["--json", "audit", "export"]);
    assert_eq!(code, 0);
    let decisions = out
        .lines()
        .filter(|l| l.contains("lease.approve") || l.contains("lease.reject"))
        .count();
    assert_eq!(decisions, rounds, "one decision recorded per lease");
}

#[test]
fn an_approve_and_a_reject_at_once_never_both_succeed_on_sqlite() {
    let dir = setup(3);
    decisions_race(&dir, 8);
}

#[test]
#[ignore = "needs PostgreSQL: run ./scripts/test.sh, which starts one"]
fn an_approve_and_a_reject_at_once_never_both_succeed_on_postgres() {
    let dir = setup(3);
    use_store(&dir, &pg_database("prov_cli_race"));
    decisions_race(&dir, 8);
}

/// Two `prov apply` processes at once against one directory and one store:
/// one run at a time per target, so each person gets one account, both
/// runs succeed (the second waits, then finds nothing left to do), and the
/// audit log records each create once.
fn two_applies_at_once(store: Option<&str>) {
    let server = prov_testkit::slapd::Slapd::start().unwrap();
    server
        .add_groups(&["groupOfNames"], "member", &["staff", "oncall"])
        .unwrap();
    // Enough that the two runs overlap: an apply lasts far longer than a start.
    let people = 400;
    let dir = setup(people);
    let store = store.map_or(String::new(), |url| format!("store = \"{url}\"\n"));
    std::fs::write(
        dir.join("prov.toml"),
        format!(
            "{store}policy = \"policy.toml\"\n\n[source]\nkind = \"csv\"\npath = \"hr.csv\"\n[source.mapping]\nid = \"id\"\nstate = \"status\"\n\n\
             [targets.ldap]\nkind = \"ldap\"\nurl = \"{}\"\nsuffix = \"{}\"\nbind_dn = \"{}\"\npassword = {{ env = \"PROV_TEST_LDAP_PASSWORD\" }}\n\
             placeholder_member = \"{}\"\ndanger_allow_plaintext_bind = true\n",
            server.url,
            server.suffix,
            server.admin_dn,
            server.nobody()
        ),
    )
    .unwrap();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_prov"))
            .arg("--config")
            .arg(dir.join("prov.toml"))
            .args(["apply", "--yes"])
            .env("PROV_TEST_LDAP_PASSWORD", &server.admin_password)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for out in [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()] {
        assert!(
            out.status.success(),
            "{:?}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let listed = server
        .tool(
            "ldapsearch",
            &["-LLL", "-b", &server.suffix, "(uid=e*)", "dn"],
            "",
        )
        .unwrap();
    assert_eq!(
        listed.matches("dn: uid=e").count(),
        people,
        "one account each"
    );
    let secret = [("PROV_TEST_LDAP_PASSWORD", server.admin_password.as_str())];
    let (code, out, _) = prov_with(&dir, &["audit", "export"], &secret);
    assert_eq!(code, 0);
    let creates = out
        .lines()
        .filter(|l| l.contains("\"operation\":\"create\"") && l.contains("\"outcome\":\"done\""))
        .count();
    assert_eq!(creates, people, "each create recorded once");
    let (code, out, err) = prov_with(&dir, &["audit", "verify"], &secret);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn two_applies_at_once_on_sqlite_take_turns() {
    two_applies_at_once(None);
}

#[test]
#[ignore = "needs PostgreSQL: run ./scripts/test.sh, which starts one"]
fn two_applies_at_once_on_postgres_take_turns() {
    two_applies_at_once(Some(&pg_database("prov_cli_turns")));
}

#[test]
fn an_initial_password_is_set_once_kept_out_of_files_and_reset_on_request() {
    let dir = setup(2);
    let policy = POLICY.replace(
        "[targets.ldap]\naccount = \"always\"\n",
        "[targets.ldap]\naccount = \"always\"\nsecret = [\"password\"]\n[targets.ldap.attributes]\npassword = '\"Welcome-\" + id + \"-x7\"'\n",
    );
    std::fs::write(dir.join("policy.toml"), policy).unwrap();
    let plan = dir.join("plan.json");
    let (code, _, err) = prov(&dir, &["plan", "--out", plan.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = prov(&dir, &["apply", plan.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}{out}");
    // The file target keeps it as a salted hash, never in the clear.
    let target = target_text(&dir.join("targets/ldap.json"));
    assert!(
        target.contains("\"password\":{\"string\":\"sha256:"),
        "the target has it: {target}"
    );
    assert!(!target.contains("Welcome-"), "{target}");
    // Nowhere else: not the plan, not the store (outbox and audit).
    assert!(!std::fs::read_to_string(&plan).unwrap().contains("Welcome-"));
    for f in std::fs::read_dir(&dir).unwrap() {
        let path = f.unwrap().path();
        if path.is_file() && !path.ends_with("policy.toml") {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(8).any(|w| w == b"Welcome-"),
                "{} holds a secret",
                path.display()
            );
        }
    }
    // Nothing to do next time, and a reset sets it again, audited.
    assert_eq!(prov(&dir, &["plan"]).1, "no changes\n");
    let (code, out, err) = prov(&dir, &["reset-secret", "e0", "ldap"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("update") && out.contains("done"), "{out}");
    let (code, out, _) = prov(&dir, &["--json", "audit", "export"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("reset of secret attributes, asked by tester"),
        "{out}"
    );
    assert!(!out.contains("Welcome-"));
    let (code, _, err) = prov(&dir, &["reset-secret", "nobody", "ldap"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn sigterm_stops_an_apply_records_what_was_sent_and_exits_143() {
    let dir = setup(1500);
    let target = dir.join("targets/ldap.json");
    let child = Command::new(env!("CARGO_BIN_EXE_prov"))
        .arg("--config")
        .arg(dir.join("prov.toml"))
        .args(["apply", "--yes"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the first creates have landed, the apply is under way (the
    // file itself is made when the target is opened).
    let started = std::time::Instant::now();
    while accounts_in(&target) < 20 {
        assert!(started.elapsed() < std::time::Duration::from_secs(120));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(err.contains("stopping: no new operations"), "{err}");
    // Every account on the target has its create recorded by the stopped
    // run itself: nothing was left for recovery.
    let accounts = accounts_in(&target);
    assert!(accounts < 1500, "it stopped early: {accounts} accounts");
    assert_eq!(prov(&dir, &["plan"]).0, 0);
    let (code, log, _) = prov(&dir, &["audit", "export"]);
    assert_eq!(code, 0);
    let records: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let text = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or("").to_owned();
    assert!(
        !records
            .iter()
            .any(|r| text(r, "outcome").starts_with("recovered")),
        "nothing left in flight: {log}"
    );
    let created = records
        .iter()
        .filter(|r| text(r, "operation") == "create" && text(r, "outcome") == "done")
        .count();
    assert_eq!(created, accounts);
    // What was not sent is still to do (the next apply does it).
    let (code, _, _) = prov(&dir, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 2);
}

/// `prov apply` on a terminal (a pseudo-terminal from util-linux `script`,
/// part of every Debian system), answering `answer`.
fn apply_on_a_terminal(dir: &Path, answer: &str) -> (i32, String) {
    use std::io::Write;
    let cmd = format!(
        "{} --config {} apply",
        env!("CARGO_BIN_EXE_prov"),
        dir.join("prov.toml").display()
    );
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{answer}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn apply_on_a_terminal_shows_the_plan_and_applies_only_on_yes() {
    let dir = setup(3);
    let (code, out) = apply_on_a_terminal(&dir, "y");
    assert_eq!(code, 8, "{out}");
    // On a terminal the plan has colours; NO_COLOR takes them away.
    assert!(out.contains("\x1b[32m+ create  ldap: e0\x1b[0m"), "{out:?}");
    let plain = Command::new("script")
        .args([
            "-q",
            "-e",
            "-c",
            &format!(
                "{} --config {} plan",
                env!("CARGO_BIN_EXE_prov"),
                dir.join("prov.toml").display()
            ),
            "/dev/null",
        ])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let plain = String::from_utf8_lossy(&plain.stdout);
    assert!(
        plain.contains("+ create  ldap: e0") && !plain.contains('\x1b'),
        "{plain:?}"
    );
    assert!(
        out.contains("Apply these 6 operations? Only `yes` applies them"),
        "{out}"
    );
    assert!(
        out.contains("not applied: the answer was not `yes`"),
        "{out}"
    );
    assert_eq!(
        prov(&dir, &["plan", "--detailed-exitcode"]).0,
        2,
        "nothing applied"
    );
    let (code, out) = apply_on_a_terminal(&dir, "yes");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("6 of 6 operations done"), "{out}");
    assert_eq!(prov(&dir, &["plan"]).1, "no changes\n");
}

#[test]
#[ignore = "needs PostgreSQL: run ./scripts/test.sh, which starts one"]
fn a_store_that_stops_recording_mid_apply_exits_6_and_recovery_records_the_rest() {
    let db_url = pg_database("prov_cli_full");
    let people = 600;
    let dir = setup(people);
    use_store(&dir, &db_url);
    let target = dir.join("targets/ldap.json");
    // The schema exists (the store migrates on open), then the disk "fills
    // up": outbox entries can still be written, audit records cannot. A
    // fault in place before the apply, so that what follows does not hang
    // on how fast the machine is.
    assert_eq!(prov(&dir, &["plan"]).0, 0);
    assert!(psql(
        &db_url,
        "ALTER TABLE prov_audit ADD CONSTRAINT prov_test_full CHECK (seq < 0) NOT VALID"
    ));
    let (code, _, err) = prov(&dir, &["apply", "--yes"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("the audit log could not be written"), "{err}");
    // Once the first records failed, nothing more was begun: at most the
    // first chunk of 512 operations was sent.
    let accounts = accounts_in(&target);
    assert!(
        (1..=512).contains(&accounts),
        "it stopped sending: {accounts} accounts"
    );
    // The store works again: the next run's recovery records what was
    // sent and not recorded, so each account has exactly one create record.
    assert!(psql(
        &db_url,
        "ALTER TABLE prov_audit DROP CONSTRAINT prov_test_full"
    ));
    assert_eq!(
        prov(&dir, &["plan", "--detailed-exitcode"]).0,
        2,
        "changes are still pending"
    );
    let (code, log, _) = prov(&dir, &["audit", "export"]);
    assert_eq!(code, 0);
    let creates = log
        .lines()
        .filter(|l| {
            l.contains("\"operation\":\"create\"")
                && (l.contains("\"outcome\":\"done\"")
                    || l.contains("\"outcome\":\"recovered: applied"))
        })
        .count();
    assert_eq!(creates, accounts, "one record per create");
    assert_eq!(prov(&dir, &["audit", "verify"]).0, 0);
}

/// An account with someone's login that no link holds (here: the store
/// that linked it is gone) is a conflict, never taken over; `prov link`
/// decides it, audited, and `prov unlink` undoes it.
#[test]
fn an_account_with_someones_login_is_a_conflict_until_linked_by_hand() {
    let dir = setup(2);
    let (code, _, err) = prov(&dir, &["apply", "--yes"]);
    assert_eq!(code, 0, "{err}");
    for f in ["prov.db", "prov.db-wal", "prov.db-shm"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let (code, out, err) = prov(&dir, &["plan"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("CONFLICT ldap e0: an existing account has the login e0")
            && out.contains("not taken over")
            && !out.contains("ORPHAN")
            && out.ends_with("no changes\n"),
        "{out}"
    );
    let (code, out, err) = prov(&dir, &["link", "ldap", "e0", "e0"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("linked ldap: "), "{out}");
    // Linking it to someone else now is refused, naming the holder.
    let (code, _, err) = prov(&dir, &["link", "ldap", "e1", "e0"]);
    assert_eq!(code, 13);
    assert!(err.contains("is linked to `e0`"), "{err}");
    let (code, _, err) = prov(&dir, &["link", "ldap", "e9", "e1"]);
    assert_eq!(code, 11);
    assert!(err.contains("`e9` is not in the sources"), "{err}");
    let (_, out, _) = prov(&dir, &["plan"]);
    assert!(!out.contains("CONFLICT ldap e0"), "{out}");
    assert!(out.contains("CONFLICT ldap e1"), "{out}");
    let (code, out, _) = prov(&dir, &["--json", "audit", "export"]);
    assert_eq!(code, 0);
    assert!(
        out.lines().any(|l| l.contains("\"operation\":\"link\"")
            && l.contains("\"actor\":\"tester")
            && l.contains("linked by hand")),
        "{out}"
    );
    let (code, out, err) = prov(&dir, &["unlink", "ldap", "e0"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("was e0's, linked"), "{out}");
    let (_, out, _) = prov(&dir, &["plan"]);
    assert!(out.contains("CONFLICT ldap e0"), "{out}");
}

/// The example config and data in a temp dir (dir/cli/prov.toml, dir/data/).
fn example() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let dir = std::env::temp_dir().join(format!(
        "prov-cli-example-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(dir.join("cli")).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::copy(root.join("cli/prov.toml"), dir.join("cli/prov.toml")).unwrap();
    for f in ["hr.csv", "policy.toml"] {
        std::fs::copy(root.join("data").join(f), dir.join("data").join(f)).unwrap();
    }
    dir
}

/// One blank email cell never disables anyone nor erases their mail: the
/// changes are held, printed as HELD, and apply exits 10. A renamed column
/// stops the run before anything is planned.
#[test]
fn a_blank_hr_cell_is_held_not_obeyed_and_a_renamed_column_stops_the_run() {
    let dir = example();
    let cli = dir.join("cli");
    let (code, _, err) = prov(&cli, &["apply", "--yes"]);
    assert_eq!(code, 0, "{err}");
    let hr = dir.join("data/hr.csv");
    let text = std::fs::read_to_string(&hr).unwrap();
    std::fs::write(&hr, text.replace("grace.hopper@example.com", "")).unwrap();
    let (code, out, err) = prov(&cli, &["plan"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.ends_with("no changes\n"),
        "nothing disabled or removed: {out}"
    );
    assert!(
        out.contains(
            "HELD ldap: E1002's mail is left as it is: `email` reads email, which E1002 lacks"
        ),
        "{out}"
    );
    let (code, out, err) = prov(&cli, &["apply", "--yes"]);
    assert_eq!(code, 10, "{out}{err}");
    assert!(
        out.contains("HELD "),
        "apply prints what plan prints: {out}"
    );
    assert!(err.contains("changes were held"), "{err}");
    // The column renamed in the export: a source error, exit 2, nothing planned.
    std::fs::write(&hr, text.replacen(",email,", ",mail,", 1)).unwrap();
    let (code, _, err) = prov(&cli, &["plan"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the policy reads attribute `email`, which no column gives"),
        "{err}"
    );
}

/// The one JSON object a failure prints with --json, on standard error.
fn json_error(err: &str) -> serde_json::Value {
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {err}"))
}

/// Issue 14 item 5: --json errors, exit codes, closed pipes, review
/// --json, completions and the manual page.
#[test]
fn scripting_never_surprises() {
    let dir = setup(3);
    let cfg = dir.join("prov.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    // Config, policy and source errors as one JSON object each.
    std::fs::write(
        &cfg,
        text.replace("kind = \"file\"", "kind = \"file\"\ncolour = \"blue\""),
    )
    .unwrap();
    let (code, out, err) = prov(&dir, &["--json", "plan"]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    let e = json_error(&err);
    assert_eq!(e["kind"], "config", "{e}");
    assert_eq!(e["exit_code"], 2, "{e}");
    assert_eq!(e["line"], 13, "{e}");
    assert!(e["file"].as_str().unwrap().ends_with("prov.toml"), "{e}");
    assert!(e["message"].as_str().unwrap().contains("colour"), "{e}");
    std::fs::write(&cfg, text.replace("kind = \"file\"", "kind = \"smtp\"")).unwrap();
    let e = json_error(&prov(&dir, &["--json", "plan"]).2);
    assert_eq!(
        (e["kind"].as_str(), e["field"].as_str()),
        (Some("config"), Some("targets.ldap.kind")),
        "{e}"
    );
    std::fs::write(&cfg, &text).unwrap();
    std::fs::write(
        dir.join("policy.toml"),
        POLICY.replace("roles = [\"staff\"]", "roles = [\"staf\"]"),
    )
    .unwrap();
    let e = json_error(&prov(&dir, &["--json", "plan"]).2);
    assert_eq!(e["kind"], "policy", "{e}");
    assert_eq!(e["line"], 12, "{e}");
    assert_eq!(e["field"], "rules.all.roles", "{e}");
    assert!(e["file"].as_str().unwrap().ends_with("policy.toml"), "{e}");
    std::fs::write(dir.join("policy.toml"), POLICY).unwrap();
    let hr = std::fs::read_to_string(dir.join("hr.csv")).unwrap();
    std::fs::write(dir.join("hr.csv"), format!("{hr}e9,X,retired\n")).unwrap();
    let e = json_error(&prov(&dir, &["--json", "plan"]).2);
    assert_eq!(e["kind"], "source", "{e}");
    assert_eq!(
        (e["line"].as_u64(), e["field"].as_str()),
        (Some(5), Some("status")),
        "{e}"
    );
    std::fs::write(dir.join("hr.csv"), &hr).unwrap();
    // A usage error too.
    let (code, _, err) = prov(&dir, &["--json", "plan", "--no-such-flag"]);
    assert_eq!(code, 2);
    let e = json_error(&err);
    assert_eq!(e["kind"], "usage", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("--no-such-flag"),
        "{e}"
    );
    // Exit codes: an unknown lease id is "not found", not 1.
    assert_eq!(prov(&dir, &["apply", "--yes"]).0, 0);
    let (code, _, err) = prov(&dir, &["lease", "approve", "nope", "--approver", "e2"]);
    assert_eq!(code, 11, "{err}");
    assert!(err.contains("no lease `nope`"), "{err}");
    let e = json_error(&prov(&dir, &["--json", "lease", "revoke", "nope", "--by", "e2"]).2);
    assert_eq!(
        (e["kind"].as_str(), e["exit_code"].as_u64()),
        (Some("not_found"), Some(11))
    );
    // Explaining a target or entitlement the policy does not know is an
    // error, not "does not get".
    let (code, _, err) = prov(&dir, &["explain", "e1", "ldpa:staff"]);
    assert_eq!(code, 11, "{err}");
    assert!(err.contains("no target `ldpa`"), "{err}");
    let (code, _, err) = prov(&dir, &["explain", "e1", "ldap:stafff"]);
    assert_eq!(code, 11, "{err}");
    let (code, out, _) = prov(&dir, &["explain", "e1", "ldap:oncall"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "e1 does not get ldap:oncall from the policy\n")
    );
    // Every command's --json is JSON.
    for args in [
        &["--json", "check"][..],
        &["--json", "audit", "verify"],
        &["--json", "audit", "head"],
        &["--json", "lease", "list"],
        &["--json", "leaver", "list"],
        &["--json", "explain", "e1"],
        &["--json", "validate"],
        &["--json", "plan"],
    ] {
        let (code, out, err) = prov(&dir, args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(
            serde_json::from_str::<serde_json::Value>(&out).is_ok(),
            "{args:?}: {out}"
        );
    }
    // review --json is JSON.
    let (code, out, err) = prov(&dir, &["--json", "review"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        serde_json::from_str::<serde_json::Value>(&out).is_ok(),
        "{out}"
    );
    // A closed pipe ends the output quietly (exit 101 and a panic before),
    // and the command keeps its own status.
    for args in [&["audit", "export"][..], &["lease", "list"], &["plan"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_prov"))
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone before anything is written
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // Completions and the manual page need no config.
    let (code, out, err) = prov(&dir.join("nowhere"), &["completions", "bash"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("complete -F _prov"), "{out}");
    let (code, out, _) = prov(&dir.join("nowhere"), &["completions", "fish"]);
    assert_eq!(code, 0);
    assert!(out.contains("complete -c prov"), "{out}");
    let (code, out, _) = prov(&dir.join("nowhere"), &["man"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(".ie") || out.contains(".TH prov"),
        "{}",
        &out[..out.len().min(200)]
    );
}

/// Issue 14 item 1: `prov validate` reports what would hurt, offline,
/// writing nothing: an empty value templates read, a login two people
/// would share, a separation-of-duties rule the birthright rules break.
#[test]
fn validate_reports_what_would_hurt_before_anything_runs() {
    let dir = setup(0);
    std::fs::write(
        dir.join("policy.toml"),
        r#"
[attributes]
email = "string"
department = "string"

[targets.ldap]
account = "always"
login = 'email.split("@")[0]'
[targets.ldap.attributes]
mail = "email"

[roles.staff]
grants.ldap = ["staff"]
[roles.pay]
grants.ldap = ["pay-init"]
[roles.approve]
grants.ldap = ["pay-approve"]

[rules.all]
when = "true"
roles = ["staff"]
[rules.finance]
when = 'department == "Finance"'
roles = ["pay", "approve"]

[sod.payments]
roles = ["pay", "approve"]
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("hr.csv"),
        "id,email,department,status\n\
         e1,ann@x.org,Finance,active\n\
         e2,,Sales,active\n\
         e3,bob@x.org,Sales,active\n\
         e4,Bob@y.org,Sales,active\n\
         e5,,Sales,terminated\n",
    )
    .unwrap();
    let (code, out, err) = prov(&dir, &["validate"]);
    assert_eq!(code, 14, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "PROBLEM email is empty for 1 person: e2 (read by ldap attribute mail, ldap login); their changes there would be held",
            "PROBLEM ldap: 2 people would get the login bob (compared ignoring case): e3, e4",
            "PROBLEM e1 already breaks separation-of-duties rule payments (prevent) by the policy's rules and assignments: role approve + role pay",
        ],
        "{out}"
    );
    assert!(err.contains("3 problems found"), "{err}");
    assert!(!dir.join("prov.db").exists(), "validate wrote a store");
    assert!(
        !dir.join("targets/ldap.json.journal").exists(),
        "validate wrote a target"
    );
    let (code, out, _) = prov(&dir, &["--json", "validate"]);
    assert_eq!(code, 14);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let kinds: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["missing_value", "duplicate_login", "sod"]);
    // Fixed data: valid, exit 0.
    std::fs::write(
        dir.join("hr.csv"),
        "id,email,department,status\ne3,bob@x.org,Sales,active\ne6,cy@x.org,Sales,active\n",
    )
    .unwrap();
    let (code, out, err) = prov(&dir, &["validate", "--online"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out,
        "valid: 2 identities, 1 targets, every entitlement listed\n"
    );
}

/// Issue 14 item 2: `prov init` writes a starter that validates, plans and
/// applies as it is, and never overwrites without --force.
#[test]
fn init_writes_a_starter_that_plans_as_it_is() {
    let (dir, new) = starter("init");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(new.join("hr.csv"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let (code, out, err) = prov(&new, &["validate"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = prov(&new, &["plan"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("E1001: joiner\n  + create  app: ada.lovelace@example.com\n"),
        "{out}"
    );
    assert!(!out.contains("PROBLEM"), "{out}");
    let (code, out, err) = prov(&new, &["apply", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(prov(&new, &["plan"]).1, "no changes\n");
    // A second init keeps what is there.
    let again = Command::new(env!("CARGO_BIN_EXE_prov"))
        .arg("init")
        .arg(&new)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already there"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 14 item 8: the two shipped configs keep their own stores, and the
/// LDAP example's groups come with it: `validate --online` names them when
/// missing and passes once examples/ldap/groups.ldif is loaded.
#[test]
fn the_shipped_configs_keep_apart_and_the_ldap_groups_come_with_them() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let store_of = |name: &str| -> String {
        let text = std::fs::read_to_string(examples.join("cli").join(name)).unwrap();
        let v: toml::Value = toml::from_str(&text).unwrap();
        v["store"].as_str().unwrap().to_owned()
    };
    assert_ne!(store_of("prov.toml"), store_of("ldap.toml"));
    let tls = {
        let mut o = prov_testkit::slapd::SlapdOptions::default();
        o.tls = true;
        o
    };
    let server = prov_testkit::slapd::Slapd::start_with(&tls).unwrap();
    assert_eq!(
        server.suffix, "dc=example,dc=org",
        "the LDIF is written for it"
    );
    let dir = setup(0);
    let text = shipped_ldap_config(&server);
    assert!(text.contains("\ncreate_entitlements = true "), "{text}");
    assert!(
        text.contains("\nstarttls = true "),
        "shipped with TLS: {text}"
    );
    let secret = [("PROV_LDAP_PASSWORD", server.admin_password.as_str())];
    // Without create_entitlements, the groups must be there first.
    let without = text.replace(
        "\ncreate_entitlements = true ",
        "\ncreate_entitlements = false ",
    );
    std::fs::write(dir.join("prov.toml"), &without).unwrap();
    let (code, out, err) = prov_with(&dir, &["validate", "--online"], &secret);
    assert_eq!(code, 14, "{out}{err}");
    assert!(
        out.contains("PROBLEM ldap: the policy grants staff, which the target does not list"),
        "{out}"
    );
    // As shipped, the engine makes them: every grant lands (it was 107
    // grants failed with "group does not exist", exit 1).
    std::fs::write(dir.join("prov.toml"), &text).unwrap();
    let (code, out, err) = prov_with(&dir, &["validate", "--online"], &secret);
    assert_eq!(
        (code, out.contains("does not list")),
        (0, false),
        "{out}{err}"
    );
    let (code, out, err) = prov_with(&dir, &["apply", "--yes"], &secret);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("failed"), "{out}");
    assert!(dir.join("ldap.db").exists() && !dir.join("prov.db").exists());
    let (code, out, _) = prov_with(&dir, &["plan"], &secret);
    assert_eq!((code, out.as_str()), (0, "no changes\n"));

    // The LDIF, for a directory where groups are made by hand.
    let first_ca = format!("{:?}", server.ca_file());
    let server = prov_testkit::slapd::Slapd::start_with(&tls).unwrap();
    let dir = setup(0);
    let ldif = std::fs::read_to_string(examples.join("ldap/groups.ldif")).unwrap();
    server.tool("ldapadd", &[], &ldif).unwrap();
    std::fs::write(
        dir.join("prov.toml"),
        without
            .replace(&text_url(&text), &server.url)
            .replace(&first_ca, &format!("{:?}", server.ca_file())),
    )
    .unwrap();
    let secret = [("PROV_LDAP_PASSWORD", server.admin_password.as_str())];
    let (code, out, err) = prov_with(&dir, &["validate", "--online"], &secret);
    assert!(!out.contains("does not list"), "{out}");
    assert_eq!(code, 0, "{out}{err}");
}

/// examples/cli/ldap.toml as shipped, pointed at `server` (started with
/// TLS): its paths made absolute, its URL, CA and admin DN the server's.
fn shipped_ldap_config(server: &prov_testkit::slapd::Slapd) -> String {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    std::fs::read_to_string(examples.join("cli/ldap.toml"))
        .unwrap()
        .replace(
            "\"../ldap/policy.toml\"",
            &format!("{:?}", examples.join("ldap/policy.toml")),
        )
        .replace(
            "\"../data/hr.csv\"",
            &format!("{:?}", examples.join("data/hr.csv")),
        )
        .replace("ldap://127.0.0.1:389", &server.url)
        .replace("\"ca.pem\"", &format!("{:?}", server.ca_file()))
        .replace("cn=admin,dc=example,dc=org", &server.admin_dn)
}

/// The `url = "..."` of a config's target.
fn text_url(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("url = \""))
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned()
}

/// Issue 14 item 4: a plan reads like a diff, per person: the event, the
/// attributes of creates, attribute changes old -> new, a deletion's due
/// date; no colour off a terminal or with NO_COLOR.
#[test]
fn a_plan_reads_like_a_diff_per_person() {
    let (root, dir) = starter("diff");
    let (code, out, _) = prov(&dir, &["plan"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(
            "E1003: joiner\n  + create  app: alan.turing@example.com\n        because joiner: E1003 should have an account on app\n  + create  directory: alan.turing\n        cn = \"Alan Turing\"\n        mail = \"alan.turing@example.com\"\n"
        ),
        "{out}"
    );
    assert!(!out.contains('\x1b'), "no colour off a terminal: {out}");
    assert_eq!(prov(&dir, &["apply", "--yes"]).0, 0);
    // Alan moves to Engineering with a new address; Joan leaves.
    let hr = std::fs::read_to_string(dir.join("hr.csv")).unwrap();
    let hr = hr
        .replace(
            "E1003,Alan,Turing,alan.turing@example.com,Finance",
            "E1003,Alan,Turing,alan.m.turing@example.com,Engineering",
        )
        .replace("2027-06-30,active", "2027-06-30,terminated");
    std::fs::write(dir.join("hr.csv"), hr).unwrap();
    let (code, out, _) = prov_with(&dir, &["plan"], &[("NO_COLOR", "1")]);
    assert_eq!(code, 0);
    for want in [
        "E1003: mover: finance -> engineering\n",
        "  ~ update  directory: alan.turing (set mail)\n        mail: \"alan.turing@example.com\" -> \"alan.m.turing@example.com\"\n",
        "        login: alan.turing@example.com -> alan.m.turing@example.com\n",
        "  - revoke  app: payments-initiate for alan.turing@example.com\n",
        "E1004: leaver\n",
        "  - disable directory: joan.clarke\n        because leaver: E1004 is terminated\n        because leaver: deletion due 2027-07-31 00:00 UTC (after the grace period)\n",
    ] {
        assert!(out.contains(want), "{want:?} in {out}");
    }
    std::fs::remove_dir_all(&root).unwrap();
}

/// Issue 14 item 4: `prov graph` draws rule -> role -> entitlement, for
/// the policy or one identity, as DOT or Mermaid.
#[test]
fn graph_draws_the_policy_and_one_identity() {
    let (root, dir) = starter("graph");
    let (code, dot, err) = prov(&dir, &["graph"]);
    assert_eq!(code, 0, "{err}");
    assert!(dot.starts_with("digraph prov {\n  rankdir=LR;\n"), "{dot}");
    let id = |label: &str| -> String {
        let line = dot
            .lines()
            .find(|l| l.contains(&format!("[label=\"{label}\"")))
            .unwrap_or_else(|| panic!("no node {label} in {dot}"));
        line.trim().split(' ').next().unwrap().to_owned()
    };
    for (a, b) in [
        ("rule finance", "role finance"),
        ("role finance", "role employee"),
        ("role employee", "directory:staff"),
        ("role finance-lead", "app:payments-approve"),
    ] {
        assert!(
            dot.contains(&format!("  {} -> {};\n", id(a), id(b))),
            "{a} -> {b} in {dot}"
        );
    }
    let (code, mermaid, _) = prov(&dir, &["graph", "--format", "mermaid"]);
    assert_eq!(code, 0);
    assert!(
        mermaid.starts_with("flowchart LR\n") && mermaid.contains("[\"rule finance\"]"),
        "{mermaid}"
    );
    // One identity: only what it gets, and why.
    let (code, mine, _) = prov(&dir, &["graph", "E1003"]);
    assert_eq!(code, 0);
    assert!(
        mine.contains("\"role finance\"") && !mine.contains("\"role engineering\""),
        "{mine}"
    );
    assert_eq!(prov(&dir, &["graph", "E9999"]).0, 11);
    assert_eq!(prov(&dir, &["graph", "--format", "png"]).0, 2);
    std::fs::remove_dir_all(&root).unwrap();
}

/// Issue 14 item 9: what a policy change would do, before it is rolled
/// out: gains and losses with their reasons, SoD newly broken, counts per
/// target and role; table, JSON and Markdown; no store, no target touched.
#[test]
fn what_if_shows_who_gains_and_loses_before_a_rollout() {
    let (root, dir) = starter("whatif");
    let policy = std::fs::read_to_string(dir.join("policy.toml")).unwrap();
    let next = policy
        .replace(
            "roles = [\"finance\"]",
            "roles = [\"finance\", \"finance-lead\"]",
        )
        .replace("grants.app = [\"developer\"]\n", "");
    assert_ne!(policy, next);
    std::fs::write(dir.join("next.toml"), next).unwrap();
    let next_path = dir.join("next.toml");
    let next_arg = next_path.to_str().unwrap();
    let (code, out, err) = prov(&dir, &["what-if", next_arg]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "5 of 5 identities change\n",
        "E1004:\n  + role finance-lead\n  SOD newly breaks rule payments\n",
        "E1001:\n  - app:developer  because rule engineering -> role engineering -> app:developer\n",
        "E1003:\n  + role finance-lead\n  + app:payments-approve  because rule finance -> role finance-lead -> app:payments-approve\n  SOD newly breaks rule payments\n",
    ] {
        assert!(out.contains(want), "{want:?} in {out}");
    }
    let (code, out, _) = prov(&dir, &["--json", "what-if", next_arg]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["identities"], 5);
    assert_eq!(
        v["targets"]["app"]["losses"], 3,
        "E1005 is a pre-hire with an app account too: {v}"
    );
    assert_eq!(v["targets"]["app"]["gains"], 1);
    assert_eq!(v["roles"]["finance-lead"]["gained"], 2);
    let (code, md, _) = prov(&dir, &["what-if", next_arg, "--format", "markdown"]);
    assert_eq!(code, 0);
    assert!(
        md.contains("- **E1003** newly breaks separation-of-duties rule `payments`"),
        "{md}"
    );
    assert!(md.contains("| app | 1 | 3 | 0 | 0 |"), "{md}");
    assert!(!dir.join("prov.db").exists() && !dir.join("targets").exists());
    std::fs::remove_dir_all(&root).unwrap();
}

/// A fresh `prov init` starter in a temp dir: (the dir to remove, the starter).
fn starter(tag: &str) -> (PathBuf, PathBuf) {
    let root = std::env::temp_dir().join(format!(
        "prov-{tag}-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    let dir = root.join("acme");
    let init = Command::new(env!("CARGO_BIN_EXE_prov"))
        .arg("init")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    (root, dir)
}

/// A `kind = "scim"` target: our own SCIM server, served in this process.
#[test]
fn a_scim_target_from_the_config() {
    use std::sync::Arc;
    const TOKEN: &str = "cli-scim-token-0123456789";
    let store = Arc::new(prov_scim::server::MemoryStore::new());
    let (tx, rx) = std::sync::mpsc::channel();
    let serving = store.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut tenants = prov_scim::server::Tenants::new();
            tenants.add_token("t", TOKEN).unwrap();
            // Pages of 2, fewer than the profile's: `check` says so.
            let mut config = prov_scim::server::ServerConfig::default();
            config.max_results = 2;
            let scim = prov_scim::server::ScimServer::new(serving, tenants).config(config);
            let app = axum::Router::new().nest("/scim/v2", scim.router());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap().port()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    let port = rx.recv().unwrap();
    // The policy's groups exist on the service.
    let base = format!("http://127.0.0.1:{port}/scim/v2");
    let client = prov_scim::client::ScimClient::new(
        &base,
        prov_scim::client::Auth::Bearer(TOKEN.into()),
        &{
            let mut o = prov_scim::client::ClientOptions::default();
            o.danger_plaintext = true;
            o
        },
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for g in ["staff", "oncall"] {
        rt.block_on(client.request(
            axum::http::Method::POST,
            "/Groups",
            Some(&serde_json::json!({"displayName": g})),
            None,
        ))
        .unwrap();
    }
    let dir = setup(5);
    let config = format!(
        "policy = \"policy.toml\"\n\n[source]\nkind = \"csv\"\npath = \"hr.csv\"\n[source.mapping]\nid = \"id\"\nstate = \"status\"\n\n\
         [targets.ldap]\nkind = \"scim\"\nbase_url = \"{base}\"\ntoken = {{ env = \"PROV_TEST_SCIM_TOKEN\" }}\nmembers_per_patch = 2\ndanger_plaintext = true\n"
    );
    std::fs::write(dir.join("prov.toml"), &config).unwrap();
    let env = [("PROV_TEST_SCIM_TOKEN", TOKEN)];
    let (code, out, err) = prov_with(&dir, &["check"], &env);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "ok   store\nok   ldap\n     note: profile `generic` says page_size = 100, the \
             service's ServiceProviderConfig says filter.maxResults = 2: pages of 2\n"
        ),
        "{err}"
    );
    let (code, out, _) = prov_with(&dir, &["--json", "check"], &env);
    assert_eq!(code, 0);
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["notices"], serde_json::json!([]), "{out}");
    assert!(
        rows[1]["notices"][0]
            .as_str()
            .unwrap()
            .contains("pages of 2"),
        "{out}"
    );
    let (code, out, err) = prov_with(&dir, &["plan"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("10 operations: 5 create, 5 grant\n"), "{out}");
    let (code, out, err) = prov_with(&dir, &["apply", "--yes"], &env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("10 of 10 operations done"), "{out}");
    let (code, out, _) = prov_with(&dir, &["plan"], &env);
    assert_eq!((code, out.as_str()), (0, "no changes\n"));
    let people = rt
        .block_on(prov_scim::server::identities(store.as_ref(), "t"))
        .unwrap();
    assert_eq!(people.len(), 5);
    assert!(
        people.iter().all(|p| p
            .attr("groups")
            .is_some_and(|g| format!("{g:?}").contains("staff"))),
        "{people:?}"
    );
    // The token over plain http:// without the danger switch: refused, naming the key.
    std::fs::write(
        dir.join("prov.toml"),
        config.replace("danger_plaintext = true\n", ""),
    )
    .unwrap();
    let (code, _, err) = prov_with(&dir, &["check"], &env);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("targets.ldap.base_url") && err.contains("in the clear"),
        "{err}"
    );
    assert!(!err.contains(TOKEN));
}

#[test]
fn the_shipped_scim_config_parses() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/cli/scim.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_prov"))
        .arg("--config")
        .arg(&config)
        .arg("plan")
        .env_remove("PROV_GITHUB_SCIM_TOKEN")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Everything up to the secret is valid: the only complaint is the missing token.
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "targets.github.token: the environment variable PROV_GITHUB_SCIM_TOKEN is not set"
        ),
        "{err}"
    );
}

/// Issue 17 item 2: `prov sync` sets right, from the directory's change
/// log, an account deleted by hand and a group taken away, planning only
/// the people touched; the first sync only takes the starting point.
#[test]
fn sync_sets_right_what_the_change_log_reports() {
    let mut o = prov_testkit::slapd::SlapdOptions::default();
    o.access_log = true;
    o.tls = true;
    let server = prov_testkit::slapd::Slapd::start_with(&o).unwrap();
    let dir = setup(0);
    let text = shipped_ldap_config(&server).replace(
        "# accesslog = \"cn=accesslog\"",
        &format!("accesslog = {:?}", prov_testkit::slapd::Slapd::ACCESS_LOG),
    );
    assert!(text.contains("\naccesslog = "), "{text}");
    std::fs::write(dir.join("prov.toml"), &text).unwrap();
    let secret = [("PROV_LDAP_PASSWORD", server.admin_password.as_str())];
    let (code, out, err) = prov_with(&dir, &["apply", "--yes"], &secret);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = prov_with(&dir, &["sync"], &secret);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("STARTED ldap"), "{out}");
    assert!(out.contains("0 changes read, 0 people planned"), "{out}");

    // By hand: Grace's account deleted.
    let people = server
        .tool(
            "ldapsearch",
            &[
                "-LLL",
                "-b",
                &format!("ou=people,{}", server.suffix),
                "(uid=grace*)",
                "1.1",
            ],
            "",
        )
        .unwrap();
    let grace = people
        .lines()
        .find_map(|l| l.strip_prefix("dn: "))
        .unwrap()
        .to_owned();
    server.tool("ldapdelete", &[&grace], "").unwrap();
    let (code, out, err) = prov_with(&dir, &["sync"], &secret);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 changes read, 1 people planned"), "{out}");
    let back = server
        .tool(
            "ldapsearch",
            &["-LLL", "-b", &grace, "-s", "base", "(objectClass=*)", "1.1"],
            "",
        )
        .unwrap();
    assert!(back.contains(&grace), "recreated: {back}");
    // The sync's own writes come back as changes of the same person, and
    // need nothing.
    let (code, out, err) = prov_with(&dir, &["sync"], &secret);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 of 0 operations done"), "{out}");
    let (code, out, _) = prov_with(&dir, &["plan"], &secret);
    assert_eq!((code, out.as_str()), (0, "no changes\n"));
}

/// Issue 18 item 6: `kind = "aws-iam"` and `kind = "aws-identity-center"`
/// targets, credentials from the standard chain (here the environment),
/// against moto: apply creates the users, a second plan has no changes.
#[test]
#[ignore = "needs moto: run the README test command"]
fn aws_targets_from_the_config_against_moto() {
    let moto = prov_testkit::moto::Moto::start().unwrap_or_else(|e| panic!("{e}"));
    let url = moto.url.clone();
    let env = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ];
    for (kind, extra) in [
        ("aws-iam", "path = \"/prov/\"\n"),
        (
            "aws-identity-center",
            "identity_store_id = \"d-1234567890\"\n",
        ),
    ] {
        let dir = setup(3);
        // No groups to grant here: the policy gives accounts only.
        std::fs::write(
            dir.join("policy.toml"),
            "[targets.ldap]\naccount = \"always\"\n[targets.ldap.attributes]\ngiven_name = \"name\"\nfamily_name = '\"Tester\"'\n",
        )
        .unwrap();
        let config = format!(
            "policy = \"policy.toml\"\n\n[source]\nkind = \"csv\"\npath = \"hr.csv\"\n[source.mapping]\nid = \"id\"\nstate = \"status\"\n\n\
             [targets.ldap]\nkind = \"{kind}\"\nendpoint_url = \"{url}\"\n{extra}"
        );
        std::fs::write(dir.join("prov.toml"), &config).unwrap();
        let (code, out, err) = prov_with(&dir, &["check"], &env);
        assert_eq!(code, 0, "{kind}: {out}{err}");
        let (code, out, err) = prov_with(&dir, &["apply", "--yes"], &env);
        assert_eq!(code, 0, "{kind}: {out}{err}");
        assert!(out.contains("3 of 3 operations done"), "{kind}: {out}");
        let (code, out, err) = prov_with(&dir, &["plan"], &env);
        assert_eq!((code, out.as_str()), (0, "no changes\n"), "{kind}: {err}");
    }
    drop(moto);
}
