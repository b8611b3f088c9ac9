//! PATCH (RFC 7644 section 3.5.2): the request, applied to a resource in
//! its JSON form, and the smallest request that turns one resource into
//! another ([`diff`]).
//!
//! Besides the RFC's forms, what identity providers send is accepted:
//! Microsoft Entra ID's capitalised `op` (`"Replace"`), booleans as the
//! strings `"True"`/`"False"`, `remove` of members with a list of values,
//! `"$ref": null` in member values, a manager given as its id alone, and
//! `add`/`replace` on `emails[type eq "work"].value` for a user with no
//! work email yet (a value is made with `type` = `work`); Okta's path-less
//! `replace` with an object (`{"active": false}`), a group rename carrying
//! the group's own unchanged `id`, and `remove` of
//! `members[value eq "..."]`.
//!
//! A request is applied whole or not at all: an error leaves the resource
//! as it was, and names the operation (by its index) and the SCIM error
//! type (`invalidPath`, `noTarget`, `invalidValue`, `mutability`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::filter::{AttrPath, CompValue, CompareOp, Filter, PatchPath};
use crate::schema::{AttrDef, AttrType, Mutability, ResourceSchema, canonical_value};

/// The PatchOp message's schema URN.
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A PATCH request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PatchOp {
    /// `[PATCH_OP]`.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// The operations, applied in order.
    #[serde(rename = "Operations", alias = "operations")]
    pub operations: Vec<PatchOperation>,
}

impl PatchOp {
    /// A request of `operations`.
    pub fn new(operations: Vec<PatchOperation>) -> Self {
        PatchOp {
            schemas: vec![PATCH_OP.to_owned()],
            operations,
        }
    }
}

/// One operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PatchOperation {
    /// `add`, `remove` or `replace` (any case).
    pub op: Op,
    /// Where: an attribute path or a value path; none for an `add` or
    /// `replace` whose value is an object of attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What: absent (`None`) differs from `null` (`Some(Value::Null)`,
    /// which unassigns the attribute).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub value: Option<Value>,
}

impl PatchOperation {
    /// `op` at `path` with `value`.
    pub fn new(op: Op, path: Option<String>, value: Option<Value>) -> Self {
        PatchOperation { op, path, value }
    }
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// A PATCH operation's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Adds values (to a multi-valued attribute) or sets an attribute.
    Add,
    /// Removes an attribute or some of its values.
    Remove,
    /// Replaces an attribute or some of its values.
    Replace,
}

impl Serialize for Op {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            Op::Add => "add",
            Op::Remove => "remove",
            Op::Replace => "replace",
        })
    }
}

impl<'de> Deserialize<'de> for Op {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.to_ascii_lowercase().as_str() {
            "add" => Ok(Op::Add),
            "remove" => Ok(Op::Remove),
            "replace" => Ok(Op::Replace),
            _ => Err(serde::de::Error::custom(format!(
                "`{s}` is not a PATCH op (add, remove, replace)"
            ))),
        }
    }
}

/// Why a PATCH was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PatchError {
    /// The index of the operation at fault.
    pub operation: usize,
    /// The RFC 7644 `scimType`: `invalidPath`, `noTarget`, `invalidValue`,
    /// `mutability` or `invalidFilter`.
    pub scim_type: &'static str,
    /// What is wrong.
    pub detail: String,
}

impl fmt::Display for PatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "operation {}: {} ({})",
            self.operation, self.detail, self.scim_type
        )
    }
}

impl std::error::Error for PatchError {}

