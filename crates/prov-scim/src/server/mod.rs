//! The SCIM server (feature `server`): an axum [`Router`] that a host
//! service mounts at any prefix, over a [`ScimStore`] it implements on its
//! own tables ([`MemoryStore`] ships here).
//!
//! ```
//! use std::sync::Arc;
//! use prov_scim::server::{MemoryStore, ScimServer, Tenants};
//!
//! let mut tenants = Tenants::new();
//! tenants.add_token("acme", "a-long-random-token-from-the-environment")?;
//! let scim = ScimServer::new(Arc::new(MemoryStore::new()), tenants)
//!     .base_url("https://app.example.com/scim/v2");
//! let app: axum::Router = axum::Router::new().nest("/scim/v2", scim.router());
//! # Ok::<(), prov_scim::server::TokenError>(())
//! ```
//!
//! Every request needs `Authorization: Bearer TOKEN`; the token names the
//! tenant, and a tenant sees only its own resources. Every answer is
//! `application/scim+json`, errors included (RFC 7644 section 3.12).

mod auth;
mod memory;
mod store;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use prov_core::{Clock, SystemClock};
use serde_json::{Map, Value, json};

pub use auth::{MIN_TOKEN_LEN, Tenants, TokenError};
pub use memory::MemoryStore;
pub use store::{Found, Kind, Query, ScimStore, StoreError, Stored};

use crate::filter::{AttrPath, Filter};
use crate::patch::PatchOp;
use crate::schema::{AttrDef, AttrType, Mutability, ResourceSchema};
use crate::types::{self, ListResponse, ScimError};

/// The SCIM content type.
pub const SCIM_JSON: &str = "application/scim+json";

/// The server's settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The URL the router is reached at (`https://host/scim/v2`), for
    /// `Location` and `meta.location`; unset, they are paths from the
    /// request's own (`/scim/v2/Users/ID`).
    pub base_url: Option<String>,
    /// The largest request body, in bytes (larger: 413). Default 1 MiB.
    pub max_body: usize,
    /// The most resources a list returns (`count` above it is lowered).
    /// Default 1000.
    pub max_results: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            base_url: None,
            max_body: 1024 * 1024,
            max_results: 1000,
        }
    }
}

/// The server: a store, the tenants' tokens and the settings.
pub struct ScimServer<S> {
    inner: Arc<Inner<S>>,
}

impl<S> std::fmt::Debug for ScimServer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimServer")
            .field("tenants", &self.inner.tenants)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

struct Inner<S> {
    store: Arc<S>,
    tenants: Tenants,
    config: ServerConfig,
    clock: Arc<dyn Clock>,
}

impl<S: ScimStore> ScimServer<S> {
    /// A server over `store` for `tenants`, with the default settings.
    pub fn new(store: Arc<S>, tenants: Tenants) -> Self {
        ScimServer {
            inner: Arc::new(Inner {
                store,
                tenants,
                config: ServerConfig::default(),
                clock: Arc::new(SystemClock),
            }),
        }
    }

