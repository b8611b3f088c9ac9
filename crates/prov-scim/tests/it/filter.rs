//! Filters against an independent parser: the `scim_v2` crate's (an LALR
//! grammar of RFC 7644) as the oracle, on generated filters and on token
//! soup; random input never panics.

use proptest::prelude::*;
use prov_scim::filter::{AttrPath, CompValue, CompareOp, Filter};
use scim_v2::filter as oracle;

/// The oracle's tree in ours, `and`/`or` chains flattened (it flattens
/// across parentheses, we keep groups as written).
fn from_oracle(f: &oracle::Filter) -> Filter {
    match f {
        oracle::Filter::Attr(e) => attr(e),
        oracle::Filter::ValuePath(v) => Filter::ValuePath(path(&v.attr), Box::new(val(&v.filter))),
        oracle::Filter::Not(f) => Filter::Not(Box::new(from_oracle(f))),
        oracle::Filter::And(fs) => Filter::And(fs.as_slice().iter().map(from_oracle).collect()),
        oracle::Filter::Or(fs) => Filter::Or(fs.as_slice().iter().map(from_oracle).collect()),
    }
}

fn val(f: &oracle::ValFilter) -> Filter {
    match f {
        oracle::ValFilter::Attr(e) => attr(e),
        oracle::ValFilter::Not(f) => Filter::Not(Box::new(val(f))),
        oracle::ValFilter::And(fs) => Filter::And(fs.as_slice().iter().map(val).collect()),
        oracle::ValFilter::Or(fs) => Filter::Or(fs.as_slice().iter().map(val).collect()),
    }
}

fn attr(e: &oracle::AttrExp) -> Filter {
    match e {
        oracle::AttrExp::Present(p) => Filter::Present(path(p)),
        oracle::AttrExp::Comparison(p, op, v) => {
            let op = match op {
                oracle::CompareOp::Eq => CompareOp::Eq,
                oracle::CompareOp::Ne => CompareOp::Ne,
                oracle::CompareOp::Co => CompareOp::Co,
                oracle::CompareOp::Sw => CompareOp::Sw,
                oracle::CompareOp::Ew => CompareOp::Ew,
                oracle::CompareOp::Gt => CompareOp::Gt,
                oracle::CompareOp::Ge => CompareOp::Ge,
                oracle::CompareOp::Lt => CompareOp::Lt,
                oracle::CompareOp::Le => CompareOp::Le,
            };
            let v = match v {
                oracle::CompValue::False => CompValue::Bool(false),
                oracle::CompValue::True => CompValue::Bool(true),
                oracle::CompValue::Null => CompValue::Null,
                oracle::CompValue::Number(n) => CompValue::Number(n.clone()),
                oracle::CompValue::Str(s) => CompValue::String(s.clone()),
            };
            Filter::Compare(path(p), op, v)
        }
    }
}

fn path(p: &oracle::AttrPath) -> AttrPath {
    let mut out = match &p.sub_attr {
        Some(sub) => AttrPath::sub(p.name.clone(), sub.clone()),
        None => AttrPath::new(p.name.clone()),
    };
    if let Some(urn) = &p.uri {
        out = out.with_urn(urn.clone());
    }
    out
}

/// Chains flattened: `(a and b) and c` is `a and b and c`.
fn flat(f: Filter) -> Filter {
    match f {
        Filter::And(fs) => {
            let mut out = Vec::new();
            for f in fs.into_iter().map(flat) {
                match f {
                    Filter::And(inner) => out.extend(inner),
                    f => out.push(f),
                }
            }
            Filter::And(out)
        }
        Filter::Or(fs) => {
            let mut out = Vec::new();
            for f in fs.into_iter().map(flat) {
                match f {
                    Filter::Or(inner) => out.extend(inner),
                    f => out.push(f),
                }
            }
            Filter::Or(out)
        }
        Filter::Not(f) => Filter::Not(Box::new(flat(*f))),
        Filter::ValuePath(p, f) => Filter::ValuePath(p, Box::new(flat(*f))),
        other => other,
    }
}

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const CORE: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

fn a_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("userName".to_owned()),
        Just("USERNAME".to_owned()),
        Just("emails".to_owned()),
        Just("name".to_owned()),
        Just("x-level_2".to_owned()),
        Just("andy".to_owned()),
        Just("order".to_owned()),
        "[a-zA-Z][a-zA-Z0-9_-]{0,8}",
    ]
    // Keywords are not names.
    .prop_filter("a keyword", |n| {
        ![
            "and", "or", "not", "eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr", "true",
            "false", "null",
        ]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(n))
    })
}

fn a_path() -> impl Strategy<Value = AttrPath> {
    (
        prop_oneof![3 => Just(None), 1 => Just(Some(CORE)), 1 => Just(Some(ENTERPRISE))],
        a_name(),
        proptest::option::of(a_name()),
    )
        .prop_map(|(urn, name, sub)| {
            let mut p = match sub {
                Some(s) => AttrPath::sub(name, s),
                None => AttrPath::new(name),
            };
            if let Some(u) = urn {
                p = p.with_urn(u);
            }
            p
        })
}

fn a_value() -> impl Strategy<Value = CompValue> {
    prop_oneof![
        Just(CompValue::Null),
        any::<bool>().prop_map(CompValue::Bool),
        any::<i64>().prop_map(|n| CompValue::Number(n.into())),
        (-1.0e6f64..1.0e6).prop_map(|x| CompValue::Number(
            serde_json::Number::from_f64(x).unwrap_or_else(|| 0.into())
        )),
        any::<String>().prop_map(CompValue::String),
        "[a-z@. \"\\\\]{0,12}".prop_map(CompValue::String),
    ]
}

