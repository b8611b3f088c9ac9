//! Users and Groups: a resource as JSON, what a client may send, and the
//! create, read, replace, patch and delete handlers.

use axum::body::Body;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::http::{
    Refusal, answer, base, body_of, content_type_ok, etag, fail, if_match, params, precondition,
    store_fail, tenant, with_headers,
};
use super::shape::{Shape, shape_of};
use super::{Inner, Kind, ScimEvent, ScimStore, St, StoreError, Stored, events};
use crate::filter::AttrPath;
use crate::patch::PatchOp;
use crate::schema::{AttrDef, AttrType, Mutability};

/// The resource as JSON: its attributes, `id`, `schemas` and `meta`.
pub(crate) fn resource_json(kind: Kind, r: &Stored, location: Option<&str>) -> Value {
    let mut out = Map::new();
    out.insert("id".to_owned(), Value::String(r.id.clone()));
    for (k, v) in &r.attributes {
        out.insert(k.clone(), v.clone());
    }
    let core = kind.schema().urn;
    let schemas = out
        .entry("schemas")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = schemas
        && !list
            .iter()
            .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(core)))
    {
        list.insert(0, Value::String(core.to_owned()));
    }
    let mut meta = json!({
        "resourceType": kind.as_str(),
        "created": r.created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "lastModified": r.modified.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "version": etag(r.version),
    });
    if let (Some(loc), Value::Object(m)) = (location, &mut meta) {
        m.insert("location".to_owned(), Value::String(loc.to_owned()));
    }
    out.insert("meta".to_owned(), meta);
    Value::Object(out)
}

/// The first value at `path` in a resource (for sorting).
pub(crate) fn first_value<'a>(resource: &'a Value, path: &AttrPath) -> Option<&'a Value> {
    let base = match &path.urn {
        Some(urn) => resource
            .as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(urn))
            .map_or(resource, |(_, v)| v),
        None => resource,
    };
    let get = |v: &'a Value, name: &str| -> Option<&'a Value> {
        v.as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let top = get(base, &path.name)?;
    let pick = |v: &'a Value| match v {
        // A multi-valued attribute sorts by its primary value, else its first.
        Value::Array(items) => items
            .iter()
            .find(|i| i.get("primary") == Some(&Value::Bool(true)))
            .or_else(|| items.first()),
        other => Some(other),
    };
    let v = pick(top)?;
    match &path.sub {
        Some(sub) => get(v, sub),
        None if v.is_object() => get(v, "value"),
        None => Some(v),
    }
}

/// Checks what a client sent for `kind` and keeps what it may set: the
/// names spelled canonically, read-only attributes dropped (RFC 7643
/// section 7: ignored), the password taken out (never stored), the types
/// of known attributes checked, the required ones present.
pub(super) fn accept(kind: Kind, body: Value) -> Result<Map<String, Value>, Refusal> {
    let Value::Object(mut m) = body else {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            "the body is not a JSON object",
        ));
    };
    let schema = kind.schema();
    schema.canonicalise(&mut m);
    m.retain(|k, _| {
        schema
            .attribute(None, k)
            .is_none_or(|d| !matches!(d.mutability, Mutability::ReadOnly | Mutability::WriteOnly))
    });
    for (urn, defs) in schema.extensions {
        if let Some(Value::Object(ext)) = m.get_mut(*urn) {
            ext.retain(|k, _| {
                defs.iter()
                    .find(|d| d.name == k)
                    .is_none_or(|d| d.mutability != Mutability::ReadOnly)
            });
        }
    }
    for (k, v) in &m {
        if let Some(d) = schema.attribute(None, k) {
            check_type(d, v, k)?;
        } else if let (Some((urn, defs)), Value::Object(ext)) =
            (schema.extensions.iter().find(|(u, _)| *u == k), v)
        {
            for (name, v) in ext {
                if let Some(d) = defs.iter().find(|d| d.name == name) {
                    check_type(d, v, &format!("{urn}:{name}"))?;
                }
            }
        }
    }
    m.retain(|_, v| !v.is_null());
    for d in schema.attributes.iter().filter(|d| d.required) {
        let ok = match m.get(d.name) {
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(_) => true,
            None => false,
        };
        if !ok {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                Some("invalidValue"),
                format!("{} is required", d.name),
            ));
        }
    }
    Ok(m)
}

