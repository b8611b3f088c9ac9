//! The HTTP edge: answers and refusals as SCIM bodies, the bearer token,
//! the body, `Content-Type`, ETags and the query string.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{Inner, SCIM_JSON, StoreError};
use crate::types::ScimError;

/// A SCIM answer: the body as `application/scim+json`.
pub(super) fn answer(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    r
}

/// A request refused: answered as an error (RFC 7644 section 3.12).
#[derive(Debug)]
pub(super) struct Refusal {
    pub(super) status: StatusCode,
    pub(super) scim_type: Option<&'static str>,
    pub(super) detail: String,
    /// Seconds to wait, for a 429.
    pub(super) retry_after: Option<u64>,
}

pub(super) fn fail(
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: impl Into<String>,
) -> Refusal {
    Refusal {
        status,
        scim_type,
        detail: detail.into(),
        retry_after: None,
    }
}

impl Refusal {
    /// The error body (RFC 7644 section 3.12).
    pub(super) fn body(&self) -> Value {
        let e = ScimError::new(self.status.as_u16(), self.scim_type, self.detail.clone());
        serde_json::to_value(&e).unwrap_or(Value::Null)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = self.body();
        let mut r = answer(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"SCIM\""),
            );
        }
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }
}

pub(super) fn store_fail(e: StoreError) -> Refusal {
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
pub(super) fn tenant<'a, S>(inner: &'a Inner<S>, headers: &HeaderMap) -> Result<&'a str, Refusal> {
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
    let tenant = inner
        .tenants
        .tenant_of(token.trim())
        .ok_or_else(unauthorized)?;
    if let Some(limiter) = &inner.limiter
        && let Err(not_yet) = limiter.check()
    {
        let wait = not_yet.wait_time_from(governor::clock::Clock::now(limiter.clock()));
        let mut r = fail(
            StatusCode::TOO_MANY_REQUESTS,
            None,
            "too many requests: slow down",
        );
        // Whole seconds, rounded up: at least 1.
        let whole = wait.as_secs();
        let up = if wait.subsec_nanos() > 0 || whole == 0 {
            whole.saturating_add(1)
        } else {
            whole
        };
        r.retry_after = Some(up);
        return Err(r);
    }
    Ok(tenant)
}

/// Where the router is: the configured base URL, or the request's path
/// up to the endpoint.
pub(super) fn base<S>(inner: &Inner<S>, original: &axum::http::Uri, endpoint: &str) -> String {
    if let Some(b) = &inner.config.base_url {
        return b.clone();
    }
    let path = original.path();
    match path.find(&format!("/{endpoint}")) {
        Some(i) => path.get(..i).unwrap_or_default().to_owned(),
        None => String::new(),
    }
}

pub(super) async fn body_of(body: Body, limit: usize) -> Result<Value, Refusal> {
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

pub(super) fn content_type_ok(headers: &HeaderMap) -> Result<(), Refusal> {
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

pub(super) fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// Whether `If-Match` (when sent) names the resource's version.
/// The `If-Match` header, when sent.
pub(super) fn if_match(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
}

/// Whether `want` (an `If-Match`, when sent) names the version.
pub(super) fn precondition(want: Option<&str>, version: u64) -> Result<(), Refusal> {
    let Some(want) = want else {
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

pub(super) fn with_headers(mut r: Response, version: u64, location: Option<String>) -> Response {
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    if let Some(l) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        r.headers_mut().insert(header::LOCATION, l);
    }
    r
}

/// The query parameters, names ignoring case.
pub(super) fn params(raw: Option<&str>) -> Result<Vec<(String, String)>, Refusal> {
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

pub(super) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The integer parameter `name` (as the RFC spells it; looked up lower-cased).
pub(super) fn int(params: &[(String, String)], name: &str) -> Result<Option<i64>, Refusal> {
    param(params, &name.to_ascii_lowercase())
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
