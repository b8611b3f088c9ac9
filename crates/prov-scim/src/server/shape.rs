//! `attributes` and `excludedAttributes`: which attributes an answer holds.

use axum::http::StatusCode;
use serde_json::Value;

use super::Kind;
use super::http::{Refusal, fail, param};
use crate::filter::AttrPath;
use crate::schema::ResourceSchema;

/// `attributes` and `excludedAttributes`, as paths.
#[derive(Debug, Default)]
pub(super) struct Shape {
    pub(super) attributes: Vec<AttrPath>,
    pub(super) excluded: Vec<AttrPath>,
}

pub(super) fn paths(list: &str) -> Result<Vec<AttrPath>, Refusal> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            crate::filter::parse_attr_path(s)
                .map_err(|e| fail(StatusCode::BAD_REQUEST, Some("invalidPath"), e))
        })
        .collect()
}

/// Whether `key` (a top-level key of a resource) with sub-key `sub` is
/// named by `p`.
pub(super) fn names(p: &AttrPath, schema: &ResourceSchema, key: &str, sub: Option<&str>) -> bool {
    let (urn, name) = match schema.extension(key) {
        // An extension's attributes are named with its URN.
        Some(ext) => match (&p.urn, sub) {
            (Some(u), Some(s)) if u.eq_ignore_ascii_case(ext) => {
                return p.name.eq_ignore_ascii_case(s);
            }
            (None, None) => {
                return p.name.eq_ignore_ascii_case(ext) || p.to_string().eq_ignore_ascii_case(ext);
            }
            _ => return p.to_string().eq_ignore_ascii_case(ext),
        },
        None => (p.urn.as_deref(), p.name.as_str()),
    };
    if urn.is_some_and(|u| !u.eq_ignore_ascii_case(schema.urn)) {
        return false;
    }
    name.eq_ignore_ascii_case(key)
        && match (&p.sub, sub) {
            (None, _) => true,
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            (Some(_), None) => false,
        }
}

impl Shape {
    /// Keeps what `attributes` asks for (plus what is always returned),
    /// takes out what `excludedAttributes` names.
    pub(super) fn apply(&self, kind: Kind, resource: &mut Value) {
        let Value::Object(m) = resource else {
            return;
        };
        let schema = kind.schema();
        let always = |k: &str| k == "id" || k == "schemas";
        if !self.attributes.is_empty() {
            let keys: Vec<String> = m.keys().cloned().collect();
            for key in keys {
                if always(&key) {
                    continue;
                }
                let whole = self.attributes.iter().any(|p| {
                    p.sub.is_none()
                        && names(p, schema, &key, None)
                        && p.urn.as_deref().is_none_or(|u| {
                            schema.extension(&key).is_none() || !u.eq_ignore_ascii_case(&key)
                        })
                });
                let any_sub = |sub: &str| {
                    self.attributes
                        .iter()
                        .any(|p| names(p, schema, &key, Some(sub)))
                };
                if whole {
                    continue;
                }
                match m.get_mut(&key) {
                    Some(Value::Object(inner)) => {
                        inner.retain(|s, _| any_sub(s));
                        if inner.is_empty() {
                            m.remove(&key);
                        }
                    }
                    Some(Value::Array(items))
                        if self.attributes.iter().any(|p| {
                            p.sub.is_some() && names(p, schema, &key, p.sub.as_deref())
                        }) =>
                    {
                        for item in items.iter_mut() {
                            if let Value::Object(o) = item {
                                o.retain(|s, _| any_sub(s));
                            }
                        }
                    }
                    _ => {
                        m.remove(&key);
                    }
                }
            }
        }
        for p in &self.excluded {
            let keys: Vec<String> = m.keys().cloned().collect();
            for key in keys {
                if always(&key) {
                    continue;
                }
                let is_ext = schema.extension(&key).is_some();
                if p.sub.is_none() && !is_ext && names(p, schema, &key, None) {
                    m.remove(&key);
                    continue;
                }
                if is_ext && p.urn.is_none() && names(p, schema, &key, None) {
                    m.remove(&key);
                    continue;
                }
                match m.get_mut(&key) {
                    Some(Value::Object(inner)) => inner.retain(|s, _| {
                        !names(p, schema, &key, Some(s)) || (!is_ext && p.sub.is_none())
                    }),
                    Some(Value::Array(items)) => {
                        for item in items.iter_mut() {
                            if let Value::Object(o) = item {
                                o.retain(|s, _| {
                                    !names(p, schema, &key, Some(s)) || p.sub.is_none()
                                });
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

pub(super) fn shape_of(params: &[(String, String)]) -> Result<Shape, Refusal> {
    Ok(Shape {
        attributes: param(params, "attributes")
            .map(paths)
            .transpose()?
            .unwrap_or_default(),
        excluded: param(params, "excludedattributes")
            .map(paths)
            .transpose()?
            .unwrap_or_default(),
    })
}

/// `attributes` in a search body: a list, or one comma-separated string.
pub(super) fn listed(v: Option<Value>) -> Result<Vec<AttrPath>, Refusal> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => paths(&s),
        Some(Value::Array(items)) => {
            let joined: Vec<String> = items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect();
            paths(&joined.join(","))
        }
        Some(_) => Err(fail(
            StatusCode::BAD_REQUEST,
            Some("invalidValue"),
            "attributes is a list of names",
        )),
    }
}
