//! The identity model: who people are, and what targets hold for them.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::ids::{AccountId, EntitlementId, IdentityId, TargetId};
use crate::value::{Attributes, Value};

/// Where a person stands in the joiner-mover-leaver cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LifecycleState {
    /// Hired but not started: accounts may be prepared, usually disabled.
    PreHire,
    /// Working: gets what policy gives.
    Active,
    /// Temporarily away (leave, investigation): accounts disabled, kept.
    Suspended,
    /// Gone: access revoked at once, accounts disabled, deleted after a grace period.
    Terminated,
}

impl LifecycleState {
    /// The state's name as written in sources and policies (`pre_hire`, `active`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleState::PreHire => "pre_hire",
            LifecycleState::Active => "active",
            LifecycleState::Suspended => "suspended",
            LifecycleState::Terminated => "terminated",
        }
    }

    /// Parses a state name; accepts `pre_hire`, `prehire`, `pre-hire` and any case.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "pre_hire" | "prehire" => Some(LifecycleState::PreHire),
            "active" => Some(LifecycleState::Active),
            "suspended" => Some(LifecycleState::Suspended),
            "terminated" => Some(LifecycleState::Terminated),
            _ => None,
        }
    }
}

/// A person (or a service identity) as the sources describe them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Identity {
    /// Stable id, usually the HR employee number.
    pub id: IdentityId,
    /// Lifecycle state.
    pub state: LifecycleState,
    /// First working day, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<NaiveDate>,
    /// Last working day (contractors, leavers), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<NaiveDate>,
    /// The manager's identity id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<IdentityId>,
    /// The moment the identity left, when known to the second (a leaver
    /// event, or when the engine first saw it terminated or gone from the
    /// sources): it is a leaver from then on, and grace periods count from
    /// it. Sources leave it unset; the engine fills it from its store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Typed attributes (`given_name`, `department`, `email`, ...).
    #[serde(default)]
    pub attributes: Attributes,
}

impl Identity {
    /// An active identity with no attributes.
    pub fn new(id: impl Into<IdentityId>) -> Self {
        Identity {
            id: id.into(),
            state: LifecycleState::Active,
            start_date: None,
            end_date: None,
            manager: None,
            left_at: None,
            attributes: Attributes::new(),
        }
    }

    /// Sets an attribute (builder style).
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attributes.insert(name.into(), value.into());
        self
    }

    /// Sets the lifecycle state (builder style).
    pub fn with_state(mut self, state: LifecycleState) -> Self {
        self.state = state;
        self
    }

    /// Sets the manager (builder style).
    pub fn with_manager(mut self, manager: impl Into<IdentityId>) -> Self {
        self.manager = Some(manager.into());
        self
    }

    /// Sets the start and end dates (builder style).
    pub fn with_dates(mut self, start: Option<NaiveDate>, end: Option<NaiveDate>) -> Self {
        self.start_date = start;
        self.end_date = end;
        self
    }

    /// An attribute's value.
    pub fn attr(&self, name: &str) -> Option<&Value> {
        self.attributes.get(name)
    }
}

/// An account as a target holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Account {
    /// The target's own id (a DN, a SCIM id).
    pub id: AccountId,
    /// The login name (`uid`, `userName`, `sAMAccountName`).
    pub login: String,
    /// Attributes in the model's names (connectors map them to the target's).
    #[serde(default)]
    pub attributes: Attributes,
    /// Whether the account can sign in.
    pub enabled: bool,
    /// Entitlements the account holds, when the connector reports them with
    /// the account ([`Capabilities::lists_memberships`](crate::Capabilities)).
    #[serde(default)]
    pub entitlements: BTreeSet<EntitlementId>,
    /// The marker its create carried ([`CreateAccount::marker`](crate::CreateAccount)),
    /// when the connector keeps one
    /// ([`Capabilities::create_marker`](crate::Capabilities)): the proof that
    /// a given create made this account and not someone else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

impl Account {
    /// An enabled account with no attributes or entitlements.
    pub fn new(id: impl Into<AccountId>, login: impl Into<String>) -> Self {
        Account {
            id: id.into(),
            login: login.into(),
            attributes: Attributes::new(),
            enabled: true,
            entitlements: BTreeSet::new(),
            marker: None,
        }
    }
}

/// What kind of access an entitlement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EntitlementKind {
    /// A group: membership is the access.
    Group,
    /// A target-side role.
    Role,
    /// A policy or permission set.
    Policy,
    /// A licence or seat.
    License,
    /// Anything else.
    Other,
}

/// A grantable piece of access on a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Entitlement {
    /// The target's own id for it.
    pub id: EntitlementId,
    /// What it is.
    pub kind: EntitlementKind,
    /// A human name, when the target has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

impl Entitlement {
    /// A group entitlement.
    pub fn group(id: impl Into<EntitlementId>) -> Self {
        Entitlement {
            id: id.into(),
            kind: EntitlementKind::Group,
            display_name: None,
        }
    }
}

/// An entitlement on a particular target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EntitlementRef {
    /// The target.
    pub target: TargetId,
    /// The entitlement on it.
    pub entitlement: EntitlementId,
}

impl std::fmt::Display for EntitlementRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.target, self.entitlement)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_state_parses_common_spellings() {
        assert_eq!(
            LifecycleState::parse("Pre-Hire"),
            Some(LifecycleState::PreHire)
        );
        assert_eq!(
            LifecycleState::parse(" TERMINATED "),
            Some(LifecycleState::Terminated)
        );
        assert_eq!(LifecycleState::parse("gone"), None);
    }

    #[test]
    fn identity_round_trips_through_json() {
        let who = Identity::new("e1")
            .with("department", "Sales")
            .with("level", 3)
            .with_manager("e0")
            .with_dates(NaiveDate::from_ymd_opt(2026, 1, 5), None);
        let json = serde_json::to_string(&who).unwrap_or_default();
        let back: Identity = serde_json::from_str(&json).unwrap_or_else(|_| Identity::new("x"));
        assert_eq!(back, who);
    }
}
