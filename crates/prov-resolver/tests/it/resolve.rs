use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use prov_core::{EntitlementId, Identity, LifecycleState, TargetId, Value};
use prov_resolver::{Assignment, CompiledPolicy, Extra, Lease, LeaverAction, Policy, Source};

pub(crate) const POLICY: &str = r#"
[attributes]
given_name = "string"
family_name = "string"
department = "string"
location = "string"
email = "string"
level = "int"
projects = "list"

[targets.ldap]
account = "always"
login = 'given_name.lowerAscii() + "." + family_name.lowerAscii()'
leaver = { action = "delete", grace_days = 30 }
[targets.ldap.attributes]
mail = "email"
cn = 'given_name + " " + family_name'
o = '"Example Corp"'

[targets.github]
leaver = { action = "disable" }

[targets.aws]
account = 'level >= 3'

[roles.employee]
grants.ldap = ["cn=staff"]

[roles.engineering]
inherits = ["employee"]
grants.ldap = ["cn=eng"]
grants.github = ["org:eng"]

[roles.admin]
inherits = ["engineering"]
grants.aws = ["AdministratorAccess"]
max_lease_days = 30

[roles.payments-initiate]
grants.aws = ["PayInit"]
[roles.payments-approve]
grants.aws = ["PayApprove"]

[rules.all]
when = 'state == "active" || state == "pre_hire"'
roles = ["employee"]

[rules.eng]
when = 'department == "Engineering"'
roles = ["engineering"]

[rules.finance-berlin]
when = 'department == "Finance" && location in ["Berlin", "Paris"]'
roles = ["payments-initiate"]

[rules.project-x]
when = '"apollo" in projects'
roles = ["payments-approve"]

[[assignments]]
id = "a1"
identity = "e3"
role = "payments-approve"

[sod.payments]
description = "Initiating and approving payments must be different people"
roles = ["payments-initiate", "payments-approve"]
"#;

pub(crate) fn policy() -> CompiledPolicy {
    match Policy::from_toml(POLICY).and_then(|p| p.compile()) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

pub(crate) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn person(id: &str, given: &str, family: &str, dept: &str) -> Identity {
    Identity::new(id)
        .with("given_name", given)
        .with("family_name", family)
        .with("department", dept)
        .with("location", "Berlin")
        .with("email", format!("{}@example.com", given.to_lowercase()))
        .with("level", 2)
}

fn t(s: &str) -> TargetId {
    TargetId::new(s)
}
fn e(s: &str) -> EntitlementId {
    EntitlementId::new(s)
}

#[test]
fn birthright_inheritance_and_templates() {
    let p = policy();
    let ada = person("e1", "Ada", "Lovelace", "Engineering");
    let d = p.desired(&ada, now());
    let ldap = &d.targets[&t("ldap")];
    let acct = ldap.account.as_ref().map(|a| (a.login.as_str(), a.enabled));
    assert_eq!(acct, Some(("ada.lovelace", true)));
    let attrs = &ldap
        .account
        .as_ref()
        .map(|a| a.attributes.clone())
        .unwrap_or_default();
    assert_eq!(attrs.get("mail"), Some(&Value::from("ada@example.com")));
    assert_eq!(attrs.get("cn"), Some(&Value::from("Ada Lovelace")));
    assert_eq!(attrs.get("o"), Some(&Value::from("Example Corp")));
    let ents: Vec<&str> = ldap.entitlements.keys().map(|k| k.as_str()).collect();
    assert_eq!(ents, ["cn=eng", "cn=staff"]);
    // cn=staff comes from two rules: `all` directly and `eng` through inheritance.
    assert_eq!(
        ldap.entitlements[&e("cn=staff")],
        vec![
            Source::Rule { id: "all".into() },
            Source::Rule { id: "eng".into() }
        ]
    );
    assert!(d.targets.contains_key(&t("github")));
    // level 2: no aws account, and no aws entitlements.
    assert!(!d.targets.contains_key(&t("aws")));
    assert!(d.problems.is_empty(), "{:?}", d.problems);
}

#[test]
fn explain_gives_every_chain() {
    let p = policy();
    let ada = person("e1", "Ada", "Lovelace", "Engineering");
    let chains: Vec<String> = p
        .explain(&ada, &t("ldap"), &e("cn=staff"), now())
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        chains,
        [
            "rule all -> role employee -> ldap:cn=staff",
            "rule eng -> role engineering -> role employee -> ldap:cn=staff"
        ]
    );
    assert!(
        p.explain(&ada, &t("aws"), &e("AdministratorAccess"), now())
            .is_empty()
    );
    assert!(p.explain(&ada, &t("nope"), &e("x"), now()).is_empty());
}