type Fail = (&'static str, String);

fn invalid_value(detail: impl Into<String>) -> Fail {
    ("invalidValue", detail.into())
}

impl PatchOp {
    /// Applies the operations in order to `resource` (a resource of
    /// `schema`, as JSON): all of them, or on an error none.
    pub fn apply(
        &self,
        resource: &mut Map<String, Value>,
        schema: &ResourceSchema,
    ) -> Result<(), PatchError> {
        let mut work = resource.clone();
        schema.canonicalise(&mut work);
        for (i, op) in self.operations.iter().enumerate() {
            apply_one(&mut work, op, schema).map_err(|(scim_type, detail)| PatchError {
                operation: i,
                scim_type,
                detail,
            })?;
        }
        tidy(&mut work, schema);
        *resource = work;
        Ok(())
    }
}

fn apply_one(
    r: &mut Map<String, Value>,
    op: &PatchOperation,
    schema: &ResourceSchema,
) -> Result<(), Fail> {
    let Some(text) = &op.path else {
        if op.op == Op::Remove {
            return Err(("noTarget", "a remove needs a path".to_owned()));
        }
        let Some(Value::Object(values)) = &op.value else {
            return Err(invalid_value(
                "an add or replace without a path takes an object of attributes",
            ));
        };
        for (key, v) in values {
            if let Some(urn) = schema_urn(schema, key) {
                // `"urn:...:enterprise:2.0:User": {"department": "x"}`
                let Value::Object(inner) = v else {
                    return Err(invalid_value(format!("`{key}` takes an object")));
                };
                for (name, v) in inner {
                    let path = PatchPath::from_parts(AttrPath::new(name.clone()).with_urn(urn));
                    set(r, op.op, &path, v.clone(), schema)?;
                }
                continue;
            }
            let path: PatchPath = key.parse().map_err(|e: crate::filter::FilterError| {
                ("invalidPath", format!("`{key}`: {e}"))
            })?;
            if path.filter.is_some() {
                return Err((
                    "invalidPath",
                    format!("`{key}`: a value path is not an attribute name"),
                ));
            }
            set(r, op.op, &path, v.clone(), schema)?;
        }
        return Ok(());
    };
    // A path that is an extension's URN names the whole extension.
    if let Some(urn) = schema.extension(text) {
        return match (op.op, &op.value) {
            (Op::Remove, _) => {
                remove_key(r, urn);
                Ok(())
            }
            (_, Some(Value::Object(inner))) => {
                for (name, v) in inner {
                    let path = PatchPath::from_parts(AttrPath::new(name.clone()).with_urn(urn));
                    set(r, op.op, &path, v.clone(), schema)?;
                }
                Ok(())
            }
            _ => Err(invalid_value(format!("`{text}` takes an object"))),
        };
    }
    let path: PatchPath = text
        .parse()
        .map_err(|e: crate::filter::FilterError| ("invalidPath", format!("`{text}`: {e}")))?;
    match op.op {
        Op::Remove => remove(r, &path, op.value.as_ref(), schema),
        _ => {
            let Some(value) = op.value.clone() else {
                return Err(invalid_value(format!(
                    "an {} needs a value",
                    op_name(op.op)
                )));
            };
            set(r, op.op, &path, value, schema)
        }
    }
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Add => "add",
        Op::Remove => "remove",
        Op::Replace => "replace",
    }
}

impl PatchPath {
    fn from_parts(attr: AttrPath) -> Self {
        // `name.sub` written as one name: split it as a path would be.
        match attr.name.split_once('.') {
            Some((name, sub)) if attr.sub.is_none() => {
                let mut a = AttrPath::sub(name.to_owned(), sub.to_owned());
                a.urn = attr.urn;
                PatchPath {
                    attr: a,
                    filter: None,
                    sub: None,
                }
            }
            _ => PatchPath {
                attr,
                filter: None,
                sub: None,
            },
        }
    }
}

/// `key` as the core schema's or an extension's URN, spelled canonically.
fn schema_urn(schema: &ResourceSchema, key: &str) -> Option<&'static str> {
    if key.eq_ignore_ascii_case(schema.urn) {
        return Some(schema.urn);
    }
    schema.extension(key)
}

/// A key of `map` equal to `name` ignoring case.
fn key_of(map: &Map<String, Value>, name: &str) -> Option<String> {
    if map.contains_key(name) {
        return Some(name.to_owned());
    }
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

fn remove_key(map: &mut Map<String, Value>, name: &str) -> Option<Value> {
    let key = key_of(map, name)?;
    map.remove(&key)
}

/// The object that holds `urn`'s attributes: the resource itself for the
/// core schema, else the extension's object (made when `create`).
fn container<'a>(
    r: &'a mut Map<String, Value>,
    urn: Option<&str>,
    schema: &ResourceSchema,
    create: bool,
) -> Result<Option<&'a mut Map<String, Value>>, Fail> {
    let Some(urn) = urn.filter(|u| !u.eq_ignore_ascii_case(schema.urn)) else {
        return Ok(Some(r));
    };
    let name = schema.extension(urn).unwrap_or(urn);
    let key = match key_of(r, name) {
        Some(k) => k,
        None if create => {
            r.insert(name.to_owned(), Value::Object(Map::new()));
            name.to_owned()
        }
        None => return Ok(None),
    };
    match r.get_mut(&key) {
        Some(Value::Object(ext)) => Ok(Some(ext)),
        _ => Err(invalid_value(format!("`{key}` is not an object"))),
    }
}

