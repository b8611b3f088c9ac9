//! Planning options: correlation rules, orphan handling, the deletion
//! safeguard, per target.

use std::collections::BTreeMap;

use prov_core::TargetId;
use serde::{Deserialize, Serialize};

/// A correlation rule: an existing account belongs to an identity when the
/// account's field equals the identity's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Correlation {
    /// `login` or an account attribute (`mail`, `employeeNumber`).
    pub account_field: String,
    /// `login` (the desired login), `id` (the identity id) or an identity attribute.
    pub identity_field: String,
}

impl Correlation {
    /// `account_field` on the account equals `identity_field` on the identity.
    pub fn new(account_field: impl Into<String>, identity_field: impl Into<String>) -> Self {
        Correlation {
            account_field: account_field.into(),
            identity_field: identity_field.into(),
        }
    }

    /// The account's login equals the login the policy gives the identity.
    pub fn login() -> Self {
        Self::new("login", "login")
    }

    /// Whether this is the rule [`login`](Self::login) makes.
    pub fn is_login(&self) -> bool {
        self.account_field == "login" && self.identity_field == "login"
    }
}

/// Which existing accounts, held by no link, the planner may take as an
/// identity's own on the strength of their login alone.
///
/// An account with the login the policy gives someone may belong to
/// someone else (a former employee's `jsmith`, a service account): linking
/// it would re-enable it, overwrite its attributes and grant it access.
/// So by default such a match is a [`Conflict`](crate::Conflict) for a
/// person to decide; correlation rules on attributes (`mail = email`,
/// `employeeNumber = id`) still link, since they say whose account it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Adopt {
    /// A login match is a conflict, never a link (the default).
    #[default]
    None,
    /// A login match links the account (a target whose existing accounts
    /// are known to be their holders', such as one being taken over from
    /// another tool).
    Login,
}

/// Accounts a target's planning leaves alone: `field` (`login` or an
/// account attribute) equal to `pattern` ignoring ASCII case, or starting
/// with what precedes a final `*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Exclude {
    /// `login` or an account attribute.
    pub field: String,
    /// The value, or a prefix followed by `*`.
    pub pattern: String,
}

impl Exclude {
    /// Accounts whose `field` matches `pattern`.
    pub fn new(field: impl Into<String>, pattern: impl Into<String>) -> Self {
        Exclude {
            field: field.into(),
            pattern: pattern.into(),
        }
    }

    /// Parses `field=pattern` (as the `prov` config writes it).
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once('=') {
            Some((f, p)) if !f.trim().is_empty() && !p.trim().is_empty() => {
                Ok(Self::new(f.trim(), p.trim()))
            }
            _ => Err(format!(
                "`{text}` is not FIELD=VALUE (such as login=svc-* or employeeType=service)"
            )),
        }
    }

    /// Whether `account` matches.
    pub fn matches(&self, account: &prov_core::Account) -> bool {
        let value = match self.field.as_str() {
            "login" => Some(std::borrow::Cow::Borrowed(account.login.as_str())),
            attr => match account.attributes.get(attr) {
                Some(prov_core::Value::String(s)) => Some(std::borrow::Cow::Borrowed(s.as_str())),
                Some(prov_core::Value::Int(i)) => Some(std::borrow::Cow::Owned(i.to_string())),
                Some(prov_core::Value::Bool(b)) => Some(std::borrow::Cow::Owned(b.to_string())),
                _ => None,
            },
        };
        let Some(value) = value else { return false };
        match self.pattern.strip_suffix('*') {
            Some(prefix) => value
                .get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix)),
            None => value.eq_ignore_ascii_case(&self.pattern),
        }
    }
}

/// What an identity's disappearance from the sources means on a target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Absent {
    /// A leaver: its accounts are disabled now and deleted after the grace
    /// period, under the deletion safeguard (so a truncated export is
    /// blocked rather than obeyed). The default.
    #[default]
    Leaver,
    /// Nothing: its accounts are orphans (reported, or handled by the
    /// orphan policy).
    Ignore,
}

/// What happens to accounts no identity explains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OrphanPolicy {
    /// Reported, left alone (the default).
    #[default]
    Report,
    /// Disabled.
    Disable,
    /// Deleted when the engine created them; disabled otherwise.
    Delete,
}

