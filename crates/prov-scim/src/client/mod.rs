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
mod oauth;
pub mod profile;
mod settings;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use prov_core::{BackendDetail, Error, ErrorKind, Result};
use serde_json::Value;

use crate::types::ServiceProviderConfig;

/// Everything but RFC 3986's unreserved characters is percent-encoded.
const RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `text` as one part of a URL path or query, or one value of an
/// `application/x-www-form-urlencoded` body (where `%20` is a space too).
pub(crate) fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, RESERVED).to_string()
}

/// A request that got no answer: `Timeout` when the client's time ran
/// out, else `Unavailable`; never the URL's query (it may name people).
fn unanswered(what: &str, e: reqwest::Error) -> Error {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Unavailable
    };
    Error::new(kind, format!("{what}: {}", e.without_url()))
}

/// An answer whose body could not be read.
fn unread(what: &str, e: reqwest::Error) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!("{what}: reading the answer: {}", e.without_url()),
    )
}

pub use connector::{ScimConnector, ScimLimits};
pub use oauth::ClientCredentials;
pub use profile::{METHODS, Pace, Profile, READS, Route, WRITES};
pub use settings::{BasicSettings, OAuth2Settings, ScimSettings};

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
    /// OAuth 2.0 client credentials: a bearer token from the token
    /// endpoint, kept until shortly before it expires (or until refused).
    OAuth2(ClientCredentials),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Auth::Basic { user, .. } => write!(f, "Basic({user}, <redacted>)"),
            Auth::OAuth2(c) => write!(f, "OAuth2({c:?})"),
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
    /// Rate limits to keep to: each request waits until every pace that
    /// counts it has room (a profile's [`Profile::paces`]).
    pub paces: Vec<Pace>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(30),
            danger_plaintext: false,
            paces: Vec::new(),
        }
    }
}

/// The paces a client keeps to, each with its own bucket.
struct Pacer {
    paces: Vec<(Pace, DefaultDirectRateLimiter)>,
}

impl Pacer {
    fn new(paces: &[Pace]) -> Self {
        Pacer {
            paces: paces
                .iter()
                .filter_map(|p| {
                    let per_minute = NonZeroU32::new(p.per_minute)?;
                    let burst = NonZeroU32::new(p.burst).unwrap_or(per_minute);
                    let quota = Quota::per_minute(per_minute).allow_burst(burst);
                    Some((*p, RateLimiter::direct(quota)))
                })
                .collect(),
        }
    }

    /// Waits until every pace counting `method` on `path` has room.
    async fn wait(&self, method: &reqwest::Method, path: &str) {
        for (pace, limiter) in &self.paces {
            if !pace.counts(method, path) {
                continue;
            }
            if let Some(n) = NonZeroU32::new(pace.cost_of(method)) {
                // A cost above the burst can never pass: it is sent unpaced
                // (Profile's test keeps every cost within its burst).
                let _ = limiter.until_n_ready(n).await;
            }
        }
    }
}

/// A SCIM service at a base URL (`https://host/scim/v2`).
#[derive(Clone)]
pub struct ScimClient {
    http: reqwest::Client,
    base: String,
    auth: Auth,
    tokens: Arc<oauth::TokenCache>,
    pacer: Arc<Pacer>,
    requests: Arc<std::sync::atomic::AtomicU64>,
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
        let clear = |field: &str, url: &str| {
            Error::invalid_input(
                field,
                format!(
                    "{url:?} would send the credentials in the clear: use https:// \
                     (danger_plaintext allows it, for a test server)"
                ),
            )
        };
        if base.starts_with("http://") && !options.danger_plaintext {
            return Err(clear("base_url", &base));
        }
        if let Auth::OAuth2(c) = &auth {
            if !(c.token_url.starts_with("https://") || c.token_url.starts_with("http://")) {
                return Err(Error::invalid_input(
                    "token_url",
                    format!("{:?} is not an http(s) URL", c.token_url),
                ));
            }
            if c.token_url.starts_with("http://") && !options.danger_plaintext {
                return Err(clear("token_url", &c.token_url));
            }
        }
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .build()
            .map_err(|e| Error::new(ErrorKind::Config, format!("the HTTP client: {e}")))?;
        Ok(ScimClient {
            http,
            base,
            auth,
            tokens: Arc::default(),
            pacer: Arc::new(Pacer::new(&options.paces)),
            requests: Arc::default(),
        })
    }

    /// Requests sent to the service so far (by this client and its clones;
    /// token requests not counted).
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// OAuth tokens fetched so far.
    pub fn tokens_fetched(&self) -> u64 {
        self.tokens.fetched()
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
        let token = match &self.auth {
            Auth::OAuth2(c) => Some(self.tokens.token(&self.http, c, None).await?),
            _ => None,
        };
        match self
            .send(&method, path, body, if_match, token.as_deref())
            .await
        {
            // A token the service refuses (revoked, or expired early) is
            // replaced once.
            Err(e) if e.kind() == ErrorKind::Unauthenticated && token.is_some() => {
                let Auth::OAuth2(c) = &self.auth else {
                    return Err(e);
                };
                let fresh = self.tokens.token(&self.http, c, token.as_deref()).await?;
                self.send(&method, path, body, if_match, Some(&fresh)).await
            }
            other => other,
        }
    }

    async fn send(
        &self,
        method: &reqwest::Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
        token: Option<&str>,
    ) -> Result<Reply> {
        self.pacer.wait(method, path).await;
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header(reqwest::header::ACCEPT, SCIM_JSON);
        req = match (&self.auth, token) {
            (_, Some(t)) => req.bearer_auth(t),
            (Auth::Bearer(t), None) => req.bearer_auth(t),
            (Auth::Basic { user, password }, None) => req.basic_auth(user, Some(password)),
            (Auth::OAuth2(_), None) => req,
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
        let res = req.send().await.map_err(|e| unanswered(&what, e))?;
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
        let bytes = res.bytes().await.map_err(|e| unread(&what, e))?;
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
