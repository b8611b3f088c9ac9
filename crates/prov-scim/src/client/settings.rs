//! The connector's settings as a settings file writes them (the `prov`
//! command's `kind = "scim"` targets), with documented defaults.

use std::path::Path;

use prov_core::{Error, SecretRef};
use serde::Deserialize;

use super::{
    Auth, ClientCredentials, ClientOptions, Profile, ScimClient, ScimConnector, ScimLimits,
};

/// A SCIM target's settings:
///
/// ```toml
/// base_url = "https://scim.eu-west-1.amazonaws.com/TENANT/scim/v2"
/// profile = "aws"
/// token = { env = "SCIM_TOKEN" }
/// ```
///
/// Exactly one of `token`, `basic` and `oauth2` says how to sign in.
/// Unknown keys are refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ScimSettings {
    /// The service's SCIM base URL, `https://...`. Required.
    pub base_url: String,
    /// What the service publishes about itself: `generic` (the default),
    /// `aws`, `github`, `slack`, `atlassian`, `zoom` ([`Profile::ALL`]).
    #[serde(default = "generic")]
    pub profile: String,
    /// A bearer token, `{ env = "VAR" }` or `{ file = "PATH" }`.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// HTTP Basic: `{ user = "...", password = { env = "VAR" } }`.
    #[serde(default)]
    pub basic: Option<BasicSettings>,
    /// OAuth 2.0 client credentials.
    #[serde(default)]
    pub oauth2: Option<OAuth2Settings>,
    /// Membership changes per PATCH (default: the profile's; at most it).
    #[serde(default)]
    pub members_per_patch: Option<usize>,
    /// Users or groups per page (default: the profile's; at most it).
    #[serde(default)]
    pub page_size: Option<usize>,
    /// Check that accounts exist before adding them to a group (default
    /// true; turn off for a service that refuses unknown members itself).
    #[serde(default = "yes")]
    pub verify_members: bool,
    /// How long one request may take, in seconds (default 30).
    #[serde(default = "timeout")]
    pub timeout_secs: u64,
    /// Send credentials over plain `http://` (default false: refused). For
    /// a test server on the loopback.
    #[serde(default)]
    pub danger_plaintext: bool,
}

/// HTTP Basic credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BasicSettings {
    /// The user.
    pub user: String,
    /// The password, `{ env = "VAR" }` or `{ file = "PATH" }`.
    pub password: SecretRef,
}

/// OAuth 2.0 client credentials (RFC 6749 section 4.4).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OAuth2Settings {
    /// The token endpoint, `https://...`.
    pub token_url: String,
    /// The client's id.
    pub client_id: String,
    /// The client's secret, `{ env = "VAR" }` or `{ file = "PATH" }`.
    pub client_secret: SecretRef,
    /// Scopes asked for, space separated (default none).
    #[serde(default)]
    pub scope: String,
    /// Send the id and secret in the form body rather than by HTTP Basic
    /// (default false).
    #[serde(default)]
    pub credentials_in_body: bool,
}

fn generic() -> String {
    "generic".to_owned()
}
fn yes() -> bool {
    true
}
fn timeout() -> u64 {
    30
}

/// A number within a profile's published limit; none means the
/// profile's number. Where the profile's numbers are generic defaults
/// rather than published caps, a larger number is the caller's to choose.
fn within(
    key: &str,
    given: Option<usize>,
    profile: &Profile,
    most: usize,
) -> prov_core::Result<usize> {
    match given {
        None => Ok(most),
        Some(0) => Err(Error::invalid_input(key, "must be at least 1")),
        Some(n) if n > most && profile.published_limits => Err(Error::invalid_input(
            key,
            format!(
                "{key} = {n} is above profile `{}`'s published limit of {most}",
                profile.name
            ),
        )),
        Some(n) => Ok(n),
    }
}

impl ScimSettings {
    /// The profile these settings name.
    pub fn profile(&self) -> prov_core::Result<&'static Profile> {
        Profile::named(&self.profile).ok_or_else(|| {
            Error::invalid_input(
                "profile",
                format!(
                    "unknown profile {:?} (known: {})",
                    self.profile,
                    Profile::names()
                ),
            )
        })
    }

    /// The connector these settings describe; secrets read from their
    /// variables or files (relative paths from `base`). An error names the key.
    pub fn into_connector(self, base: &Path) -> prov_core::Result<ScimConnector> {
        let profile = self.profile()?;
        let reveal =
            |key: &str, s: &SecretRef| s.reveal(base).map_err(|e| Error::invalid_input(key, e));
        let auth = match (&self.token, &self.basic, &self.oauth2) {
            (Some(t), None, None) => Auth::Bearer(reveal("token", t)?),
            (None, Some(b), None) => Auth::Basic {
                user: b.user.clone(),
                password: reveal("basic.password", &b.password)?,
            },
            (None, None, Some(o)) => {
                let mut c = ClientCredentials::new(
                    &o.token_url,
                    &o.client_id,
                    reveal("oauth2.client_secret", &o.client_secret)?,
                )
                .with_scope(&o.scope);
                c.credentials_in_body = o.credentials_in_body;
                Auth::OAuth2(c)
            }
            (None, None, None) => {
                return Err(Error::invalid_input(
                    "token",
                    "say how to sign in: `token`, `basic` or `oauth2`",
                ));
            }
            _ => {
                return Err(Error::invalid_input(
                    "token",
                    "give only one of `token`, `basic` and `oauth2`",
                ));
            }
        };
        let mut limits = ScimLimits::of(profile);
        limits.members_per_patch = within(
            "members_per_patch",
            self.members_per_patch,
            profile,
            profile.members_per_patch,
        )?;
        limits.page_size = within("page_size", self.page_size, profile, profile.page_size)?;
        limits.verify_members = self.verify_members;
        let options = ClientOptions {
            timeout: std::time::Duration::from_secs(self.timeout_secs.max(1)),
            danger_plaintext: self.danger_plaintext,
            paces: profile.paces.to_vec(),
        };
        let client = ScimClient::new(&self.base_url, auth, &options).map_err(|e| {
            let field = match e.field() {
                Some("token_url") => "oauth2.token_url",
                _ => "base_url",
            };
            Error::invalid_input(field, e.message().to_owned())
        })?;
        Ok(ScimConnector::new(client, limits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::profile::{AWS, GITHUB};

    #[test]
    fn only_published_caps_refuse_a_larger_number() {
        // GitHub publishes no batch or page cap: its numbers are the
        // generic defaults, which a settings file may raise.
        assert_eq!(
            within("page_size", Some(500), &GITHUB, GITHUB.page_size).ok(),
            Some(500)
        );
        // AWS publishes 50 a page: asking for more is refused, naming it.
        let e = within("page_size", Some(51), &AWS, AWS.page_size).unwrap_err();
        assert_eq!(e.field(), Some("page_size"));
        assert!(e.message().contains("50"), "{e}");
        assert_eq!(
            within("page_size", Some(20), &AWS, AWS.page_size).ok(),
            Some(20)
        );
        assert_eq!(
            within("page_size", None, &AWS, AWS.page_size).ok(),
            Some(50)
        );
        assert!(within("page_size", Some(0), &GITHUB, 100).is_err());
    }
}