#[test]
fn leavers_lose_all_access_and_get_the_leaver_plan() {
    let p = policy();
    let mut bob = person("e2", "Bob", "Smith", "Engineering");
    bob.state = LifecycleState::Terminated;
    bob.end_date = NaiveDate::from_ymd_opt(2026, 11, 20);
    let d = p.desired(&bob, now());
    assert!(d.roles.is_empty());
    let ldap = &d.targets[&t("ldap")];
    assert!(ldap.entitlements.is_empty());
    let acct = ldap.account.as_ref();
    assert_eq!(acct.map(|a| a.enabled), Some(false));
    let plan = acct.and_then(|a| a.leaver);
    assert_eq!(plan.map(|p| p.action), Some(LeaverAction::Delete));
    // The grace period counts from the moment of leaving: the end of the
    // last working day (2026-11-20), not its start.
    assert_eq!(
        plan.and_then(|p| p.delete_after),
        Utc.with_ymd_and_hms(2026, 12, 21, 0, 0, 0).single()
    );
    let gh = &d.targets[&t("github")];
    assert_eq!(gh.account.as_ref().map(|a| a.enabled), Some(false));
}

#[test]
fn end_and_start_dates_set_the_effective_state() {
    let p = policy();
    let contractor = person("e9", "Cy", "Contract", "Engineering").with_dates(
        NaiveDate::from_ymd_opt(2025, 1, 1),
        NaiveDate::from_ymd_opt(2026, 11, 21),
    );
    assert_eq!(
        p.resolve(&contractor, now()).state,
        LifecycleState::Terminated
    );
    let early = Utc
        .with_ymd_and_hms(2026, 11, 21, 23, 0, 0)
        .single()
        .unwrap_or_default();
    assert_eq!(p.resolve(&contractor, early).state, LifecycleState::Active);
    let hire = person("e10", "New", "Hire", "Engineering")
        .with_dates(NaiveDate::from_ymd_opt(2026, 12, 1), None);
    let d = p.desired(&hire, now());
    assert_eq!(d.state, LifecycleState::PreHire);
    let ldap = &d.targets[&t("ldap")];
    assert_eq!(
        ldap.account.as_ref().map(|a| a.enabled),
        Some(false),
        "pre-hire accounts wait disabled"
    );
    assert!(
        ldap.entitlements.contains_key(&e("cn=eng")),
        "and are ready on day one"
    );
}

#[test]
fn sod_violations_are_reported_and_access_is_kept() {
    let p = policy();
    // e3: finance in Berlin (initiate, by rule) and an assignment (approve).
    let carol = person("e3", "Carol", "Jones", "Finance");
    let d = p.desired(&carol, now());
    assert_eq!(d.violations.len(), 1);
    assert_eq!(d.violations[0].rule, "payments");
    assert_eq!(
        d.violations[0].roles,
        ["payments-approve", "payments-initiate"]
    );
    let aws = &d.targets[&t("aws")];
    assert!(aws.entitlements.contains_key(&e("PayInit")));
    assert!(aws.entitlements.contains_key(&e("PayApprove")));
    assert_eq!(
        aws.entitlements[&e("PayApprove")],
        vec![Source::Assignment { id: "a1".into() }]
    );
}

#[test]
fn list_membership_and_in_conditions() {
    let p = policy();
    let dan = person("e4", "Dan", "Brown", "Sales").with("projects", vec!["apollo", "gemini"]);
    let d = p.desired(&dan, now());
    assert!(
        d.targets[&t("aws")]
            .entitlements
            .contains_key(&e("PayApprove"))
    );
    let paris = person("e5", "Eve", "Black", "Finance").with("location", "Paris");
    assert!(
        p.desired(&paris, now()).targets[&t("aws")]
            .entitlements
            .contains_key(&e("PayInit"))
    );
    let rome = person("e6", "Fay", "White", "Finance").with("location", "Rome");
    assert!(!p.desired(&rome, now()).targets.contains_key(&t("aws")));
}