    fn map(self, f: impl FnOnce(&mut Inner<S>)) -> Self {
        let mut inner = match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner,
            Err(shared) => Inner {
                store: shared.store.clone(),
                tenants: Tenants::new(),
                config: shared.config.clone(),
                clock: shared.clock.clone(),
            },
        };
        f(&mut inner);
        ScimServer {
            inner: Arc::new(inner),
        }
    }

    /// With these settings.
    pub fn config(self, config: ServerConfig) -> Self {
        self.map(|i| i.config = config)
    }

    /// Reached at `url` (for `Location` and `meta.location`).
    pub fn base_url(self, url: impl Into<String>) -> Self {
        let url = url.into().trim_end_matches('/').to_owned();
        self.map(|i| i.config.base_url = Some(url))
    }

    /// With `clock` for `meta.created` and `meta.lastModified`.
    pub fn clock(self, clock: Arc<dyn Clock>) -> Self {
        self.map(|i| i.clock = clock)
    }

    /// The routes, relative: mount them with `Router::nest("/scim/v2", ...)`.
    pub fn router(&self) -> Router {
        let resource = |kind: Kind| -> (Route<S>, Route<S>, Route<S>) {
            (
                get(move |s, h, q, o| list(s, h, q, o, kind))
                    .post(move |s, h, o, b| create(s, h, o, b, kind)),
                get(move |s, h, p, q, o| read(s, h, p, q, o, kind))
                    .put(move |s, h, p, o, b| replace(s, h, p, o, b, kind))
                    .patch(move |s, h, p, q, o, b| patch(s, h, p, q, o, b, kind))
                    .delete(move |s, h, p| remove(s, h, p, kind)),
                post(move |s, h, o, b| search(s, h, o, b, Some(kind))),
            )
        };
        let (users, user, users_search) = resource(Kind::User);
        let (groups, group, groups_search) = resource(Kind::Group);
        Router::new()
            .route("/Users", users)
            .route("/Users/.search", users_search)
            .route("/Users/{id}", user)
            .route("/Groups", groups)
            .route("/Groups/.search", groups_search)
            .route("/Groups/{id}", group)
            .route("/.search", post(|s, h, o, b| search(s, h, o, b, None)))
            .route("/ServiceProviderConfig", discovery(Discovery::Config))
            .route("/Schemas", discovery(Discovery::Schemas))
            .route("/Schemas/{id}", discovery_one(Discovery::Schemas))
            .route("/ResourceTypes", discovery(Discovery::ResourceTypes))
            .route(
                "/ResourceTypes/{id}",
                discovery_one(Discovery::ResourceTypes),
            )
            .fallback(|| async { fail(StatusCode::NOT_FOUND, None, "no such endpoint") })
            .method_not_allowed_fallback(|| async {
                fail(
                    StatusCode::METHOD_NOT_ALLOWED,
                    None,
                    "this endpoint does not take that method",
                )
            })
            .with_state(self.inner.clone())
    }
}

type St<S> = State<Arc<Inner<S>>>;
type Route<S> = MethodRouter<Arc<Inner<S>>>;

/// A SCIM answer: the body as `application/scim+json`.
fn answer(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    r
}

/// A request refused: answered as an error (RFC 7644 section 3.12).
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: String,
}

fn fail(status: StatusCode, scim_type: Option<&'static str>, detail: impl Into<String>) -> Refusal {
    Refusal {
        status,
        scim_type,
        detail: detail.into(),
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let e = ScimError::new(self.status.as_u16(), self.scim_type, self.detail);
        let body = serde_json::to_value(&e).unwrap_or(Value::Null);
        let mut r = answer(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"SCIM\""),
            );
        }
        r
    }
}

fn store_fail(e: StoreError) -> Refusal {
    match e {
        StoreError::Taken(attr) => fail(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            format!("another resource has this {attr}"),
        ),
        StoreError::NotFound => fail(StatusCode::NOT_FOUND, None, "no such resource"),
        StoreError::Changed => fail(
            StatusCode::PRECONDITION_FAILED,
            None,
            "the resource changed since the version given",
        ),
        // The host's error stays in the host's logs.
        StoreError::Failed(_) => fail(StatusCode::INTERNAL_SERVER_ERROR, None, "the store failed"),
    }
}

/// The tenant the request's bearer token acts for.
fn tenant<'a, S>(inner: &'a Inner<S>, headers: &HeaderMap) -> Result<&'a str, Refusal> {
    let unauthorized = || {
        fail(
            StatusCode::UNAUTHORIZED,
            None,
            "a valid bearer token is required",
        )
    };
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unauthorized)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(unauthorized)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(unauthorized());
    }
    inner
        .tenants
        .tenant_of(token.trim())
        .ok_or_else(unauthorized)
}

/// Where the router is: the configured base URL, or the request's path
/// up to the endpoint.
fn base<S>(inner: &Inner<S>, original: &axum::http::Uri, endpoint: &str) -> String {
    if let Some(b) = &inner.config.base_url {
        return b.clone();
    }
    let path = original.path();
    match path.find(&format!("/{endpoint}")) {
        Some(i) => path.get(..i).unwrap_or_default().to_owned(),
        None => String::new(),
    }
}

async fn body_of(body: Body, limit: usize) -> Result<Value, Refusal> {
    let bytes: Bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        fail(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            format!("the request body is larger than {limit} bytes"),
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        fail(
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            format!("the body is not JSON: {e}"),
        )
    })
}

