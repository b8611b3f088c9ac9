//! What a connector can do, as data the engine and the conformance suite read.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A rate limit a target publishes (or that configuration imposes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RateLimit {
    /// Requests allowed per `period`.
    pub requests: u32,
    /// The window the limit counts over.
    pub period: Duration,
    /// Requests that may go at once after a quiet spell.
    pub burst: u32,
}

impl RateLimit {
    /// `requests` per `period`, with a burst of the same size.
    pub fn new(requests: u32, period: Duration) -> Self {
        RateLimit {
            requests,
            period,
            burst: requests,
        }
    }
}

/// What a connector can do.
///
/// The engine plans around it (no disable step for a target that cannot
/// disable, batches no larger than [`max_batch`](Self::max_batch)) and the
/// conformance suite picks its cases from it: a case whose capability is
/// absent is skipped, and the suite then checks that the call answers
/// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported).
///
/// `Capabilities::default()` is a read-only connector that can list and get
/// accounts; set the fields for what yours adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Capabilities {
    /// `create_account` works.
    pub create: bool,
    /// `update_account` works.
    pub update: bool,
    /// `update_account` can change the login (an LDAP modrdn, a SCIM userName change).
    pub rename: bool,
    /// `set_enabled` works (the target can disable an account without deleting it).
    pub disable: bool,
    /// `delete_account` works.
    pub delete: bool,
    /// `list_entitlements` works.
    pub list_entitlements: bool,
    /// `grant` and `revoke` work.
    pub grant_revoke: bool,
    /// `list_members` works.
    pub list_members: bool,
    /// Accounts from `list_accounts` and `get_account` carry their entitlements.
    pub lists_memberships: bool,
    /// `changes_since` works.
    pub changes_since: bool,
    /// `create_entitlement` and `delete_entitlement` work: the engine may
    /// create a group the policy names and the target lacks, and retire
    /// one it created (where the target's options allow).
    pub create_entitlement: bool,
    /// The connector keeps [`CreateAccount::marker`](crate::CreateAccount)
    /// with the account it creates and returns it as
    /// [`Account::marker`](crate::Account): after a create whose reply was
    /// lost, the engine adopts an account with the login as its own only
    /// when it carries the create's marker.
    pub create_marker: bool,
    /// Most accounts one `grant` or `revoke` request carries to the target
    /// (100 on AWS identitystore, 20 on Microsoft Graph, 500 by default on LDAP).
    /// A larger batch given to the connector is split by it, never refused.
    pub max_batch: usize,
    /// Most items the connector returns in one page.
    pub max_page_size: usize,
    /// The target's published rate limit, if any.
    pub rate_limit: Option<RateLimit>,
    /// Requests the connector can usefully have in flight at once.
    pub max_concurrency: usize,
    /// Attribute names `ListRequest::filter` may use; empty when filtering is unsupported.
    pub filter_attributes: Vec<String>,
    /// The target compares logins ignoring ASCII case (LDAP's `uid`, SCIM's
    /// `userName`, Active Directory's `sAMAccountName`): `JSmith` and
    /// `jsmith` are one login, so the planner matches them and never
    /// plans a create the target would refuse as taken, nor a rename that
    /// changes only case.
    pub login_case_insensitive: bool,
    /// The longest login the target takes, in characters (Active
    /// Directory's `sAMAccountName`: 20); `None` for no limit. The planner
    /// makes a longer login a problem, never a create or a rename the
    /// target would refuse.
    pub max_login_len: Option<usize>,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            create: false,
            update: false,
            rename: false,
            disable: false,
            delete: false,
            list_entitlements: false,
            grant_revoke: false,
            list_members: false,
            lists_memberships: false,
            changes_since: false,
            create_entitlement: false,
            max_login_len: None,
            create_marker: false,
            max_batch: 1,
            max_page_size: 100,
            rate_limit: None,
            max_concurrency: 1,
            filter_attributes: Vec::new(),
            login_case_insensitive: false,
        }
    }
}

impl Capabilities {
    /// Whether `a` and `b` are one login on this target (ASCII case
    /// ignored when [`login_case_insensitive`](Self::login_case_insensitive)).
    pub fn same_login(&self, a: &str, b: &str) -> bool {
        if self.login_case_insensitive {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    }

    /// Everything on, with the given batch limit: what a full read-write
    /// connector (LDAP, SCIM) offers, logins compared ignoring case.
    pub fn full(max_batch: usize) -> Self {
        Capabilities {
            create: true,
            update: true,
            rename: true,
            disable: true,
            delete: true,
            list_entitlements: true,
            grant_revoke: true,
            list_members: true,
            lists_memberships: true,
            changes_since: true,
            create_entitlement: false,
            max_login_len: None,
            create_marker: false,
            max_batch: max_batch.max(1),
            max_page_size: 100,
            rate_limit: None,
            max_concurrency: 4,
            filter_attributes: vec!["login".to_owned()],
            login_case_insensitive: true,
        }
    }
}