/// A value as its definition says, nulls inside complex values dropped
/// (`"$ref": null`), a complex attribute given as a bare id read as `{"value": id}`.
fn shaped(mut v: Value, def: Option<&AttrDef>) -> Value {
    if let Some(def) = def {
        let has_value = def.sub_attributes.iter().any(|s| s.name == "value");
        if def.kind == AttrType::Complex && !def.multi_valued && has_value && v.is_string() {
            v = serde_json::json!({ "value": v });
        }
        canonical_value(&mut v, def);
    }
    match &mut v {
        Value::Object(o) => o.retain(|_, x| !x.is_null()),
        Value::Array(items) => {
            for item in items.iter_mut() {
                if let Value::Object(o) = item {
                    o.retain(|_, x| !x.is_null());
                }
            }
        }
        _ => {}
    }
    v
}

/// A multi-valued attribute's value as compared: its `value` string
/// (folded unless case-exact), when it has one.
fn value_key(v: &Value, case_exact: bool) -> Option<String> {
    let s = match v {
        Value::Object(o) => o
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("value"))
            .and_then(|(_, v)| v.as_str())?,
        Value::String(s) => s,
        _ => return None,
    };
    Some(if case_exact {
        s.to_owned()
    } else {
        s.to_lowercase()
    })
}

