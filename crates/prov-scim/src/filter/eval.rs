//! Evaluating a filter against a resource in its JSON form, as RFC 7644
//! section 3.4.2.2 says: attribute names ignore case; a multi-valued
//! attribute matches when any value does; a complex value without a
//! sub-attribute compares its `value`; strings compare ignoring case
//! unless the attribute is case-exact; dates (RFC 3339 strings on both
//! sides) compare as instants; `ne` matches an absent attribute; `pr`
//! means a value that is not null, not empty.

use serde_json::Value;

use super::{AttrPath, CompValue, CompareOp, Filter};

/// Which attributes compare case-exact when no schema says: `id`,
/// `externalId`, `meta.version`, `meta.location` and any `$ref` (RFC 7643
/// gives them `caseExact: true`). A server with its own schemas passes
/// its own rule to [`Filter::matches_with`].
pub fn default_case_exact(path: &AttrPath) -> bool {
    let top = |n: &str| path.name.eq_ignore_ascii_case(n);
    match &path.sub {
        None => top("id") || top("externalId") || top("$ref"),
        Some(sub) => {
            sub.eq_ignore_ascii_case("$ref")
                || (top("meta")
                    && (sub.eq_ignore_ascii_case("version")
                        || sub.eq_ignore_ascii_case("location")))
        }
    }
}

impl Filter {
    /// Whether `resource` (a SCIM resource as JSON) matches, with
    /// [`default_case_exact`] saying which strings compare case-exact.
    pub fn matches(&self, resource: &Value) -> bool {
        self.matches_with(resource, &default_case_exact)
    }

    /// Whether `resource` matches, `case_exact` saying for an attribute
    /// path whether its strings compare case-exact (inside a value path
    /// it is asked about `attr.sub`).
    pub fn matches_with(&self, resource: &Value, case_exact: &dyn Fn(&AttrPath) -> bool) -> bool {
        eval(self, resource, None, case_exact)
    }
}

/// `within`: the multi-valued attribute a value path's filter runs inside.
fn eval(
    f: &Filter,
    at: &Value,
    within: Option<&AttrPath>,
    case_exact: &dyn Fn(&AttrPath) -> bool,
) -> bool {
    match f {
        Filter::Present(path) => attribute(at, path).is_some_and(|v| match path.sub.as_deref() {
            None => present(v),
            Some(sub) => elements(v).any(|e| field(e, sub).is_some_and(present)),
        }),
        Filter::Compare(path, op, value) => {
            let exact = case_exact(&full(path, within));
            let mut values = scalars(at, path);
            match (op, value) {
                (CompareOp::Eq, CompValue::Null) => values.next().is_none(),
                (CompareOp::Ne, CompValue::Null) => values.next().is_some(),
                (CompareOp::Ne, _) => !values.any(|v| compare(v, CompareOp::Eq, value, exact)),
                _ => values.any(|v| compare(v, *op, value, exact)),
            }
        }
        Filter::ValuePath(path, inner) => attribute(at, path).is_some_and(|v| {
            elements(v).any(|e| match e {
                Value::Object(_) => eval(inner, e, Some(path), case_exact),
                // A simple multi-valued attribute: its values are `value`.
                scalar => eval(
                    inner,
                    &serde_json::json!({ "value": scalar }),
                    Some(path),
                    case_exact,
                ),
            })
        }),
        Filter::Not(inner) => !eval(inner, at, within, case_exact),
        Filter::And(fs) => fs.iter().all(|f| eval(f, at, within, case_exact)),
        Filter::Or(fs) => fs.iter().any(|f| eval(f, at, within, case_exact)),
    }
}

/// The path as the schema knows it: inside `emails[...]`, `type` is `emails.type`.
fn full(path: &AttrPath, within: Option<&AttrPath>) -> AttrPath {
    match within {
        Some(outer) => AttrPath {
            urn: outer.urn.clone(),
            name: outer.name.clone(),
            sub: Some(path.name.clone()),
        },
        None => path.clone(),
    }
}

