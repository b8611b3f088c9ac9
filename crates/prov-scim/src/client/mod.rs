//! The SCIM client (feature `client`): the HTTP transport the connector
//! (issue 16, in progress) is built on. Every request sends
//! `application/scim+json` and the credentials; every answer that is not
//! a success becomes a [`prov_core::Error`] whose kind tells the engine
//! what to do (a 429 or 503 is `RateLimited` or `Unavailable` with the
//! wait from `Retry-After`), keeping the HTTP status, `scimType` and
//! `detail` as its backend detail. Credentials never appear in `Debug`,
//! logs or errors, and are not sent over plain `http://` unless
//! `danger_plaintext` says so.

mod connector;
mod settings;

use std::time::Duration;

use prov_core::{BackendDetail, Error, ErrorKind, Result};
use serde_json::Value;

use crate::types::ServiceProviderConfig;

pub use connector::{ScimConnector, ScimLimits};
pub use settings::ScimSettings;

/// How the client authenticates.
#[derive(Clone)]
#[non_exhaustive]
pub enum Auth {
    /// `Authorization: Bearer TOKEN`.
    Bearer(String),
    /// `Authorization: Basic ...`.
    Basic {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Auth::Basic { user, .. } => write!(f, "Basic({user}, <redacted>)"),
        }
    }
}

/// The client's settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// How long one request may take (default 30 s).
    pub timeout: Duration,
    /// Send credentials over plain `http://` (default false: refused). For
    /// a test server on the loopback.
    pub danger_plaintext: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(30),
            danger_plaintext: false,
        }
    }
}

/// A SCIM service at a base URL (`https://host/scim/v2`).
#[derive(Clone)]
pub struct ScimClient {
    http: reqwest::Client,
    base: String,
    auth: Auth,
}

impl std::fmt::Debug for ScimClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimClient")
            .field("base", &self.base)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Reply {
    /// The HTTP status (2xx).
    pub status: u16,
    /// The resource's `ETag`, when sent.
    pub etag: Option<String>,
    /// The body, when there is one (a 204 has none).
    pub body: Option<Value>,
}

/// The SCIM content type.
const SCIM_JSON: &str = "application/scim+json";

impl ScimClient {
    /// A client for the service at `base_url` authenticating with `auth`.
    pub fn new(base_url: &str, auth: Auth, options: &ClientOptions) -> Result<Self> {
        let base = base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(Error::invalid_input(
                "base_url",
                format!("{base:?} is not an http(s) URL"),
            ));
        }
        if base.starts_with("http://") && !options.danger_plaintext {
            return Err(Error::invalid_input(
                "base_url",
                format!(
                    "{base:?} would send the credentials in the clear: use https:// \
                     (danger_plaintext allows it, for a test server)"
                ),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .build()
            .map_err(|e| Error::new(ErrorKind::Config, format!("the HTTP client: {e}")))?;
        Ok(ScimClient { http, base, auth })
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `method` on `path` (relative to the base URL, `/Users?...`), with
    /// `body` and `If-Match` when given.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header(reqwest::header::ACCEPT, SCIM_JSON);
        req = match &self.auth {
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::Basic { user, password } => req.basic_auth(user, Some(password)),
        };
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, SCIM_JSON)
                .body(b.to_string());
        }
        if let Some(tag) = if_match {
            req = req.header(reqwest::header::IF_MATCH, tag);
        }
        let what = format!("{method} {path}");
        let res = req.send().await.map_err(|e| {
            // The URL may carry nothing secret; the headers never show here.
            let kind = if e.is_timeout() {
                ErrorKind::Timeout
            } else {
                ErrorKind::Unavailable
            };
            Error::new(kind, format!("{what}: {}", e.without_url()))
        })?;
        let status = res.status().as_u16();
        let etag = res
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = res
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = res.bytes().await.map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("{what}: reading the answer: {}", e.without_url()),
            )
        })?;
        let body: Option<Value> = if bytes.is_empty() {
            None
        } else {
            Some(serde_json::from_slice(&bytes).map_err(|e| {
                Error::new(
                    ErrorKind::Unexpected,
                    format!("{what}: the answer ({status}) is not JSON: {e}"),
                )
            })?)
        };
        if (200..300).contains(&status) {
            return Ok(Reply { status, etag, body });
        }
        Err(error_from(&what, status, retry_after, body.as_ref()))
    }

    /// What the service says it supports (`/ServiceProviderConfig`).
    pub async fn service_provider_config(&self) -> Result<ServiceProviderConfig> {
        let reply = self
            .request(reqwest::Method::GET, "/ServiceProviderConfig", None, None)
            .await?;
        let body = reply.body.ok_or_else(|| {
            Error::new(
                ErrorKind::Unexpected,
                "/ServiceProviderConfig answered with no body",
            )
        })?;
        serde_json::from_value(body).map_err(|e| {
            Error::new(
                ErrorKind::Unexpected,
                format!("/ServiceProviderConfig is not one: {e}"),
            )
        })
    }
}

/// The error an answer with `status` means (RFC 7644 section 3.12).
fn error_from(
    what: &str,
    status: u16,
    retry_after: Option<Duration>,
    body: Option<&Value>,
) -> Error {
    let scim_type = body
        .and_then(|b| b.get("scimType"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let detail = body
        .and_then(|b| b.get("detail"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let kind = match (status, scim_type.as_deref()) {
        (401, _) => ErrorKind::Unauthenticated,
        (403, _) => ErrorKind::PermissionDenied,
        (404, _) => ErrorKind::NotFound,
        (409, Some("uniqueness") | None) => ErrorKind::AlreadyExists,
        (409 | 412, _) => ErrorKind::Conflict,
        (429, _) => ErrorKind::RateLimited,
        (400 | 413, _) => ErrorKind::InvalidInput,
        (501, _) => ErrorKind::Unsupported,
        (503, _) | (502 | 504, _) => ErrorKind::Unavailable,
        (500..=599, _) => ErrorKind::Unavailable,
        _ => ErrorKind::Unexpected,
    };
    let code = match &scim_type {
        Some(t) => format!("{status} {t}"),
        None => status.to_string(),
    };
    let message = match &detail {
        Some(d) => format!("{what}: {code}: {d}"),
        None => format!("{what}: {code}"),
    };
    let mut backend = BackendDetail::default();
    backend.code = Some(code);
    backend.message = detail;
    let mut e = Error::new(kind, message).with_detail(backend);
    if let Some(wait) = retry_after {
        e = e.with_retry_after(wait);
    }
    e
}