/// Whether two values of a multi-valued attribute are the same value: by
/// their `value` sub-attributes when both have one, else whole.
fn same_value(a: &Value, b: &Value, case_exact: bool) -> bool {
    let key = |v: &Value| match v {
        Value::Object(o) => o
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("value"))
            .map(|(_, v)| v.clone()),
        other => Some(other.clone()),
    };
    match (key(a), key(b)) {
        (Some(Value::String(x)), Some(Value::String(y))) if !case_exact => {
            x.eq_ignore_ascii_case(&y)
        }
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// At most one value is `primary`: the last one set keeps it.
fn one_primary(items: &mut [Value], newest: usize) {
    let is_primary = |v: &Value| v.get("primary") == Some(&Value::Bool(true));
    if !items.get(newest).is_some_and(is_primary) {
        return;
    }
    for (i, item) in items.iter_mut().enumerate() {
        if i != newest
            && is_primary(item)
            && let Value::Object(o) = item
        {
            o.insert("primary".to_owned(), Value::Bool(false));
        }
    }
}

fn check_mutable(
    def: Option<&AttrDef>,
    current: Option<&Value>,
    value: &Value,
    name: &str,
) -> Result<bool, Fail> {
    match def.map(|d| d.mutability) {
        Some(Mutability::ReadOnly) => {
            // Okta sends a group's own id back in a rename: no change, no error.
            if current == Some(value) {
                Ok(false)
            } else {
                Err(("mutability", format!("`{name}` is read-only")))
            }
        }
        Some(Mutability::Immutable) if current.is_some_and(|c| c != value) => {
            Err(("mutability", format!("`{name}` is immutable")))
        }
        _ => Ok(true),
    }
}

/// `add` or `replace` of `value` at `path`.
fn set(
    r: &mut Map<String, Value>,
    op: Op,
    path: &PatchPath,
    value: Value,
    schema: &ResourceSchema,
) -> Result<(), Fail> {
    let urn = path.attr.urn.as_deref();
    let name = path.attr.name.as_str();
    let def = schema.attribute(urn, name);
    let canonical = def.map_or(name, |d| d.name).to_owned();
    let case_exact = |sub: &str| {
        schema
            .definition(urn, name, Some(sub))
            .is_some_and(|d| d.case_exact)
    };
    let Some(c) = container(r, urn, schema, true)? else {
        return Ok(());
    };
    let key = key_of(c, name).unwrap_or_else(|| canonical.clone());
    match (
        &path.filter,
        path.attr.sub.as_deref().or(path.sub.as_deref()),
    ) {
        (None, Some(sub)) => {
            let sub_def = def.and_then(|d| {
                d.sub_attributes
                    .iter()
                    .find(|s| s.name.eq_ignore_ascii_case(sub))
            });
            let value = shaped(value, sub_def);
            if sub_def.is_some_and(|d| d.mutability == Mutability::ReadOnly) {
                return Err(("mutability", format!("`{name}.{sub}` is read-only")));
            }
            check_mutable(def, None, &Value::Null, name).map(|_| ())?;
            let sub_name = sub_def.map_or(sub, |d| d.name).to_owned();
            let slot = c.entry(key).or_insert_with(|| Value::Object(Map::new()));
            let set_in = |o: &mut Map<String, Value>| {
                let k = key_of(o, &sub_name).unwrap_or_else(|| sub_name.clone());
                if value.is_null() {
                    o.remove(&k);
                } else {
                    o.insert(k, value.clone());
                }
            };
            match slot {
                Value::Object(o) => set_in(o),
                Value::Array(items) => {
                    for item in items.iter_mut() {
                        if let Value::Object(o) = item {
                            set_in(o);
                        }
                    }
                }
                _ => return Err(invalid_value(format!("`{name}` has no sub-attributes"))),
            }
            Ok(())
        }
        (None, None) => {
            let value = shaped(value, def);
            if !check_mutable(def, c.get(&key), &value, name)? {
                return Ok(());
            }
            if value.is_null() {
                c.remove(&key);
                return Ok(());
            }
            let multi = def.map_or_else(
                || value.is_array() || c.get(&key).is_some_and(Value::is_array),
                |d| d.multi_valued,
            );
            let complex = def.is_some_and(|d| d.kind == AttrType::Complex)
                || (value.is_object() && c.get(&key).is_some_and(Value::is_object));
            if multi {
                let new_items = match value {
                    Value::Array(v) => v,
                    other => vec![other],
                };
                let exact = case_exact("value");
                let slot = c.entry(key).or_insert_with(|| Value::Array(Vec::new()));
                if op == Op::Replace || !slot.is_array() {
                    *slot = Value::Array(Vec::new());
                }
                if let Value::Array(items) = slot {
                    // By `value`, so that adding 10,000 members is linear.
                    let mut at: std::collections::HashMap<String, usize> = items
                        .iter()
                        .enumerate()
                        .filter_map(|(i, x)| value_key(x, exact).map(|k| (k, i)))
                        .collect();
                    for item in new_items {
                        let found = match value_key(&item, exact) {
                            Some(k) => at.get(&k).copied(),
                            None => items.iter().position(|x| same_value(x, &item, exact)),
                        };
                        if let Some(k) = value_key(&item, exact)
                            && found.is_none()
                        {
                            at.insert(k, items.len());
                        }
                        match found {
                            // Adding a value already there merges what it adds.
                            Some(i) => {
                                if let (Some(Value::Object(old)), Value::Object(new)) =
                                    (items.get_mut(i), &item)
                                {
                                    for (k, v) in new {
                                        old.insert(k.clone(), v.clone());
                                    }
                                }
                                one_primary(items, i);
                            }
                            None => {
                                items.push(item);
                                let last = items.len().saturating_sub(1);
                                one_primary(items, last);
                            }
                        }
                    }
                }
            } else if complex {
                let Value::Object(subs) = value else {
                    return Err(invalid_value(format!("`{name}` takes an object")));
                };
                let slot = c.entry(key).or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(o) = slot {
                    // Sub-attributes not given are left as they are (RFC 7644 3.5.2.3).
                    for (k, v) in subs {
                        let k = key_of(o, &k).unwrap_or(k);
                        o.insert(k, v);
                    }
                }
            } else {
                c.insert(key, value);
            }
            Ok(())
        }
        (Some(filter), sub) => {
            if def.is_some_and(|d| d.mutability == Mutability::ReadOnly) {
                return Err(("mutability", format!("`{name}` is read-only")));
            }
            let sub_def = sub.and_then(|s| schema.definition(urn, name, Some(s)));
            let elem_def = if sub.is_some() { sub_def } else { def };
            // One element's value (or a sub-attribute's), shaped as such.
            let value = shaped(value, elem_def);
            let slot = c.entry(key).or_insert_with(|| Value::Array(Vec::new()));
            let Value::Array(items) = slot else {
                return Err(("invalidPath", format!("`{name}` is not multi-valued")));
            };
            let rule = |p: &AttrPath| case_exact(&p.name);
            let matched: Vec<usize> = items
                .iter()
                .enumerate()
                .filter(|(_, e)| element_matches(filter, e, &rule))
                .map(|(i, _)| i)
                .collect();
            if matched.is_empty() {
                // Entra ID sets `emails[type eq "work"].value` on a user with
                // no work email: the filter's equalities make the new value.
                let Some(mut made) = element_from(filter) else {
                    return Err((
                        "noTarget",
                        format!("no value of `{name}` matches `{filter}`"),
                    ));
                };
                match (sub, value) {
                    (Some(s), v) => {
                        let s = sub_def.map_or(s, |d| d.name);
                        made.insert(s.to_owned(), v);
                    }
                    (None, Value::Object(o)) => made.extend(o),
                    (None, _) => {
                        return Err(invalid_value(format!("a value of `{name}` is an object")));
                    }
                }
                items.push(Value::Object(made));
                let last = items.len().saturating_sub(1);
                one_primary(items, last);
                return Ok(());
            }
            for i in matched {
                let Some(Value::Object(e)) = items.get_mut(i) else {
                    return Err(invalid_value(format!(
                        "`{name}` holds values that are not objects"
                    )));
                };
                match (sub, &value) {
                    (Some(s), v) => {
                        let s = sub_def.map_or(s, |d| d.name);
                        let k = key_of(e, s).unwrap_or_else(|| s.to_owned());
                        if v.is_null() {
                            e.remove(&k);
                        } else {
                            e.insert(k, v.clone());
                        }
                    }
                    (None, Value::Object(o)) if op == Op::Replace => *e = o.clone(),
                    (None, Value::Object(o)) => {
                        for (k, v) in o {
                            e.insert(k.clone(), v.clone());
                        }
                    }
                    (None, _) => {
                        return Err(invalid_value(format!("a value of `{name}` is an object")));
                    }
                }
                one_primary(items, i);
            }
            Ok(())
        }
    }
}

fn element_matches(filter: &Filter, e: &Value, rule: &dyn Fn(&AttrPath) -> bool) -> bool {
    match e {
        Value::Object(_) => filter.matches_with(e, rule),
        scalar => filter.matches_with(&serde_json::json!({ "value": scalar }), rule),
    }
}

/// The value a filter of equalities on plain sub-attributes describes:
/// `type eq "work"` gives `{"type": "work"}`.
fn element_from(filter: &Filter) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    let mut add = |f: &Filter| match f {
        Filter::Compare(p, CompareOp::Eq, v) if p.urn.is_none() && p.sub.is_none() => {
            let v = match v {
                CompValue::String(s) => Value::String(s.clone()),
                CompValue::Bool(b) => Value::Bool(*b),
                CompValue::Number(n) => Value::Number(n.clone()),
                _ => return false,
            };
            out.insert(p.name.clone(), v);
            true
        }
        _ => false,
    };
    let ok = match filter {
        Filter::And(fs) => fs.iter().all(&mut add),
        f => add(f),
    };
    ok.then_some(out)
}