/// A key of an object, ignoring case.
fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    let obj = v.as_object()?;
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// The attribute `path` names (without its sub-attribute): in the
/// extension object its URN names, or at the top for a core schema's URN.
fn attribute<'a>(resource: &'a Value, path: &AttrPath) -> Option<&'a Value> {
    let base = match &path.urn {
        None => resource,
        Some(urn) => match field(resource, urn) {
            Some(ext @ Value::Object(_)) => ext,
            _ if is_core(resource, urn) => resource,
            _ => return None,
        },
    };
    field(base, &path.name).filter(|v| !v.is_null())
}

/// Whether `urn` is the resource's own (core) schema.
fn is_core(resource: &Value, urn: &str) -> bool {
    let listed = field(resource, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter()
                .filter_map(Value::as_str)
                .any(|s| s.eq_ignore_ascii_case(urn))
        });
    let core = urn
        .get(..34)
        .is_some_and(|p| p.eq_ignore_ascii_case("urn:ietf:params:scim:schemas:core:"));
    (listed || core) && field(resource, urn).is_none()
}

/// A multi-valued attribute's values, or a single value alone.
fn elements(v: &Value) -> Box<dyn Iterator<Item = &Value> + '_> {
    match v {
        Value::Array(items) => Box::new(items.iter()),
        other => Box::new(std::iter::once(other)),
    }
}

/// The simple values a comparison on `path` compares with.
fn scalars<'a>(at: &'a Value, path: &'a AttrPath) -> impl Iterator<Item = &'a Value> + 'a {
    attribute(at, path)
        .into_iter()
        .flat_map(elements)
        .filter_map(move |e| match (path.sub.as_deref(), e) {
            (Some(sub), e) => field(e, sub),
            // A complex value compared as a whole compares its `value`.
            (None, e @ Value::Object(_)) => field(e, "value"),
            (None, e) => Some(e),
        })
        .flat_map(elements)
        .filter(|v| !v.is_null())
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => a.iter().any(present),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

fn compare(v: &Value, op: CompareOp, with: &CompValue, exact: bool) -> bool {
    use std::cmp::Ordering;
    let order = |o: Ordering| match op {
        CompareOp::Eq => o == Ordering::Equal,
        CompareOp::Ne => o != Ordering::Equal,
        CompareOp::Gt => o == Ordering::Greater,
        CompareOp::Ge => o != Ordering::Less,
        CompareOp::Lt => o == Ordering::Less,
        CompareOp::Le => o != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    };
    match (v, with) {
        (Value::String(a), CompValue::String(b)) => {
            if let (Some(x), Some(y)) = (instant(a), instant(b))
                && !matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
            {
                return order(x.cmp(&y));
            }
            let (a, b) = if exact {
                (a.clone(), b.clone())
            } else {
                (a.to_lowercase(), b.to_lowercase())
            };
            match op {
                CompareOp::Co => a.contains(&b),
                CompareOp::Sw => a.starts_with(&b),
                CompareOp::Ew => a.ends_with(&b),
                _ => order(a.cmp(&b)),
            }
        }
        (Value::Number(a), CompValue::Number(b)) => {
            let o = match (a.as_i64(), b.as_i64()) {
                (Some(x), Some(y)) => Some(x.cmp(&y)),
                _ => a
                    .as_f64()
                    .zip(b.as_f64())
                    .and_then(|(x, y)| x.partial_cmp(&y)),
            };
            o.is_some_and(order)
        }
        (Value::Bool(a), CompValue::Bool(b)) => match op {
            CompareOp::Eq => a == b,
            CompareOp::Ne => a != b,
            _ => false,
        },
        _ => false,
    }
}