pub(super) fn check_type(d: &AttrDef, v: &Value, name: &str) -> Result<(), Refusal> {
    let bad = |what: &str| {
        Err(fail(
            StatusCode::BAD_REQUEST,
            Some("invalidValue"),
            format!("{name} is {what}"),
        ))
    };
    if v.is_null() {
        return Ok(());
    }
    if d.multi_valued {
        let Value::Array(items) = v else {
            return bad("a list");
        };
        let mut one = *d;
        one.multi_valued = false;
        for item in items {
            check_type(&one, item, name)?;
        }
        return Ok(());
    }
    let ok = match d.kind {
        AttrType::String | AttrType::Reference | AttrType::Binary | AttrType::DateTime => {
            v.is_string()
        }
        AttrType::Boolean => v.is_boolean(),
        AttrType::Integer => v.is_i64() || v.is_u64(),
        AttrType::Decimal => v.is_number(),
        AttrType::Complex => v.is_object(),
    };
    if ok {
        Ok(())
    } else {
        bad(match d.kind {
            AttrType::Boolean => "true or false",
            AttrType::Integer => "an integer",
            AttrType::Decimal => "a number",
            AttrType::Complex => "an object",
            _ => "a string",
        })
    }
}

/// Members must be resources of the tenant.
pub(super) async fn check_members<S: ScimStore>(
    inner: &Inner<S>,
    tenant: &str,
    kind: Kind,
    m: &Map<String, Value>,
) -> Result<(), Refusal> {
    if kind != Kind::Group {
        return Ok(());
    }
    let ids: Vec<&str> = m
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| v.get("value").and_then(Value::as_str).unwrap_or_default())
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let missing = inner
        .store
        .missing(tenant, &ids)
        .await
        .map_err(store_fail)?;
    if let Some(first) = missing.first() {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            Some("invalidValue"),
            format!(
                "members: {} of the members are no user or group here (the first: {first:?})",
                missing.len()
            ),
        ));
    }
    Ok(())
}

pub(super) fn new_id() -> Result<String, Refusal> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|_| {
        fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "no randomness for an id",
        )
    })?;
    // A version 4 UUID.
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        h.get(0..8).unwrap_or_default(),
        h.get(8..12).unwrap_or_default(),
        h.get(12..16).unwrap_or_default(),
        h.get(16..20).unwrap_or_default(),
        h.get(20..32).unwrap_or_default()
    ))
}

/// A resource as answered: JSON, a user's groups filled in, shaped.
pub(super) async fn rendered<S: ScimStore>(
    inner: &Inner<S>,
    tenant: &str,
    kind: Kind,
    r: &Stored,
    base: &str,
    shape: &Shape,
) -> Result<Value, Refusal> {
    let location = format!("{base}/{}/{}", kind.endpoint(), r.id);
    let mut v = resource_json(kind, r, Some(&location));
    if kind == Kind::User {
        let groups = inner
            .store
            .groups_of(tenant, &r.id)
            .await
            .map_err(store_fail)?;
        if !groups.is_empty()
            && let Value::Object(m) = &mut v
        {
            let list: Vec<Value> = groups
                .into_iter()
                .map(|(id, name)| {
                    json!({"value": id, "display": name, "type": "direct",
                           "$ref": format!("{base}/Groups/{id}")})
                })
                .collect();
            m.insert("groups".to_owned(), Value::Array(list));
        }
    }
    shape.apply(kind, &mut v);
    Ok(v)
}

fn not_found(kind: Kind, id: &str) -> Refusal {
    fail(
        StatusCode::NOT_FOUND,
        None,
        format!("no {} {id}", kind.as_str()),
    )
}

/// The password a user's body sets, if any (it is never stored).
fn password_in(kind: Kind, body: &Value) -> Option<crate::types::Password> {
    if kind != Kind::User {
        return None;
    }
    body.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("password"))
        .and_then(|(_, v)| v.as_str())
        .map(crate::types::Password::new)
}

/// The events a change from `before` to `after` makes.
fn tell_change<S>(
    inner: &Inner<S>,
    tenant: &str,
    kind: Kind,
    before: Option<&Stored>,
    after: &Stored,
    password: Option<crate::types::Password>,
) {
    let t = tenant.to_owned();
    let json = resource_json(kind, after, None);
    match before {
        None => inner.tell(&ScimEvent::Created {
            tenant: t.clone(),
            kind,
            id: after.id.clone(),
            resource: json,
            password,
        }),
        Some(b) => inner.tell(&ScimEvent::Updated {
            tenant: t.clone(),
            kind,
            id: after.id.clone(),
            before: resource_json(kind, b, None),
            after: json,
            password,
        }),
    }
    if kind == Kind::User
        && let Some(b) = before
    {
        match (
            events::active(&b.attributes),
            events::active(&after.attributes),
        ) {
            (true, false) => inner.tell(&ScimEvent::Deactivated {
                tenant: t.clone(),
                id: after.id.clone(),
            }),
            (false, true) => inner.tell(&ScimEvent::Reactivated {
                tenant: t.clone(),
                id: after.id.clone(),
            }),
            _ => {}
        }
    }
    if kind == Kind::Group {
        let was = before
            .map(|b| events::members(&b.attributes))
            .unwrap_or_default();
        let (added, removed) = events::membership(&was, &events::members(&after.attributes));
        if !added.is_empty() || !removed.is_empty() {
            inner.tell(&ScimEvent::MembershipChanged {
                tenant: t,
                group: after.id.clone(),
                added,
                removed,
            });
        }
    }
}

