//! OAuth 2.0 client credentials (RFC 6749 section 4.4): the client asks
//! the token endpoint for an access token, keeps it, and asks again
//! shortly before it expires (or after the service refused it). One
//! request for a token at a time: callers that find the token stale wait
//! for the one fetch under way rather than each sending their own.

use std::time::{Duration, Instant};

use prov_core::{BackendDetail, Error, ErrorKind, Result};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::encode;

/// OAuth 2.0 client credentials. The secret never appears in `Debug`,
/// logs or errors.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientCredentials {
    /// The token endpoint, `https://...`.
    pub token_url: String,
    /// The client's id.
    pub client_id: String,
    /// The client's secret.
    pub client_secret: String,
    /// The scopes asked for, space separated (none when empty).
    pub scope: String,
    /// Send the id and secret in the form body (`client_secret_post`)
    /// instead of HTTP Basic (`client_secret_basic`, the default, which
    /// RFC 6749 section 2.3.1 requires every server to take).
    pub credentials_in_body: bool,
}

impl ClientCredentials {
    /// Credentials for the endpoint at `token_url`, sent by HTTP Basic.
    pub fn new(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        ClientCredentials {
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            scope: String::new(),
            credentials_in_body: false,
        }
    }

    /// Asking for `scope`.
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scope", &self.scope)
            .finish()
    }
}

/// A token and when to stop using it.
struct Held {
    token: String,
    /// Past this, the token is fetched again before use; `None` when the
    /// endpoint gave no lifetime (then it is kept until refused).
    renew_at: Option<Instant>,
}

/// The token a client holds, shared by its clones.
#[derive(Default)]
pub(super) struct TokenCache {
    held: Mutex<Option<Held>>,
    /// Tokens fetched so far (for tests and the bench's request counts).
    fetched: std::sync::atomic::AtomicU64,
}

/// A token is renewed this long before it expires, or at half its
/// lifetime when that is shorter.
const MARGIN: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TokenRefusal {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl TokenCache {
    /// How many tokens were fetched.
    pub(super) fn fetched(&self) -> u64 {
        self.fetched.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The token to send: the one held while it is fresh, else a new one.
    /// `stale` is a token the service just refused: it is not used again.
    pub(super) async fn token(
        &self,
        http: &reqwest::Client,
        creds: &ClientCredentials,
        stale: Option<&str>,
    ) -> Result<String> {
        let mut held = self.held.lock().await;
        if let Some(h) = held.as_ref() {
            let fresh = h.renew_at.is_none_or(|at| Instant::now() < at);
            if fresh && stale != Some(h.token.as_str()) {
                return Ok(h.token.clone());
            }
        }
        *held = None;
        let got = fetch(http, creds).await?;
        self.fetched
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = got.token.clone();
        *held = Some(got);
        Ok(token)
    }
}

/// Asks the token endpoint.
async fn fetch(http: &reqwest::Client, creds: &ClientCredentials) -> Result<Held> {
    let what = format!("POST {} (OAuth token)", creds.token_url);
    let mut body = String::from("grant_type=client_credentials");
    if !creds.scope.is_empty() {
        body.push_str(&format!("&scope={}", encode(&creds.scope)));
    }
    let mut req = http
        .post(&creds.token_url)
        .header(reqwest::header::ACCEPT, "application/json")
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        );
    if creds.credentials_in_body {
        body.push_str(&format!(
            "&client_id={}&client_secret={}",
            encode(&creds.client_id),
            encode(&creds.client_secret)
        ));
    } else {
        // RFC 6749 section 2.3.1: both form-encoded before Basic.
        req = req.basic_auth(encode(&creds.client_id), Some(encode(&creds.client_secret)));
    }
    let started = Instant::now();
    let res = req
        .body(body)
        .send()
        .await
        .map_err(|e| super::unanswered(&what, e))?;
    let status = res.status().as_u16();
    let bytes = res.bytes().await.map_err(|e| super::unread(&what, e))?;
    if !(200..300).contains(&status) {
        // RFC 6749 section 5.2: `error` and `error_description`.
        let refusal: Option<TokenRefusal> = serde_json::from_slice(&bytes).ok();
        let kind = match (status, refusal.as_ref().map(|r| r.error.as_str())) {
            (_, Some("invalid_client" | "unauthorized_client")) | (401, _) => {
                ErrorKind::Unauthenticated
            }
            (_, Some("invalid_scope")) | (403, _) => ErrorKind::PermissionDenied,
            (429, _) => ErrorKind::RateLimited,
            (500..=599, _) => ErrorKind::Unavailable,
            _ => ErrorKind::Config,
        };
        let code = match &refusal {
            Some(r) => format!("{status} {}", r.error),
            None => status.to_string(),
        };
        let detail = refusal.and_then(|r| r.error_description);
        let message = match &detail {
            Some(d) => format!("{what}: {code}: {d}"),
            None => format!("{what}: {code}"),
        };
        let mut backend = BackendDetail::default();
        backend.code = Some(code);
        backend.message = detail;
        return Err(Error::new(kind, message).with_detail(backend));
    }
    let answer: TokenAnswer = serde_json::from_slice(&bytes).map_err(|e| {
        Error::new(
            ErrorKind::Unexpected,
            format!("{what}: the answer is not a token: {e}"),
        )
    })?;
    if let Some(t) = &answer.token_type
        && !t.eq_ignore_ascii_case("bearer")
    {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("{what}: token type {t:?} (only Bearer is sent)"),
        ));
    }
    let renew_at = answer.expires_in.map(|secs| {
        let life = Duration::from_secs(secs);
        let margin = MARGIN.min(life / 2);
        started
            .checked_add(life.saturating_sub(margin))
            .unwrap_or(started)
    });
    Ok(Held {
        token: answer.access_token,
        renew_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_percent_encoded() {
        assert_eq!(encode("a b+c/é"), "a%20b%2Bc%2F%C3%A9");
        assert_eq!(encode("scim:write"), "scim%3Awrite");
    }

    #[test]
    fn the_secret_is_never_shown() {
        let c = ClientCredentials::new("https://idp/token", "app", "s3cr3t-value");
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