fn instant(s: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    // Only what looks like a date-time: `2011-05-13T04:42:34Z`.
    if s.len() < 20 || s.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    chrono::DateTime::parse_from_rfc3339(s).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::super::Filter;
    use serde_json::{Value, json};

    fn bjensen() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "BJ-1",
            "userName": "bjensen@example.com",
            "name": {"familyName": "Jensen", "givenName": "Barbara"},
            "title": "",
            "userType": "Employee",
            "active": true,
            "x-level": 4,
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "ims": null,
            "meta": {"lastModified": "2011-05-13T04:42:34Z", "version": "W/\"a330bc54f0671c9\""},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "employeeNumber": "701984",
                "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
            }
        })
    }

    fn yes(s: &str) -> bool {
        s.parse::<Filter>()
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .matches(&bjensen())
    }

    #[test]
    fn comparisons_follow_the_rfc() {
        for (s, want) in [
            (r#"userName eq "BJENSEN@example.com""#, true),
            (r#"USERNAME Eq "bjensen@example.com""#, true),
            (r#"userName ne "bjensen@example.com""#, false),
            (r#"userName sw "bjen""#, true),
            (r#"userName ew "@EXAMPLE.COM""#, true),
            (r#"userName co "sen@ex""#, true),
            (r#"externalId eq "bj-1""#, false),
            (r#"externalId eq "BJ-1""#, true),
            (r#"name.familyName co "ens""#, true),
            (r#"name.FAMILYNAME eq "jensen""#, true),
            (r#"emails co "jensen.org""#, true),
            (r#"emails.value ew "example.com""#, true),
            (r#"emails.type eq "mobile""#, false),
            (
                r#"emails[type eq "work" and value co "@example.com"]"#,
                true,
            ),
            (
                r#"emails[type eq "home" and value co "@example.com"]"#,
                false,
            ),
            (
                r#"emails[type eq "work"].value eq "bjensen@example.com""#,
                true,
            ),
            (r#"emails[primary eq true].type eq "work""#, true),
            (r#"emails[not (type eq "work")]"#, true),
            ("title pr", false),
            ("ims pr", false),
            ("nickName pr", false),
            ("emails pr", true),
            ("emails.type pr", true),
            ("name.middleName pr", false),
            (r#"nickName ne "x""#, true),
            ("nickName eq null", true),
            ("userName ne null", true),
            ("active eq true", true),
            ("active eq false", false),
            ("active ne false", true),
            ("x-level gt 3", true),
            ("x-level ge 4.0", true),
            ("x-level lt 4", false),
            (r#"meta.lastModified gt "2011-05-13T04:42:33Z""#, true),
            (r#"meta.lastModified lt "2011-05-13T06:42:35+02:00""#, true),
            (r#"meta.lastModified ge "2011-05-13T04:42:34.000Z""#, true),
            (r#"userName gt "a""#, true),
            (r#"userName lt "a""#, false),
            (
                r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
                true,
            ),
            (
                r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "bjensen""#,
                true,
            ),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
                true,
            ),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
                true,
            ),
            (
                r#"urn:ietf:params:scim:schemas:extension:other:2.0:User:employeeNumber eq "701984""#,
                false,
            ),
            (
                r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
                true,
            ),
            (
                r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
                false,
            ),
            (r#"title pr or userType eq "Intern""#, false),
            (r#"not (title pr) and active eq true"#, true),
            // Types do not mix: a string is not a number, a bool is not ordered.
            (r#"x-level eq "4""#, false),
            ("active gt false", false),
            (r#"userName co 1"#, false),
        ] {
            assert_eq!(yes(s), want, "{s}");
        }
    }

    #[test]
    fn a_value_path_on_simple_values_and_custom_case_rules() {
        let group = json!({"displayName": "Eng", "members": [{"value": "ABC", "$ref": "https://x/Users/ABC"}]});
        let f: Filter = r#"members[value eq "abc"]"#.parse().unwrap();
        assert!(f.matches(&group));
        // A schema saying members.value is case-exact.
        let exact = |p: &super::AttrPath| p.is("members", Some("value"));
        assert!(!f.matches_with(&group, &exact));
        let f: Filter = r#"schemas[value eq "urn:x"]"#.parse().unwrap();
        assert!(f.matches(&json!({"schemas": ["urn:x"]})));
        let f: Filter = r#"members.$ref eq "https://x/users/abc""#.parse().unwrap();
        assert!(!f.matches(&group), "a $ref is case-exact");
    }
}