/// `remove` at `path`, of `value`'s values when given (Entra ID's form).
fn remove(
    r: &mut Map<String, Value>,
    path: &PatchPath,
    value: Option<&Value>,
    schema: &ResourceSchema,
) -> Result<(), Fail> {
    let urn = path.attr.urn.as_deref();
    let name = path.attr.name.as_str();
    let def = schema.attribute(urn, name);
    if def.is_some_and(|d| d.mutability == Mutability::ReadOnly) {
        return Err(("mutability", format!("`{name}` is read-only")));
    }
    if def.is_some_and(|d| d.required) && path.filter.is_none() && path.attr.sub.is_none() {
        return Err(("mutability", format!("`{name}` is required")));
    }
    let case_exact = |sub: &str| {
        schema
            .definition(urn, name, Some(sub))
            .is_some_and(|d| d.case_exact)
    };
    let Some(c) = container(r, urn, schema, false)? else {
        return Ok(());
    };
    let Some(key) = key_of(c, name) else {
        return Ok(());
    };
    match (
        &path.filter,
        path.attr.sub.as_deref().or(path.sub.as_deref()),
    ) {
        (None, None) => match (value, c.get_mut(&key)) {
            (Some(v), Some(Value::Array(items))) if !v.is_null() => {
                let gone = match shaped(v.clone(), def) {
                    Value::Array(v) => v,
                    other => vec![other],
                };
                let exact = case_exact("value");
                let keys: std::collections::HashSet<String> =
                    gone.iter().filter_map(|g| value_key(g, exact)).collect();
                let others: Vec<&Value> = gone
                    .iter()
                    .filter(|g| value_key(g, exact).is_none())
                    .collect();
                items.retain(|x| match value_key(x, exact) {
                    Some(k) if keys.contains(&k) => false,
                    _ => !others.iter().any(|g| same_value(x, g, exact)),
                });
            }
            _ => {
                c.remove(&key);
            }
        },
        (None, Some(sub)) => match c.get_mut(&key) {
            Some(Value::Object(o)) => {
                remove_key(o, sub);
            }
            Some(Value::Array(items)) => {
                for item in items.iter_mut() {
                    if let Value::Object(o) = item {
                        remove_key(o, sub);
                    }
                }
            }
            _ => {}
        },
        (Some(filter), sub) => {
            let rule = |p: &AttrPath| case_exact(&p.name);
            if let Some(Value::Array(items)) = c.get_mut(&key) {
                match sub {
                    None => items.retain(|e| !element_matches(filter, e, &rule)),
                    Some(s) => {
                        for e in items.iter_mut() {
                            if element_matches(filter, e, &rule)
                                && let Value::Object(o) = e
                            {
                                remove_key(o, s);
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Unassigned attributes go (null, empty lists, empty objects), and
/// `schemas` lists the extensions the resource has.
fn tidy(r: &mut Map<String, Value>, schema: &ResourceSchema) {
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    for v in r.values_mut() {
        if let Value::Object(o) = v {
            o.retain(|_, x| !empty(x));
        }
    }
    r.retain(|k, v| k == "schemas" || !empty(v));
    if let Some(Value::Array(listed)) = r.get("schemas").cloned() {
        let mut listed: Vec<Value> = listed;
        for (urn, _) in schema.extensions {
            let has = r.contains_key(*urn);
            let pos = listed
                .iter()
                .position(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn)));
            match (has, pos) {
                (true, None) => listed.push(Value::String((*urn).to_owned())),
                (false, Some(i)) => {
                    listed.remove(i);
                }
                _ => {}
            }
        }
        r.insert("schemas".to_owned(), Value::Array(listed));
    }
}

/// The smallest PATCH that turns `old` into `new` (both resources of
/// `schema`): `replace` of what changed, `remove` of what went, `add` of
/// what came; a multi-valued attribute whose values have distinct `value`s
/// (members, emails) changes by the values added and removed. Read-only
/// attributes (`id`, `meta`, `groups`) are left out.
pub fn diff(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    schema: &ResourceSchema,
) -> PatchOp {
    let mut old = old.clone();
    let mut new = new.clone();
    schema.canonicalise(&mut old);
    schema.canonicalise(&mut new);
    let mut ops = Vec::new();
    diff_level(&old, &new, None, schema, &mut ops);
    for (urn, _) in schema.extensions {
        let empty = Map::new();
        let (a, b) = (
            old.get(*urn).and_then(Value::as_object).unwrap_or(&empty),
            new.get(*urn).and_then(Value::as_object).unwrap_or(&empty),
        );
        diff_level(a, b, Some(urn), schema, &mut ops);
    }
    PatchOp::new(ops)
}

fn diff_level(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    urn: Option<&str>,
    schema: &ResourceSchema,
    ops: &mut Vec<PatchOperation>,
) {
    let path = |name: &str| match urn {
        Some(u) => format!("{u}:{name}"),
        None => name.to_owned(),
    };
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        if name == "schemas" || schema.extension(name).is_some() {
            continue;
        }
        let def = schema.attribute(urn, name);
        if def.is_some_and(|d| matches!(d.mutability, Mutability::ReadOnly)) {
            continue;
        }
        let (a, b) = (
            old.get(name).filter(|v| !v.is_null()),
            new.get(name).filter(|v| !v.is_null()),
        );
        match (a, b) {
            (None, None) => {}
            (Some(_), None) => ops.push(PatchOperation::new(Op::Remove, Some(path(name)), None)),
            (None, Some(v)) => ops.push(PatchOperation::new(
                Op::Add,
                Some(path(name)),
                Some(v.clone()),
            )),
            (Some(a), Some(b)) if a == b => {}
            (Some(Value::Array(a)), Some(Value::Array(b))) => {
                let exact = schema
                    .definition(urn, name, Some("value"))
                    .is_some_and(|d| d.case_exact);
                match by_values(a, b, exact) {
                    Some((added, removed)) => {
                        for r in removed {
                            let f = Filter::Compare(
                                AttrPath::new("value"),
                                CompareOp::Eq,
                                CompValue::String(r),
                            );
                            ops.push(PatchOperation::new(
                                Op::Remove,
                                Some(format!("{}[{f}]", path(name))),
                                None,
                            ));
                        }
                        if !added.is_empty() {
                            ops.push(PatchOperation::new(
                                Op::Add,
                                Some(path(name)),
                                Some(Value::Array(added)),
                            ));
                        }
                    }
                    None => ops.push(PatchOperation::new(
                        Op::Replace,
                        Some(path(name)),
                        Some(Value::Array(b.clone())),
                    )),
                }
            }
            (Some(Value::Object(a)), Some(Value::Object(b))) => {
                let mut subs: Vec<&String> = a.keys().chain(b.keys()).collect();
                subs.sort();
                subs.dedup();
                for sub in subs {
                    let p = format!("{}.{sub}", path(name));
                    match (
                        a.get(sub).filter(|v| !v.is_null()),
                        b.get(sub).filter(|v| !v.is_null()),
                    ) {
                        (Some(_), None) => ops.push(PatchOperation::new(Op::Remove, Some(p), None)),
                        (x, Some(y)) if x != Some(y) => {
                            ops.push(PatchOperation::new(Op::Replace, Some(p), Some(y.clone())));
                        }
                        _ => {}
                    }
                }
            }
            (Some(_), Some(b)) => ops.push(PatchOperation::new(
                Op::Replace,
                Some(path(name)),
                Some(b.clone()),
            )),
        }
    }
}

/// The values added (whole) and removed (by `value`) between two lists
/// whose values are objects with distinct string `value`s and where no
/// value kept changed; `None` otherwise.
fn by_values(a: &[Value], b: &[Value], exact: bool) -> Option<(Vec<Value>, Vec<String>)> {
    let key = |v: &Value| -> Option<String> {
        let s = v.get("value")?.as_str()?;
        Some(if exact {
            s.to_owned()
        } else {
            s.to_lowercase()
        })
    };
    let ka: Vec<String> = a.iter().map(key).collect::<Option<_>>()?;
    let kb: Vec<String> = b.iter().map(key).collect::<Option<_>>()?;
    let distinct = |k: &[String]| {
        let mut s = k.to_vec();
        s.sort();
        s.dedup();
        s.len() == k.len()
    };
    if !distinct(&ka) || !distinct(&kb) {
        return None;
    }
    let mut added = Vec::new();
    for (v, k) in b.iter().zip(&kb) {
        match ka.iter().position(|x| x == k) {
            Some(i) if a.get(i) != Some(v) => return None,
            Some(_) => {}
            None => added.push(v.clone()),
        }
    }
    let removed = a
        .iter()
        .zip(&ka)
        .filter(|(_, k)| !kb.contains(k))
        .filter_map(|(v, _)| v.get("value").and_then(Value::as_str).map(str::to_owned))
        .collect();
    Some((added, removed))
}
