//! Limits a server may keep, beyond the RFC's own: the filters it takes,
//! how many membership changes one PATCH may carry, and a request rate
//! past which it answers 429 with `Retry-After`. A host service uses them
//! to protect itself; the tests use them to stand in for a vendor's
//! service (AWS IAM Identity Center takes only `eq` joined by `and`, and
//! 100 membership changes per PATCH).

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use prov_core::RateLimit;
use serde_json::Value;

use crate::filter::{CompareOp, Filter, PatchPath};
use crate::patch::PatchOp;

/// Which filters the server takes. The default takes every filter of
/// RFC 7644 section 3.4.2.2.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FilterRules {
    /// `or` is taken.
    pub or: bool,
    /// Only `eq` (and `and`): no other operator, no `not`, `pr` or value
    /// filter in a query.
    pub only_eq: bool,
    /// The attributes a query may name (`userName`, `members.value`;
    /// compared ignoring case); `None` for any.
    pub attributes: Option<Vec<String>>,
}

impl Default for FilterRules {
    fn default() -> Self {
        FilterRules {
            or: true,
            only_eq: false,
            attributes: None,
        }
    }
}

impl FilterRules {
    /// Why `filter` is refused, if it is. `in_path` for the filter of a
    /// PATCH path (`members[value eq "x"]`): there only `or` and the
    /// operators count.
    pub fn refusal(&self, filter: &Filter, in_path: bool) -> Option<String> {
        match filter {
            Filter::Or(parts) => {
                if !self.or {
                    return Some("`or` is not supported in filters".to_owned());
                }
                parts.iter().find_map(|f| self.refusal(f, in_path))
            }
            Filter::And(parts) => parts.iter().find_map(|f| self.refusal(f, in_path)),
            Filter::Not(inner) => {
                if self.only_eq {
                    return Some("`not` is not supported in filters".to_owned());
                }
                self.refusal(inner, in_path)
            }
            Filter::Present(path) => {
                if self.only_eq {
                    return Some(format!("`{path} pr` is not supported: only `eq`"));
                }
                self.attribute(&path.to_string(), in_path)
            }
            Filter::Compare(path, op, _) => {
                if self.only_eq && *op != CompareOp::Eq {
                    return Some(format!("only `eq` is supported, not `{}`", op.as_str()));
                }
                self.attribute(&path.to_string(), in_path)
            }
            Filter::ValuePath(path, inner) => {
                if self.only_eq && !in_path {
                    return Some(format!("`{path}[...]` is not supported: only `eq`"));
                }
                self.refusal(inner, true)
            }
        }
    }

    fn attribute(&self, name: &str, in_path: bool) -> Option<String> {
        let allowed = self.attributes.as_ref()?;
        if in_path || allowed.iter().any(|a| a.eq_ignore_ascii_case(name)) {
            return None;
        }
        Some(format!(
            "filtering on {name} is not supported (only {})",
            allowed.join(", ")
        ))
    }
}

/// The membership changes a PATCH of a group carries: each value added
/// or replaced into `members`, each `members[...]` removed (one per
/// operation), and a `members` given in a path-less operation's value.
pub(super) fn member_changes(op: &PatchOp) -> usize {
    op.operations
        .iter()
        .map(|o| {
            let values = |v: Option<&Value>| match v {
                Some(Value::Array(a)) => a.len(),
                Some(Value::Null) | None => 0,
                Some(_) => 1,
            };
            match o.path.as_deref().map(str::parse::<PatchPath>) {
                Some(Ok(p)) if p.attr.name.eq_ignore_ascii_case("members") => {
                    if p.filter.is_some() {
                        1
                    } else {
                        // `remove members` with no filter removes all: counted as one here.
                        values(o.value.as_ref()).max(1)
                    }
                }
                Some(_) => 0,
                None => values(o.value.as_ref().and_then(|v| {
                    v.as_object().and_then(|m| {
                        m.iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case("members"))
                            .map(|(_, v)| v)
                    })
                })),
            }
        })
        .fold(0usize, usize::saturating_add)
}

/// The filters of a PATCH's paths.
pub(super) fn path_filters(op: &PatchOp) -> impl Iterator<Item = Filter> + '_ {
    op.operations.iter().filter_map(|o| {
        o.path
            .as_deref()
            .and_then(|p| p.parse::<PatchPath>().ok())
            .and_then(|p| p.filter)
    })
}

/// The server's request rate limiter.
pub(super) fn limiter(limit: &RateLimit) -> Option<DefaultDirectRateLimiter> {
    let requests = NonZeroU32::new(limit.requests)?;
    let per = limit.period.checked_div(requests.get())?;
    let quota =
        Quota::with_period(per)?.allow_burst(NonZeroU32::new(limit.burst).unwrap_or(requests));
    Some(RateLimiter::direct(quota))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws() -> FilterRules {
        FilterRules {
            or: false,
            only_eq: true,
            attributes: Some(vec![
                "userName".into(),
                "externalId".into(),
                "displayName".into(),
            ]),
        }
    }

    #[test]
    fn an_eq_and_only_service_refuses_the_rest() {
        let rules = aws();
        let f = |s: &str| s.parse::<Filter>().unwrap();
        assert_eq!(rules.refusal(&f(r#"userName eq "a""#), false), None);
        assert_eq!(
            rules.refusal(&f(r#"userName eq "a" and externalId eq "b""#), false),
            None
        );
        for refused in [
            r#"userName eq "a" or userName eq "b""#,
            r#"userName sw "a""#,
            r#"not (userName eq "a")"#,
            "title pr",
            r#"id eq "x""#,
            r#"emails[type eq "work"]"#,
        ] {
            assert!(rules.refusal(&f(refused), false).is_some(), "{refused}");
        }
        // In a PATCH path: the attribute names are the group's members'.
        assert_eq!(rules.refusal(&f(r#"value eq "x""#), true), None);
        assert!(
            rules
                .refusal(&f(r#"value eq "x" or value eq "y""#), true)
                .is_some()
        );
        assert_eq!(
            FilterRules::default().refusal(&f(r#"a eq "1" or b pr"#), false),
            None
        );
    }

    #[test]
    fn membership_changes_are_counted_per_value_and_per_removed_path() {
        let op: PatchOp = serde_json::from_value(serde_json::json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "add", "path": "members", "value": [{"value": "a"}, {"value": "b"}]},
                {"op": "remove", "path": "members[value eq \"c\"]"},
                {"op": "replace", "path": "displayName", "value": "x"},
                {"op": "add", "value": {"members": [{"value": "d"}]}},
            ]
        }))
        .unwrap();
        assert_eq!(member_changes(&op), 4);
    }
}