fn an_op() -> impl Strategy<Value = CompareOp> {
    prop_oneof![
        Just(CompareOp::Eq),
        Just(CompareOp::Ne),
        Just(CompareOp::Co),
        Just(CompareOp::Sw),
        Just(CompareOp::Ew),
        Just(CompareOp::Gt),
        Just(CompareOp::Ge),
        Just(CompareOp::Lt),
        Just(CompareOp::Le),
    ]
}

fn a_leaf() -> impl Strategy<Value = Filter> {
    prop_oneof![
        a_path().prop_map(Filter::Present),
        (a_path(), an_op(), a_value()).prop_map(|(p, o, v)| Filter::Compare(p, o, v)),
    ]
}

/// Filters without value paths (what a value path may hold).
fn an_inner() -> impl Strategy<Value = Filter> {
    a_leaf().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|f| Filter::Not(Box::new(f))),
            proptest::collection::vec(inner.clone(), 2..4).prop_map(Filter::And),
            proptest::collection::vec(inner, 2..4).prop_map(Filter::Or),
        ]
    })
}

fn a_filter() -> impl Strategy<Value = Filter> {
    let leaf = prop_oneof![
        3 => a_leaf(),
        1 => (a_name(), an_inner())
            .prop_map(|(n, f)| Filter::ValuePath(AttrPath::new(n), Box::new(f))),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|f| Filter::Not(Box::new(f))),
            proptest::collection::vec(inner.clone(), 2..4).prop_map(Filter::And),
            proptest::collection::vec(inner, 2..4).prop_map(Filter::Or),
        ]
    })
}

/// Filter vocabulary glued at random: mostly wrong, sometimes right.
fn token_soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("userName"),
        Just("emails"),
        Just("name.familyName"),
        Just("urn:ietf:params:scim:schemas:core:2.0:User:userName"),
        Just("and"),
        Just("or"),
        Just("not"),
        Just("eq"),
        Just("Eq"),
        Just("co"),
        Just("gt"),
        Just("pr"),
        Just("\"x\""),
        Just("\"a\\\"b\""),
        Just("12"),
        Just("-1.5e3"),
        Just("true"),
        Just("null"),
        Just("("),
        Just(")"),
        Just("["),
        Just("]"),
        Just("type"),
    ];
    proptest::collection::vec((token, prop_oneof![3 => Just(" "), 1 => Just("")]), 1..12).prop_map(
        |ts| {
            ts.into_iter()
                .map(|(t, s)| format!("{t}{s}"))
                .collect::<String>()
        },
    )
}

/// Spaces around brackets, parentheses and strings.
fn space_out(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '(' | ')' | '[' | ']' => {
                out.push(' ');
                out.push(c);
                out.push(' ');
            }
            '"' => {
                out.push(' ');
                out.push('"');
                while let Some(c) = chars.next() {
                    out.push(c);
                    if c == '\\' {
                        out.extend(chars.next());
                    } else if c == '"' {
                        break;
                    }
                }
                out.push(' ');
            }
            c => out.push(c),
        }
    }
    out.trim().to_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// What we print, we and the oracle both read back as the same tree.
    #[test]
    fn printed_filters_read_back_the_same_here_and_in_the_oracle(f in a_filter()) {
        let text = f.to_string();
        let ours: Filter = text.parse().map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(&ours, &f, "{}", text);
        let theirs: oracle::Filter = text
            .parse()
            .map_err(|e| TestCaseError::fail(format!("the oracle refused {text}: {e:?}")))?;
        prop_assert_eq!(flat(from_oracle(&theirs)), flat(f), "{}", text);
    }

    /// On token soup: what the oracle accepts we accept as the same tree,
    /// and what we accept the oracle accepts (known differences aside).
    #[test]
    fn token_soup_is_judged_as_the_oracle_judges_it(text in token_soup()) {
        let ours = text.parse::<Filter>();
        let theirs = text.parse::<oracle::Filter>();
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => prop_assert_eq!(flat(a.clone()), flat(from_oracle(b)), "{}", text),
            (Err(_), Err(_)) => {}
            (Err(e), Ok(_)) => prop_assert!(false, "we refused what the oracle took: {text}: {e}"),
            (Ok(a), Err(_)) => {
                // Where the RFC's grammar lets us be more lenient than the
                // oracle, which wants spaces around every operator and
                // keyword: with spaces put in, it must agree.
                let spaced = space_out(&text);
                let b = spaced.parse::<oracle::Filter>().map_err(|e| {
                    TestCaseError::fail(format!("we took what the oracle refused: {text} ({spaced}: {e:?})"))
                })?;
                prop_assert_eq!(flat(a.clone()), flat(from_oracle(&b)), "{}", text);
            }
        }
    }

    /// Any input gives a tree or an error, never a panic, and an error's
    /// position is inside the input.
    #[test]
    fn random_input_never_panics(text in any::<String>()) {
        if let Err(e) = text.parse::<Filter>() {
            prop_assert!(e.position <= text.len(), "{e}");
        }
    }

    /// Evaluation never panics on any parsed filter over a resource.
    #[test]
    fn evaluation_never_panics(f in a_filter()) {
        let user = serde_json::json!({
            "schemas": [CORE, ENTERPRISE],
            "userName": "bjensen", "name": {"familyName": "Jensen"},
            "emails": [{"value": "b@example.org", "type": "work"}, "odd"],
            "x-level_2": 3, "active": true, "order": null,
            ENTERPRISE: {"userName": "other"},
        });
        let _ = f.matches(&user);
    }
}