fn content_type_ok(headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(());
    };
    let mime = ct.split(';').next().unwrap_or_default().trim();
    if mime.eq_ignore_ascii_case(SCIM_JSON) || mime.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(fail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            format!("send {SCIM_JSON} or application/json, not {mime}"),
        ))
    }
}

fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// Whether `If-Match` (when sent) names the resource's version.
fn precondition(headers: &HeaderMap, version: u64) -> Result<(), Refusal> {
    let Some(want) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let ok = want.split(',').any(|tag| {
        let tag = tag.trim();
        tag == "*" || tag.trim_start_matches("W/").trim_matches('"') == version.to_string()
    });
    if ok {
        Ok(())
    } else {
        Err(fail(
            StatusCode::PRECONDITION_FAILED,
            None,
            format!(
                "If-Match {want} is not the resource's version {}",
                etag(version)
            ),
        ))
    }
}

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
fn accept(kind: Kind, body: Value) -> Result<Map<String, Value>, Refusal> {
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

fn check_type(d: &AttrDef, v: &Value, name: &str) -> Result<(), Refusal> {
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
async fn check_members<S: ScimStore>(
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

fn new_id() -> Result<String, Refusal> {
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

/// `attributes` and `excludedAttributes`, as paths.
#[derive(Debug, Default)]
struct Shape {
    attributes: Vec<AttrPath>,
    excluded: Vec<AttrPath>,
}

fn paths(list: &str) -> Result<Vec<AttrPath>, Refusal> {
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
fn names(p: &AttrPath, schema: &ResourceSchema, key: &str, sub: Option<&str>) -> bool {
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
    fn apply(&self, kind: Kind, resource: &mut Value) {
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

/// The query parameters, names ignoring case.
fn params(raw: Option<&str>) -> Result<Vec<(String, String)>, Refusal> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    serde_urlencoded::from_str::<Vec<(String, String)>>(raw)
        .map(|v| {
            v.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect()
        })
        .map_err(|e| {
            fail(
                StatusCode::BAD_REQUEST,
                Some("invalidSyntax"),
                format!("the query string: {e}"),
            )
        })
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn shape_of(params: &[(String, String)]) -> Result<Shape, Refusal> {
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

/// A resource as answered: JSON, a user's groups filled in, shaped.
async fn rendered<S: ScimStore>(
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

fn with_headers(mut r: Response, version: u64, location: Option<String>) -> Response {
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    if let Some(l) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        r.headers_mut().insert(header::LOCATION, l);
    }
    r
}

async fn create<S: ScimStore>(
    State(inner): St<S>,
    headers: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    body: Body,
    kind: Kind,
) -> Response {
    let run = async {
        let tenant = tenant(&inner, &headers)?;
        content_type_ok(&headers)?;
        let body = body_of(body, inner.config.max_body).await?;
        let attributes = accept(kind, body)?;
        check_members(&inner, tenant, kind, &attributes).await?;
        let r = Stored::new(new_id()?, attributes, inner.clock.now());
        inner
            .store
            .insert(tenant, kind, r.clone())
            .await
            .map_err(store_fail)?;
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

async fn read<S: ScimStore>(
    State(inner): St<S>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
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
            .ok_or_else(|| {
                fail(
                    StatusCode::NOT_FOUND,
                    None,
                    format!("no {} {id}", kind.as_str()),
                )
            })?;
        let base = base(&inner, &uri, kind.endpoint());
        let v = rendered(&inner, tenant, kind, &r, &base, &shape).await?;
        Ok::<_, Refusal>(with_headers(answer(StatusCode::OK, &v), r.version, None))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

async fn replace<S: ScimStore>(
    State(inner): St<S>,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    body: Body,
    kind: Kind,
) -> Response {
    let run = async {
        let tenant = tenant(&inner, &headers)?;
        content_type_ok(&headers)?;
        let body = body_of(body, inner.config.max_body).await?;
        let attributes = accept(kind, body)?;
        check_members(&inner, tenant, kind, &attributes).await?;
        let current = inner
            .store
            .get(tenant, kind, &id)
            .await
            .map_err(store_fail)?
            .ok_or_else(|| {
                fail(
                    StatusCode::NOT_FOUND,
                    None,
                    format!("no {} {id}", kind.as_str()),
                )
            })?;
        precondition(&headers, current.version)?;
        let mut next = current.clone();
        next.attributes = attributes;
        next.version = current.version.saturating_add(1);
        next.modified = inner.clock.now();
        inner
            .store
            .update(tenant, kind, next.clone(), current.version)
            .await
            .map_err(store_fail)?;
        let base = base(&inner, &uri, kind.endpoint());
        let v = rendered(&inner, tenant, kind, &next, &base, &Shape::default()).await?;
        Ok::<_, Refusal>(with_headers(answer(StatusCode::OK, &v), next.version, None))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

async fn patch<S: ScimStore>(
    State(inner): St<S>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    body: Body,
    kind: Kind,
) -> Response {
    let run = async {
        let tenant = tenant(&inner, &headers)?;
        content_type_ok(&headers)?;
        let params = params(q.as_deref())?;
        let shape = shape_of(&params)?;
        let body = body_of(body, inner.config.max_body).await?;
        let op: PatchOp = serde_json::from_value(body).map_err(|e| {
            fail(
                StatusCode::BAD_REQUEST,
                Some("invalidSyntax"),
                format!("not a PatchOp: {e}"),
            )
        })?;
        // Without If-Match, a change made meanwhile is read again and the
        // PATCH applied to it; with it, that is a 412.
        let mut tries = 0;
        loop {
            tries += 1;
            let current = inner
                .store
                .get(tenant, kind, &id)
                .await
                .map_err(store_fail)?
                .ok_or_else(|| {
                    fail(
                        StatusCode::NOT_FOUND,
                        None,
                        format!("no {} {id}", kind.as_str()),
                    )
                })?;
            precondition(&headers, current.version)?;
            let mut work = current.attributes.clone();
            work.insert("id".to_owned(), Value::String(current.id.clone()));
            op.apply(&mut work, kind.schema())
                .map_err(|e| fail(StatusCode::BAD_REQUEST, Some(e.scim_type), e.to_string()))?;
            work.remove("id");
            let attributes = accept(kind, Value::Object(work))?;
            check_members(&inner, tenant, kind, &attributes).await?;
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
                    let base = base(&inner, &uri, kind.endpoint());
                    let v = rendered(&inner, tenant, kind, &next, &base, &shape).await?;
                    return Ok::<_, Refusal>(with_headers(
                        answer(StatusCode::OK, &v),
                        next.version,
                        None,
                    ));
                }
                Err(StoreError::Changed)
                    if tries < 5 && headers.get(header::IF_MATCH).is_none() =>
                {
                    continue;
                }
                Err(e) => return Err(store_fail(e)),
            }
        }
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

async fn remove<S: ScimStore>(
    State(inner): St<S>,
    headers: HeaderMap,
    Path(id): Path<String>,
    kind: Kind,
) -> Response {
    let run = async {
        let tenant = tenant(&inner, &headers)?;
        let current = inner
            .store
            .get(tenant, kind, &id)
            .await
            .map_err(store_fail)?
            .ok_or_else(|| {
                fail(
                    StatusCode::NOT_FOUND,
                    None,
                    format!("no {} {id}", kind.as_str()),
                )
            })?;
        precondition(&headers, current.version)?;
        if !inner
            .store
            .delete(tenant, kind, &id)
            .await
            .map_err(store_fail)?
        {
            return Err(fail(
                StatusCode::NOT_FOUND,
                None,
                format!("no {} {id}", kind.as_str()),
            ));
        }
        Ok::<_, Refusal>(StatusCode::NO_CONTENT.into_response())
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// What a list or search asks.
struct Ask {
    query: Query,
    shape: Shape,
}

fn ask<S>(
    inner: &Inner<S>,
    filter: Option<&str>,
    sort_by: Option<&str>,
    sort_order: Option<&str>,
    start: Option<i64>,
    count: Option<i64>,
    shape: Shape,
) -> Result<Ask, Refusal> {
    let filter = filter
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            f.parse::<Filter>().map_err(|e| {
                fail(
                    StatusCode::BAD_REQUEST,
                    Some(crate::filter::FilterError::SCIM_TYPE),
                    e.to_string(),
                )
            })
        })
        .transpose()?;
    let sort_by = sort_by
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            crate::filter::parse_attr_path(s.trim())
                .map_err(|e| fail(StatusCode::BAD_REQUEST, Some("invalidPath"), e))
        })
        .transpose()?;
    let descending = match sort_order.map(str::to_ascii_lowercase).as_deref() {
        None | Some("ascending") => false,
        Some("descending") => true,
        Some(other) => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                Some("invalidValue"),
                format!("sortOrder is ascending or descending, not {other}"),
            ));
        }
    };
    // RFC 7644 section 3.4.2.4: below 1 is 1; a negative count is 0.
    let start_index = u64::try_from(start.unwrap_or(1).max(1)).unwrap_or(1);
    let count = u64::try_from(count.unwrap_or(i64::MAX).max(0))
        .unwrap_or(0)
        .min(inner.config.max_results);
    Ok(Ask {
        query: Query {
            filter,
            sort_by,
            descending,
            start_index,
            count,
        },
        shape,
    })
}

fn int(params: &[(String, String)], name: &str) -> Result<Option<i64>, Refusal> {
    param(params, name)
        .map(|v| {
            v.trim().parse::<i64>().map_err(|_| {
                fail(
                    StatusCode::BAD_REQUEST,
                    Some("invalidValue"),
                    format!("{name} is an integer, not {v:?}"),
                )
            })
        })
        .transpose()
}

async fn list<S: ScimStore>(
    State(inner): St<S>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    kind: Kind,
) -> Response {
    let run = async {
        let tenant = tenant(&inner, &headers)?;
        let p = params(q.as_deref())?;
        let a = ask(
            &inner,
            param(&p, "filter"),
            param(&p, "sortby"),
            param(&p, "sortorder"),
            int(&p, "startindex")?,
            int(&p, "count")?,
            shape_of(&p)?,
        )?;
        let base = base(&inner, &uri, kind.endpoint());
        page(&inner, tenant, &[kind], &a, &base).await
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

async fn page<S: ScimStore>(
    inner: &Inner<S>,
    tenant: &str,
    kinds: &[Kind],
    a: &Ask,
    base: &str,
) -> Result<Response, Refusal> {
    let mut total = 0u64;
    let mut out = Vec::new();
    // Across kinds (a root search): users first, then groups, one index.
    let mut skip = a.query.start_index.saturating_sub(1);
    let mut left = a.query.count;
    for &kind in kinds {
        let mut q = a.query.clone();
        q.start_index = skip.saturating_add(1);
        q.count = left;
        let found = inner
            .store
            .query(tenant, kind, &q)
            .await
            .map_err(store_fail)?;
        total = total.saturating_add(found.total);
        skip = skip.saturating_sub(found.total);
        left = left.saturating_sub(u64::try_from(found.resources.len()).unwrap_or(u64::MAX));
        for r in &found.resources {
            out.push(rendered(inner, tenant, kind, r, base, &a.shape).await?);
        }
    }
    let list = ListResponse::new(out, total, a.query.start_index);
    let body = serde_json::to_value(&list).unwrap_or(Value::Null);
    Ok(answer(StatusCode::OK, &body))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchRequest {
    #[serde(default)]
    attributes: Option<Value>,
    #[serde(default)]
    excluded_attributes: Option<Value>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    sort_by: Option<String>,
    #[serde(default)]
    sort_order: Option<String>,
    #[serde(default)]
    start_index: Option<i64>,
    #[serde(default)]
    count: Option<i64>,
}

/// `attributes` in a search body: a list, or one comma-separated string.
fn listed(v: Option<Value>) -> Result<Vec<AttrPath>, Refusal> {
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

async fn search<S: ScimStore>(
    State(inner): St<S>,
    headers: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    body: Body,
    kind: Option<Kind>,
) -> Response {
    let run = async {
        let tenant = tenant(&inner, &headers)?;
        content_type_ok(&headers)?;
        let body = body_of(body, inner.config.max_body).await?;
        let s: SearchRequest = serde_json::from_value(body).map_err(|e| {
            fail(
                StatusCode::BAD_REQUEST,
                Some("invalidSyntax"),
                format!("not a SearchRequest: {e}"),
            )
        })?;
        let shape = Shape {
            attributes: listed(s.attributes)?,
            excluded: listed(s.excluded_attributes)?,
        };
        let a = ask(
            &inner,
            s.filter.as_deref(),
            s.sort_by.as_deref(),
            s.sort_order.as_deref(),
            s.start_index,
            s.count,
            shape,
        )?;
        let kinds: &[Kind] = match kind {
            Some(Kind::User) => &[Kind::User],
            Some(Kind::Group) => &[Kind::Group],
            None => &[Kind::User, Kind::Group],
        };
        let endpoint = kind.map_or(".search", Kind::endpoint);
        let base = base(&inner, &uri, endpoint);
        page(&inner, tenant, kinds, &a, &base).await
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Clone, Copy)]
enum Discovery {
    Config,
    Schemas,
    ResourceTypes,
}

fn schemas() -> Vec<types::Schema> {
    use crate::schema::{
        COMMON, ENTERPRISE_ATTRIBUTES, ENTERPRISE_USER, GROUP, GROUP_ATTRIBUTES, USER,
        USER_ATTRIBUTES,
    };
    vec![
        types::Schema::from_defs(USER, "User", "User Account", &[COMMON, USER_ATTRIBUTES]),
        types::Schema::from_defs(
            ENTERPRISE_USER,
            "EnterpriseUser",
            "Enterprise User",
            &[ENTERPRISE_ATTRIBUTES],
        ),
        types::Schema::from_defs(GROUP, "Group", "Group", &[COMMON, GROUP_ATTRIBUTES]),
    ]
}

fn resource_types() -> Vec<Value> {
    use crate::schema::{ENTERPRISE_USER, GROUP, USER};
    vec![
        json!({"schemas": [types::RESOURCE_TYPE], "id": "User", "name": "User", "endpoint": "/Users",
               "description": "User Account", "schema": USER,
               "schemaExtensions": [{"schema": ENTERPRISE_USER, "required": false}]}),
        json!({"schemas": [types::RESOURCE_TYPE], "id": "Group", "name": "Group", "endpoint": "/Groups",
               "description": "Group", "schema": GROUP}),
    ]
}

fn config_json<S>(inner: &Inner<S>) -> Value {
    json!({
        "schemas": [types::SERVICE_PROVIDER_CONFIG],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": inner.config.max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a bearer token issued per tenant",
            "specUri": "https://www.rfc-editor.org/info/rfc6750",
            "primary": true
        }],
        "meta": {"resourceType": "ServiceProviderConfig"}
    })
}

fn discovery<S: ScimStore>(what: Discovery) -> Route<S> {
    get(move |State(inner): St<S>, headers: HeaderMap| async move {
        if let Err(e) = tenant(&inner, &headers) {
            return e.into_response();
        }
        let body = match what {
            Discovery::Config => config_json(&inner),
            Discovery::Schemas => {
                let all: Vec<Value> = schemas()
                    .iter()
                    .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
                    .collect();
                serde_json::to_value(ListResponse::new(all, 3, 1)).unwrap_or(Value::Null)
            }
            Discovery::ResourceTypes => {
                serde_json::to_value(ListResponse::new(resource_types(), 2, 1))
                    .unwrap_or(Value::Null)
            }
        };
        answer(StatusCode::OK, &body)
    })
}

fn discovery_one<S: ScimStore>(what: Discovery) -> Route<S> {
    get(
        move |State(inner): St<S>, headers: HeaderMap, Path(id): Path<String>| async move {
            if let Err(e) = tenant(&inner, &headers) {
                return e.into_response();
            }
            let found = match what {
                Discovery::Schemas => schemas()
                    .into_iter()
                    .find(|s| s.id.eq_ignore_ascii_case(&id))
                    .and_then(|s| serde_json::to_value(s).ok()),
                Discovery::ResourceTypes => resource_types().into_iter().find(|r| {
                    r["id"]
                        .as_str()
                        .is_some_and(|i| i.eq_ignore_ascii_case(&id))
                }),
                Discovery::Config => None,
            };
            match found {
                Some(v) => answer(StatusCode::OK, &v),
                None => fail(StatusCode::NOT_FOUND, None, format!("no {id}")).into_response(),
            }
        },
    )
}