#[test]
fn overlapping_leases_are_reference_counted() {
    let p = policy();
    let at = |d: u32| {
        Utc.with_ymd_and_hms(2026, 11, d, 0, 0, 0)
            .single()
            .unwrap_or_default()
    };
    let leases = [
        Lease::new("l1", "e1", "admin", at(1), at(10)),
        Lease::new("l2", "e1", "admin", at(5), at(20)),
    ];
    let ada = person("e1", "Ada", "Lovelace", "Sales");
    let has_admin = |when| {
        let d = p.describe(&p.resolve_with(&ada, when, Extra::new(&[], &leases)));
        d.targets
            .get(&t("aws"))
            .map(|a| a.entitlements.get(&e("AdministratorAccess")).cloned())
    };
    assert_eq!(
        has_admin(at(1)).flatten().map(|s| s.len()),
        Some(1),
        "start is inclusive"
    );
    assert_eq!(
        has_admin(at(6)).flatten().map(|s| s.len()),
        Some(2),
        "both leases count"
    );
    assert_eq!(
        has_admin(at(10)).flatten().map(|s| s.len()),
        Some(1),
        "l1 ended, l2 still gives it"
    );
    assert_eq!(
        has_admin(at(20)),
        None,
        "end is exclusive: nothing on aws at all"
    );
}

#[test]
fn extra_assignments_resolve_like_policy_ones_and_bad_ones_are_problems() {
    let p = policy();
    let ada = person("e1", "Ada", "Lovelace", "Sales");
    let extra = [
        Assignment::new("x1", "e1", "admin"),
        Assignment::new("x2", "e1", "nope"),
        Assignment::new("x3", "e2", "admin"),
    ];
    let d = p.describe(&p.resolve_with(&ada, now(), Extra::new(&extra, &[])));
    assert!(
        d.targets[&t("aws")]
            .entitlements
            .contains_key(&e("AdministratorAccess"))
    );
    assert_eq!(d.problems.len(), 1);
    assert_eq!(d.problems[0].path, "assignments.x2");
}

#[test]
fn a_missing_value_holds_the_login_and_never_drops_the_account() {
    let p = policy();
    // No given_name: the login template cannot be computed. The account is
    // not left out (that would read as "no longer entitled" and disable
    // it): its login is held, naming the value, and it is a gap in the
    // data, not a policy problem.
    let mut nameless = person("e7", "X", "Y", "Sales");
    nameless.attributes.remove("given_name");
    let d = p.desired(&nameless, now());
    let ldap = &d.targets[&t("ldap")];
    let account = ldap.account.as_ref().expect("the account stays wanted");
    assert_eq!(account.login, "");
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    assert_eq!(ldap.held.len(), 2, "{:?}", ldap.held);
    assert!(
        ldap.held[0].starts_with("the login `")
            && ldap.held[0].contains("reads given_name, which e7 lacks"),
        "{}",
        ldap.held[0]
    );
    // So is the attribute that reads it: left as it is on the target.
    assert!(
        ldap.held[1].starts_with("cn is left as it is: `given_name + "),
        "{}",
        ldap.held[1]
    );
    // The identity's access is resolved as usual.
    assert!(
        ldap.entitlements.contains_key(&e("cn=staff")),
        "{:?}",
        ldap.entitlements
    );
}

#[test]
fn batch_resolve_matches_one_by_one() {
    let p = policy();
    let people: Vec<Identity> = (0..2000)
        .map(|i| {
            let dept = ["Engineering", "Finance", "Sales"][i % 3];
            person(&format!("e{i}"), "A", "B", dept)
                .with("level", i64::try_from(i % 5).unwrap_or(0))
        })
        .collect();
    let many = p.resolve_many(&people, now());
    assert_eq!(many.len(), people.len());
    for (who, got) in people.iter().zip(&many) {
        assert_eq!(got, &p.resolve(who, now()));
    }
    assert!(many.iter().any(|r| r.entitlement_count() > 3));
}