/// The deletion safeguard: a plan that would disable or delete more than
/// this on one target is blocked until explicitly allowed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Safety {
    /// Most removals as a share of the target's accounts (default 0.2, as
    /// Okta's import safeguard).
    pub max_share: f64,
    /// Most removals in absolute numbers, if set.
    pub max_count: Option<usize>,
    /// Removals always allowed whatever the share, so that one leaver on a
    /// small target is not blocked (default 5).
    pub always_allowed: usize,
}

impl Default for Safety {
    fn default() -> Self {
        Safety {
            max_share: 0.2,
            max_count: None,
            always_allowed: 5,
        }
    }
}

/// Per-target planning options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TargetOptions {
    /// Correlation rules, tried in order (default: by login). A rule on
    /// `login` links only under [`Adopt::Login`]; otherwise its match is a
    /// conflict.
    pub correlation: Vec<Correlation>,
    /// Whether a login match alone links an account (default: no).
    pub adopt: Adopt,
    /// What an identity gone from the sources means here (default: a leaver).
    pub absent: Absent,
    /// Orphan handling.
    pub orphans: OrphanPolicy,
    /// Whether the orphan policy also disables or deletes accounts no link
    /// holds (the engine neither created nor linked them: an administrator,
    /// a service account). Default no: they are reported only.
    pub orphans_unlinked: bool,
    /// Accounts the planner leaves alone unless linked: never correlated
    /// to anyone, never orphans (`login = "svc-*"`, `employeeType = "service"`).
    pub exclude: Vec<Exclude>,
    /// The deletion safeguard.
    pub safety: Safety,
    /// Whether accounts the engine linked but did not create may be
    /// deleted (leavers past their grace period, orphans); default no.
    pub delete_linked: bool,
    /// Whether the target can disable accounts (from its capabilities; the
    /// `Engine` sets these three). When it cannot, leavers lose their access
    /// and the plan says their accounts stay enabled.
    pub can_disable: bool,
    /// Whether the target can delete accounts.
    pub can_delete: bool,
    /// Whether the target can change a login (rename).
    pub can_rename: bool,
    /// Whether the target compares logins ignoring ASCII case (from
    /// [`Capabilities::login_case_insensitive`](prov_core::Capabilities);
    /// the `Engine` sets it): logins that differ only in case are then the
    /// same login, for correlation, for "taken", and for renames.
    pub login_case_insensitive: bool,
    /// The longest login the target takes, in characters (from
    /// [`Capabilities::max_login_len`](prov_core::Capabilities); the
    /// `Engine` sets it): a longer one is a problem, not a create or a
    /// rename.
    pub max_login_len: Option<usize>,
    /// Whether the engine creates the entitlements (groups) the policy
    /// names and the target lacks, before granting them, and deletes the
    /// ones it created once no policy names them, after revoking them
    /// from their holders (counted by the deletion safeguard). Default
    /// no: a grant of a missing group fails.
    pub create_entitlements: bool,
    /// Whether the target can create and delete entitlements (from
    /// [`Capabilities::create_entitlement`](prov_core::Capabilities); the
    /// `Engine` sets it).
    pub can_create_entitlements: bool,
}

impl Default for TargetOptions {
    fn default() -> Self {
        TargetOptions {
            correlation: vec![Correlation::login()],
            adopt: Adopt::None,
            absent: Absent::Leaver,
            orphans_unlinked: false,
            exclude: Vec::new(),
            orphans: OrphanPolicy::Report,
            safety: Safety::default(),
            delete_linked: false,
            can_disable: true,
            can_delete: true,
            can_rename: true,
            login_case_insensitive: false,
            max_login_len: None,
            create_entitlements: false,
            can_create_entitlements: true,
        }
    }
}

/// Planning options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PlanOptions {
    /// Options per target; targets not named get `default`.
    pub targets: BTreeMap<TargetId, TargetOptions>,
    /// Options for targets not named.
    pub default: TargetOptions,
}

impl PlanOptions {
    /// The options of `t`.
    pub fn for_target(&self, t: &TargetId) -> &TargetOptions {
        self.targets.get(t).unwrap_or(&self.default)
    }
}
