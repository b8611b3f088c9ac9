//! Property tests: order independence, determinism, monotone inheritance,
//! lease boundaries, serialisation, and the native fast path against CEL.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use prov_core::{Identity, LifecycleState};
use prov_resolver::{Assignment, CompiledPolicy, Extra, Lease, Policy, Role, Rule, TargetPolicy};

const DEPTS: &[&str] = &["eng", "ops", "sales", "hr"];
const TARGETS: &[&str] = &["ldap", "scim"];

/// A role: parents among lower-numbered roles, and grants as (target, entitlement).
type RoleSpec = (Vec<usize>, Vec<(usize, u8)>);

#[derive(Debug, Clone)]
struct Spec {
    /// For each role: (parents among lower-numbered roles, grants as (target, entitlement)).
    roles: Vec<RoleSpec>,
    /// Rules: (department, level threshold or none, roles).
    rules: Vec<(usize, Option<i64>, Vec<usize>)>,
    assignments: Vec<(usize, usize)>,
    leases: Vec<(usize, usize, i64, i64)>,
    people: Vec<(usize, i64, bool)>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (2usize..12).prop_flat_map(|n| {
        let role = (0..n).map(|i| {
            (
                proptest::collection::vec(0..i.max(1), 0..3)
                    .prop_map(move |ps| if i == 0 { vec![] } else { ps }),
                proptest::collection::vec((0..TARGETS.len(), 0u8..6), 0..4),
            )
        });
        (
            role.collect::<Vec<_>>(),
            proptest::collection::vec(
                (
                    0..DEPTS.len(),
                    proptest::option::of(0i64..5),
                    proptest::collection::vec(0..n, 1..3),
                ),
                0..6,
            ),
            proptest::collection::vec((0usize..8, 0..n), 0..4),
            proptest::collection::vec((0usize..8, 0..n, 0i64..20, 1i64..20), 0..4),
            proptest::collection::vec((0..DEPTS.len(), 0i64..5, any::<bool>()), 1..8),
        )
            .prop_map(|(roles, rules, assignments, leases, people)| Spec {
                roles,
                rules,
                assignments,
                leases,
                people,
            })
    })
}

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Builds the policy, with every list in the order `perm` picks.
fn build(s: &Spec, reverse: bool) -> Policy {
    let mut p = Policy::new();
    for t in TARGETS {
        p = p.target(*t, TargetPolicy::default());
    }
    let order = |n: usize| -> Vec<usize> {
        if reverse {
            (0..n).rev().collect()
        } else {
            (0..n).collect()
        }
    };
    for i in order(s.roles.len()) {
        let (parents, grants) = &s.roles[i];
        let mut role = Role::new();
        let mut ps = parents.clone();
        let mut gs = grants.clone();
        if reverse {
            ps.reverse();
            gs.reverse();
        }
        for p in ps {
            role = role.inherit(format!("r{p}"));
        }
        for (t, e) in gs {
            role = role.grant(TARGETS[t], format!("g{e}"));
        }
        p = p.role(format!("r{i}"), role);
    }
    for i in order(s.rules.len()) {
        let (dept, level, roles) = &s.rules[i];
        let when = match level {
            Some(l) => format!("department == \"{}\" && level >= {l}", DEPTS[*dept]),
            None => format!("department == \"{}\"", DEPTS[*dept]),
        };
        let mut names: Vec<String> = roles.iter().map(|r| format!("r{r}")).collect();
        if reverse {
            names.reverse();
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        p = p.rule(format!("rule{i}"), Rule::new(when, &refs));
    }
    for i in order(s.assignments.len()) {
        let (who, role) = s.assignments[i];
        p = p.assign(Assignment::new(
            format!("a{i}"),
            format!("p{who}"),
            format!("r{role}"),
        ));
    }
    for i in order(s.leases.len()) {
        let (who, role, start, len) = s.leases[i];
        let from = base() + Duration::days(start);
        p = p.lease(Lease::new(
            format!("l{i}"),
            format!("p{who}"),
            format!("r{role}"),
            from,
            from + Duration::days(len),
        ));
    }
    p
}

fn people(s: &Spec) -> Vec<Identity> {
    s.people
        .iter()
        .enumerate()
        .map(|(i, (dept, level, active))| {
            Identity::new(format!("p{i}"))
                .with("department", DEPTS[*dept])
                .with("level", *level)
                .with_state(if *active {
                    LifecycleState::Active
                } else {
                    LifecycleState::Suspended
                })
        })
        .collect()
}

fn compile(p: &Policy) -> Result<CompiledPolicy, TestCaseError> {
    p.compile().map_err(|e| TestCaseError::fail(e.to_string()))
}

fn json_of(p: &CompiledPolicy, who: &[Identity], now: DateTime<Utc>) -> String {
    let all: Vec<_> = who.iter().map(|i| p.desired(i, now)).collect();
    serde_json::to_string(&all).unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn result_does_not_depend_on_order(s in spec(), day in 0i64..25) {
        let now = base() + Duration::days(day);
        let a = compile(&build(&s, false))?;
        let b = compile(&build(&s, true))?;
        let who = people(&s);
        let mut rev = who.clone();
        rev.reverse();
        let forward = json_of(&a, &who, now);
        let mut backward: Vec<_> = rev.iter().map(|i| b.desired(i, now)).collect();
        backward.reverse();
        prop_assert_eq!(forward, serde_json::to_string(&backward).unwrap_or_default());
        // The batch form agrees, in input order.
        let batch: Vec<_> = b.resolve_many(&rev, now).iter().rev().map(|r| b.describe(r)).collect();
        prop_assert_eq!(json_of(&a, &who, now), serde_json::to_string(&batch).unwrap_or_default());
    }

    #[test]
    fn resolving_twice_gives_the_same_bytes(s in spec(), day in 0i64..25) {
        let now = base() + Duration::days(day);
        let p = compile(&build(&s, false))?;
        let who = people(&s);
        prop_assert_eq!(json_of(&p, &who, now), json_of(&p, &who, now));
        let again = compile(&build(&s, false))?;
        prop_assert_eq!(json_of(&p, &who, now), json_of(&again, &who, now));
    }

    #[test]
    fn adding_an_inherited_role_never_removes_an_entitlement(s in spec(), child in 0usize..12, parent in 0usize..12) {
        let n = s.roles.len();
        let (child, parent) = (child % n, parent % n);
        prop_assume!(parent < child);
        let p = compile(&build(&s, false))?;
        let mut more = s.clone();
        more.roles[child].0.push(parent);
        let q = compile(&build(&more, false))?;
        for who in people(&s) {
            let before = p.desired(&who, base());
            let after = q.desired(&who, base());
            for (t, dt) in &before.targets {
                for e in dt.entitlements.keys() {
                    prop_assert!(after.targets.get(t).is_some_and(|a| a.entitlements.contains_key(e)),
                        "{} lost {}:{}", who.id, t, e);
                }
            }
        }
    }

    #[test]
    fn lease_boundaries_hold(start in 0i64..1000, len in 1i64..1000) {
        let from = base() + Duration::minutes(start);
        let until = from + Duration::minutes(len);
        let p = compile(&Policy::new()
            .target("ldap", TargetPolicy::default())
            .role("r", Role::new().grant("ldap", "g")))?;
        let lease = [Lease::new("l", "p", "r", from, until)];
        let who = Identity::new("p");
        let has = |at: DateTime<Utc>| p.resolve_with(&who, at, Extra::new(&[], &lease)).entitlement_count() == 1;
        prop_assert!(!has(from - Duration::seconds(1)));
        prop_assert!(has(from), "start is inclusive");
        prop_assert!(has(until - Duration::seconds(1)));
        prop_assert!(!has(until), "end is exclusive");
    }

    #[test]
    fn policies_and_desired_state_round_trip(s in spec()) {
        let policy = build(&s, false);
        let json = serde_json::to_string(&policy).unwrap_or_default();
        let back: Policy = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &policy);
        let toml_text = toml::to_string(&policy).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let from_toml = Policy::from_toml(&toml_text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(serde_json::to_string(&from_toml).unwrap_or_default(), json);
        let p = compile(&policy)?;
        for who in people(&s) {
            let d = p.desired(&who, base());
            let text = serde_json::to_string(&d).unwrap_or_default();
            let back: prov_resolver::DesiredState = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, d);
        }
    }

    /// The native evaluator and CEL agree: `(C) == true` forces CEL for the same C.
    #[test]
    fn fast_path_agrees_with_cel(
        dept in 0..DEPTS.len(), level in 0i64..5, has_dept in any::<bool>(), cond in cond(),
    ) {
        let fast = Policy::new().target("t", TargetPolicy::default()).role("r", Role::new().grant("t", "g"))
            .rule("x", Rule::new(cond.clone(), &["r"]));
        let slow = Policy::new().target("t", TargetPolicy::default()).role("r", Role::new().grant("t", "g"))
            .rule("x", Rule::new(format!("({cond}) == true"), &["r"]));
        let (fast, slow) = (compile(&fast)?, compile(&slow)?);
        let mut who = Identity::new("p").with("level", level).with("tags", vec!["a", DEPTS[dept]]);
        if has_dept {
            who = who.with("department", DEPTS[dept]);
        }
        let f = fast.resolve(&who, base());
        let s = slow.resolve(&who, base());
        prop_assert!(s.problems().is_empty(), "{:?}", s.problems());
        prop_assert_eq!(f.entitlement_count(), s.entitlement_count(), "condition {}", cond);
    }
}

fn cond() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        (0..DEPTS.len()).prop_map(|d| format!("department == \"{}\"", DEPTS[d])),
        (0..DEPTS.len()).prop_map(|d| format!("department != \"{}\"", DEPTS[d])),
        (0..DEPTS.len()).prop_map(|d| format!("department in [\"{}\", \"x\"]", DEPTS[d])),
        (0i64..5).prop_map(|l| format!("level == {l}")),
        (0..DEPTS.len()).prop_map(|d| format!("\"{}\" in tags", DEPTS[d])),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) && ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) || ({b})")),
            inner.prop_map(|a| format!("!({a})")),
        ]
    })
}