/// Creates a resource from what a client sent.
pub(super) async fn do_create<S: ScimStore>(
    inner: &Inner<S>,
    tenant: &str,
    kind: Kind,
    body: Value,
) -> Result<Stored, Refusal> {
    let password = password_in(kind, &body);
    let attributes = accept(kind, body)?;
    check_members(inner, tenant, kind, &attributes).await?;
    let r = Stored::new(new_id()?, attributes, inner.clock.now());
    inner
        .store
        .insert(tenant, kind, r.clone())
        .await
        .map_err(store_fail)?;
    tell_change(inner, tenant, kind, None, &r, password);
    Ok(r)
}

/// Replaces a resource (PUT), if `want` (an `If-Match`) is its version.
pub(super) async fn do_replace<S: ScimStore>(
    inner: &Inner<S>,
    tenant: &str,
    kind: Kind,
    id: &str,
    body: Value,
    want: Option<&str>,
) -> Result<Stored, Refusal> {
    let password = password_in(kind, &body);
    let attributes = accept(kind, body)?;
    check_members(inner, tenant, kind, &attributes).await?;
    let _turn = inner.turn(tenant, kind, id).lock().await;
    let current = inner
        .store
        .get(tenant, kind, id)
        .await
        .map_err(store_fail)?
        .ok_or_else(|| not_found(kind, id))?;
    precondition(want, current.version)?;
    let mut next = current.clone();
    next.attributes = attributes;
    next.version = current.version.saturating_add(1);
    next.modified = inner.clock.now();
    inner
        .store
        .update(tenant, kind, next.clone(), current.version)
        .await
        .map_err(store_fail)?;
    tell_change(inner, tenant, kind, Some(&current), &next, password);
    Ok(next)
}

/// Applies a PATCH. Without `If-Match`, a change made meanwhile is read
/// again and the PATCH applied to it; with it, that is a 412.
pub(super) async fn do_patch<S: ScimStore>(
    inner: &Inner<S>,
    tenant: &str,
    kind: Kind,
    id: &str,
    body: Value,
    want: Option<&str>,
) -> Result<Stored, Refusal> {
    let op: PatchOp = serde_json::from_value(body).map_err(|e| {
        fail(
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            format!("not a PatchOp: {e}"),
        )
    })?;
    if let Some(why) =
        super::limits::path_filters(&op).find_map(|f| inner.config.filters.refusal(&f, true))
    {
        return Err(fail(StatusCode::BAD_REQUEST, Some("invalidPath"), why));
    }
    if let (Kind::Group, Some(most)) = (kind, inner.config.max_member_changes) {
        let n = super::limits::member_changes(&op);
        if n > most {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                Some("invalidValue"),
                format!("{n} membership changes in one request: at most {most}"),
            ));
        }
    }
    let _turn = inner.turn(tenant, kind, id).lock().await;
    let mut tries = 0;
    loop {
        tries += 1;
        let current = inner
            .store
            .get(tenant, kind, id)
            .await
            .map_err(store_fail)?
            .ok_or_else(|| not_found(kind, id))?;
        precondition(want, current.version)?;
        let mut work = current.attributes.clone();
        work.insert("id".to_owned(), Value::String(current.id.clone()));
        op.apply(&mut work, kind.schema())
            .map_err(|e| fail(StatusCode::BAD_REQUEST, Some(e.scim_type), e.to_string()))?;
        work.remove("id");
        let work = Value::Object(work);
        let password = password_in(kind, &work);
        let attributes = accept(kind, work)?;
        check_members(inner, tenant, kind, &attributes).await?;
        let mut next = current.clone();
        next.attributes = attributes;
        next.version = current.version.saturating_add(1);
        next.modified = inner.clock.now();
        match inner
            .store
            .update(tenant, kind, next.clone(), current.version)
            .await
        {
            Ok(()) => {
                tell_change(inner, tenant, kind, Some(&current), &next, password);
                return Ok(next);
            }
            Err(StoreError::Changed) if tries < 5 && want.is_none() => continue,
            Err(e) => return Err(store_fail(e)),
        }
    }
}

