//! The connector's settings as a settings file writes them (the `prov`
//! command's `kind = "scim"` targets), with documented defaults.

use std::path::Path;

use prov_core::SecretRef;
use serde::Deserialize;

use super::{Auth, ClientOptions, ScimClient, ScimConnector, ScimLimits};

/// A SCIM target's settings:
///
/// ```toml
/// base_url = "https://api.example.com/scim/v2"
/// token = { env = "SCIM_TOKEN" }
/// ```
///
/// Unknown keys are refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ScimSettings {
    /// The service's SCIM base URL, `https://...`. Required.
    pub base_url: String,
    /// The bearer token, `{ env = "VAR" }` or `{ file = "PATH" }`. Required.
    pub token: SecretRef,
    /// Members added or removed per PATCH (default 1000).
    #[serde(default = "members_per_patch")]
    pub members_per_patch: usize,
    /// Users or groups per page when listing (default 100).
    #[serde(default = "page_size")]
    pub page_size: usize,
    /// Check that accounts exist before adding them to a group (default
    /// true; turn off for a service that refuses unknown members itself).
    #[serde(default = "yes")]
    pub verify_members: bool,
    /// How long one request may take, in seconds (default 30).
    #[serde(default = "timeout")]
    pub timeout_secs: u64,
    /// Send the token over plain `http://` (default false: refused). For a
    /// test server on the loopback.
    #[serde(default)]
    pub danger_plaintext: bool,
}

fn members_per_patch() -> usize {
    1000
}
fn page_size() -> usize {
    100
}
fn yes() -> bool {
    true
}
fn timeout() -> u64 {
    30
}

impl ScimSettings {
    /// The connector these settings describe; the token read from its
    /// variable or file (relative paths from `base`). An error names the key.
    pub fn into_connector(self, base: &Path) -> prov_core::Result<ScimConnector> {
        let token = self
            .token
            .reveal(base)
            .map_err(|e| prov_core::Error::invalid_input("token", e))?;
        if self.members_per_patch == 0 {
            return Err(prov_core::Error::invalid_input(
                "members_per_patch",
                "must be at least 1",
            ));
        }
        if self.page_size == 0 {
            return Err(prov_core::Error::invalid_input(
                "page_size",
                "must be at least 1",
            ));
        }
        let options = ClientOptions {
            timeout: std::time::Duration::from_secs(self.timeout_secs.max(1)),
            danger_plaintext: self.danger_plaintext,
        };
        let client = ScimClient::new(&self.base_url, Auth::Bearer(token), &options)
            .map_err(|e| prov_core::Error::invalid_input("base_url", e.message().to_owned()))?;
        let limits = ScimLimits {
            members_per_patch: self.members_per_patch,
            page_size: self.page_size,
            verify_members: self.verify_members,
        };
        Ok(ScimConnector::new(client, limits))
    }
}
