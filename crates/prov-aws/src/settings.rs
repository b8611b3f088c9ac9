//! The targets' keys in a settings file (the `prov` command's
//! `[targets.ID]` tables of `kind = "aws-identity-center"` and
//! `kind = "aws-iam"`). Credentials come from the standard chain
//! (environment, profile, SSO, container or instance role), never from
//! the file: there is no key for them.

use serde::Deserialize;

use crate::{IamConfig, IamConnector, IdentityCenterConfig, IdentityCenterConnector};

fn identity_center_in_flight() -> usize {
    8
}
fn iam_in_flight() -> usize {
    4
}
fn root() -> String {
    "/".to_owned()
}

/// `kind = "aws-identity-center"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct IdentityCenterSettings {
    /// The identity store's id (`d-1234567890`). Required.
    pub identity_store_id: String,
    /// The region of the Identity Center instance; `AWS_REGION` when unset.
    #[serde(default)]
    pub region: Option<String>,
    /// Another endpoint (a VPC endpoint, an emulator); AWS's when unset.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Requests in flight at once in a grant or revoke (default 8).
    #[serde(default = "identity_center_in_flight")]
    pub max_in_flight: usize,
    /// The Identity Center instance's ARN: permission-set account
    /// assignments become entitlements named `PermissionSet@AccountId`.
    #[serde(default)]
    pub instance_arn: Option<String>,
    /// Accounts whose assignments are listed before any is made.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Seconds an assignment request may stay IN_PROGRESS (default 300).
    #[serde(default = "assignment_timeout_secs")]
    pub assignment_timeout_secs: u64,
    /// Requests a second, at most, over both APIs (default 19, under the
    /// 20 AWS documents; 0 for none).
    #[serde(default = "requests_per_second")]
    pub requests_per_second: u32,
}

fn requests_per_second() -> u32 {
    19
}

fn assignment_timeout_secs() -> u64 {
    300
}

impl IdentityCenterSettings {
    /// The connector these settings describe.
    pub fn into_connector(self) -> prov_core::Result<IdentityCenterConnector> {
        let mut cfg = IdentityCenterConfig::new(self.identity_store_id);
        cfg.region = self.region;
        cfg.endpoint_url = self.endpoint_url;
        cfg.max_in_flight = self.max_in_flight;
        cfg.instance_arn = self.instance_arn;
        cfg.accounts = self.accounts;
        cfg.assignment_timeout = std::time::Duration::from_secs(self.assignment_timeout_secs);
        cfg.requests_per_second = self.requests_per_second;
        IdentityCenterConnector::new(cfg)
    }
}

/// `kind = "aws-iam"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct IamSettings {
    /// Only users and groups under this IAM path are the target's
    /// (default `/`: the whole account).
    #[serde(default = "root")]
    pub path: String,
    /// Another endpoint (an emulator); AWS's when unset.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Requests in flight at once (default 4).
    #[serde(default = "iam_in_flight")]
    pub max_in_flight: usize,
}

impl IamSettings {
    /// The connector these settings describe.
    pub fn into_connector(self) -> prov_core::Result<IamConnector> {
        IamConnector::new(IamConfig {
            path: self.path,
            endpoint_url: self.endpoint_url,
            max_in_flight: self.max_in_flight,
        })
    }
}