/// Deletes a resource, if `want` (an `If-Match`) is its version.
pub(super) async fn do_delete<S: ScimStore>(
    inner: &Inner<S>,
    tenant: &str,
    kind: Kind,
    id: &str,
    want: Option<&str>,
) -> Result<(), Refusal> {
    let current = inner
        .store
        .get(tenant, kind, id)
        .await
        .map_err(store_fail)?
        .ok_or_else(|| not_found(kind, id))?;
    precondition(want, current.version)?;
    // The groups it leaves, to tell.
    let held = inner
        .store
        .groups_of(tenant, id)
        .await
        .map_err(store_fail)?;
    if !inner
        .store
        .delete(tenant, kind, id)
        .await
        .map_err(store_fail)?
    {
        return Err(not_found(kind, id));
    }
    inner.tell(&ScimEvent::Deleted {
        tenant: tenant.to_owned(),
        kind,
        id: id.to_owned(),
    });
    for (group, _) in held {
        inner.tell(&ScimEvent::MembershipChanged {
            tenant: tenant.to_owned(),
            group,
            added: Vec::new(),
            removed: vec![id.to_owned()],
        });
    }
    if kind == Kind::Group {
        let (_, removed) = events::membership(&events::members(&current.attributes), &[]);
        if !removed.is_empty() {
            inner.tell(&ScimEvent::MembershipChanged {
                tenant: tenant.to_owned(),
                group: id.to_owned(),
                added: Vec::new(),
                removed,
            });
        }
    }
    Ok(())
}

pub(super) async fn create<S: ScimStore>(
    State(inner): St<S>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    body: Body,
    kind: Kind,
) -> Response {
    let run = async {
        let tenant = tenant(&inner, &headers)?;
        content_type_ok(&headers)?;
        let body = body_of(body, inner.config.max_body).await?;
        let r = do_create(&inner, tenant, kind, body).await?;
        let base = base(&inner, &uri, kind.endpoint());
        let v = rendered(&inner, tenant, kind, &r, &base, &Shape::default()).await?;
        let location = format!("{base}/{}/{}", kind.endpoint(), r.id);
        Ok::<_, Refusal>(with_headers(
            answer(StatusCode::CREATED, &v),
            r.version,
            Some(location),
        ))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn read<S: ScimStore>(
    State(inner): St<S>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    OriginalUri(uri): OriginalUri,
    kind: Kind,
) -> Response {
    let run = async {
        let tenant = tenant(&inner, &headers)?;
        let params = params(q.as_deref())?;
        let shape = shape_of(&params)?;
        let r = inner
            .store
            .get(tenant, kind, &id)
            .await
            .map_err(store_fail)?
            .ok_or_else(|| not_found(kind, &id))?;
        let base = base(&inner, &uri, kind.endpoint());
        let v = rendered(&inner, tenant, kind, &r, &base, &shape).await?;
        Ok::<_, Refusal>(with_headers(answer(StatusCode::OK, &v), r.version, None))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn replace<S: ScimStore>(
    State(inner): St<S>,
    headers: HeaderMap,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    body: Body,
    kind: Kind,
) -> Response {
    let run = async {
        let tenant = tenant(&inner, &headers)?;
        content_type_ok(&headers)?;
        let body = body_of(body, inner.config.max_body).await?;
        let next = do_replace(&inner, tenant, kind, &id, body, if_match(&headers)).await?;
        let base = base(&inner, &uri, kind.endpoint());
        let v = rendered(&inner, tenant, kind, &next, &base, &Shape::default()).await?;
        Ok::<_, Refusal>(with_headers(answer(StatusCode::OK, &v), next.version, None))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn patch<S: ScimStore>(
    State(inner): St<S>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    OriginalUri(uri): OriginalUri,
    body: Body,
    kind: Kind,
) -> Response {
    let run = async {
        let tenant = tenant(&inner, &headers)?;
        content_type_ok(&headers)?;
        let params = params(q.as_deref())?;
        let shape = shape_of(&params)?;
        let body = body_of(body, inner.config.max_body).await?;
        let next = do_patch(&inner, tenant, kind, &id, body, if_match(&headers)).await?;
        let base = base(&inner, &uri, kind.endpoint());
        let v = rendered(&inner, tenant, kind, &next, &base, &shape).await?;
        Ok::<_, Refusal>(with_headers(answer(StatusCode::OK, &v), next.version, None))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn remove<S: ScimStore>(
    State(inner): St<S>,
    headers: HeaderMap,
    Path(id): Path<String>,
    kind: Kind,
) -> Response {
    let run = async {
        let tenant = tenant(&inner, &headers)?;
        do_delete(&inner, tenant, kind, &id, if_match(&headers)).await?;
        Ok::<_, Refusal>(StatusCode::NO_CONTENT.into_response())
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}
