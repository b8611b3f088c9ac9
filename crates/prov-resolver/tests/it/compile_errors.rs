use prov_resolver::{Policy, PolicyErrors};

fn errors(toml: &str) -> PolicyErrors {
    match Policy::from_toml(toml).and_then(|p| p.compile()) {
        Ok(_) => PolicyErrors { errors: vec![] },
        Err(e) => e,
    }
}

#[test]
fn a_cycle_is_a_load_error_that_names_the_cycle_and_the_line() {
    let e = errors(
        r#"
[targets.ldap]

[roles.a]
inherits = ["b"]

[roles.b]
inherits = ["c"]

[roles.c]
inherits = ["a"]
"#,
    );
    assert_eq!(e.errors.len(), 1, "{e}");
    let text = e.to_string();
    assert!(
        text.contains("inheritance cycle: a -> b -> c -> a"),
        "{text}"
    );
    assert!(text.contains("line 5"), "{text}");
}

#[test]
fn unknown_roles_and_targets_are_named_with_their_place() {
    let e = errors(
        r#"
[targets.ldap]

[roles.base]
grants.github = ["org:all"]

[roles.admin]
inherits = ["base", "ghost"]

[rules.everyone]
when = "true"
roles = ["base", "phantom"]
"#,
    );
    let text = e.to_string();
    assert_eq!(e.errors.len(), 3, "{text}");
    assert!(
        e.mentions("line 5: roles.base.grants: grants on unknown target `github` (targets: ldap)"),
        "{text}"
    );
    assert!(
        e.mentions("line 8: roles.admin.inherits: inherits unknown role `ghost`"),
        "{text}"
    );
    assert!(
        e.mentions("line 12: rules.everyone.roles: unknown role `phantom`"),
        "{text}"
    );
}

#[test]
fn cel_parse_errors_undeclared_attributes_and_type_errors_are_caught() {
    let e = errors(
        r#"
[attributes]
department = "string"
level = "int"
given_name = "string"

[targets.ldap]
login = "given_name.lowerAscii() +"
[targets.ldap.attributes]
title = "jobtitle"

[roles.r]
grants.ldap = ["g"]

[rules.bad_type]
when = 'level == "senior"'
roles = ["r"]

[rules.bad_type_cel]
when = 'level + "x" == "y"'
roles = ["r"]

[rules.not_bool]
when = 'department + "x"'
roles = ["r"]

[rules.fine]
when = 'department == "Sales" || level > 3'
roles = ["r"]
"#,
    );
    let text = e.to_string();
    assert_eq!(e.errors.len(), 5, "{text}");
    assert!(
        e.mentions("line 8: targets.ldap.login: cannot parse"),
        "{text}"
    );
    assert!(e.mentions("line 10: targets.ldap.attributes.title: `jobtitle` uses `jobtitle`, which is not a declared attribute"), "{text}");
    assert!(
        e.mentions(
            "line 16: rules.bad_type.when: `level == \"senior\"`: type error: `level` is Int"
        ),
        "{text}"
    );
    assert!(
        e.mentions("rules.bad_type_cel.when: `level + \"x\" == \"y\"`: type error"),
        "{text}"
    );
    assert!(e.mentions("rules.not_bool.when: `department + \"x\"`: a condition must give a bool, this gives string"), "{text}");
}

#[test]
fn json_policies_report_lines_too() {
    let json = r#"{
  "targets": {"ldap": {}},
  "roles": {
    "admin": {
      "inherits": ["ghost"]
    }
  }
}"#;
    let e = Policy::from_json(json)
        .and_then(|p| p.compile())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("line 5: roles.admin.inherits: inherits unknown role `ghost`"),
        "{e}"
    );
}

#[test]
fn syntax_errors_and_unknown_fields_name_the_line() {
    let e = errors("[targets.ldap]\n\n[roles.r]\ninherit = [\"x\"]\n");
    assert!(e.mentions("line 4"), "{e}");
    assert!(e.mentions("inherit"), "{e}");
    let e = Policy::from_json("{\n\"roles\": {\n\"r\": [}\n}")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("line 3"), "{e}");
}

#[test]
fn lease_problems_name_the_lease_and_the_maximum() {
    let e = errors(
        r#"
[targets.aws]
[roles.prod]
max_lease_days = 7
grants.aws = ["ProdAdmin"]

[[leases]]
id = "l-too-long"
identity = "e1"
role = "prod"
valid_from = 2026-01-01T00:00:00Z
valid_until = 2026-01-09T00:00:00Z

[[leases]]
id = "l-backwards"
identity = "e1"
role = "prod"
valid_from = 2026-01-09T00:00:00Z
valid_until = 2026-01-01T00:00:00Z
"#,
    );
    assert!(
        e.mentions(
            "lease `l-too-long`: lasts 8.0 days, longer than the 7-day maximum of role `prod`"
        ),
        "{e}"
    );
    assert!(e.mentions("lease `l-backwards`: ends"), "{e}");
}

#[test]
fn policy_files_load_by_extension_and_name_the_file() {
    let dir = std::env::temp_dir().join(format!("prov-resolver-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok();
    let path = dir.join("policy.toml");
    std::fs::write(&path, "[targets.ldap]\n[roles.a]\ninherits = [\"zzz\"]\n").ok();
    let e = Policy::load(&path)
        .and_then(|p| p.compile())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains(&format!("{}:3: roles.a.inherits", path.display())),
        "{e}"
    );
    let missing = Policy::load(dir.join("nope.toml"))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        missing.contains("nope.toml") && missing.contains("cannot read"),
        "{missing}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 13 item 6: a `grace_days` near u32::MAX overflowed the date
/// arithmetic; an approver role must exist.
#[test]
fn a_grace_period_past_the_maximum_and_an_unknown_approver_role_are_named() {
    let e = errors(
        r#"
[targets.ldap]
leaver = { action = "delete", grace_days = 4294967295 }

[roles.oncall]
approver_roles = ["sre-leads"]
"#,
    );
    let text = e.to_string();
    assert_eq!(e.errors.len(), 2, "{text}");
    assert!(
        e.mentions(
            "targets.ldap.leaver.grace_days: 4294967295 days is longer than the 3660-day maximum"
        ),
        "{text}"
    );
    assert!(
        e.mentions("roles.oncall.approver_roles: names unknown role `sre-leads`"),
        "{text}"
    );
}
