//! The policy as written: TOML, JSON, or built from Rust.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Utc};
use prov_core::{IdentityId, TargetId};
use serde::{Deserialize, Serialize};

use crate::error::{PolicyError, PolicyErrors};

/// The type of an identity attribute, as declared in the policy's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum AttrType {
    /// Text.
    String,
    /// True or false.
    Bool,
    /// A signed integer.
    Int,
    /// An instant.
    Timestamp,
    /// Bytes.
    Bytes,
    /// A list of strings (multi-valued attributes such as `projects`).
    List,
}

/// A role: a named bundle of entitlements that may inherit other roles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Role {
    /// A line for people reading reviews and explanations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Roles whose entitlements this role also gives.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inherits: Vec<String>,
    /// Entitlements this role gives, per target: `ldap = ["cn=eng,ou=groups,dc=example,dc=com"]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub grants: BTreeMap<String, Vec<String>>,
    /// The longest a lease of this role may last, in days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lease_days: Option<u32>,
    /// Identities (by id) who may approve a lease of this role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// Roles whose holders (by the policy's rules and assignments, leases
    /// apart) may approve a lease of this role. With neither this nor
    /// `approvers`, no one may: a lease of the role is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approver_roles: Vec<String>,
}

impl Role {
    /// A role with no grants.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inherits `role` (builder style).
    pub fn inherit(mut self, role: impl Into<String>) -> Self {
        self.inherits.push(role.into());
        self
    }

    /// Grants `entitlement` on `target` (builder style).
    pub fn grant(mut self, target: impl Into<String>, entitlement: impl Into<String>) -> Self {
        self.grants
            .entry(target.into())
            .or_default()
            .push(entitlement.into());
        self
    }
}

/// A birthright rule: everyone whose attributes satisfy `when` gets `roles`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Rule {
    /// A CEL condition over the identity's attributes: `department == "Sales"`.
    pub when: String,
    /// Roles it gives.
    pub roles: Vec<String>,
    /// A line for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Rule {
    /// A rule giving `roles` when `when` holds.
    pub fn new(when: impl Into<String>, roles: &[&str]) -> Self {
        Rule {
            when: when.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            description: None,
        }
    }
}

/// A role given to one identity by hand, until removed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Assignment {
    /// A stable id (for explanations and audit).
    pub id: String,
    /// Who.
    pub identity: IdentityId,
    /// Which role.
    pub role: String,
    /// Why, for reviews.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Assignment {
    /// Assigns `role` to `identity`.
    pub fn new(
        id: impl Into<String>,
        identity: impl Into<IdentityId>,
        role: impl Into<String>,
    ) -> Self {
        Assignment {
            id: id.into(),
            identity: identity.into(),
            role: role.into(),
            reason: None,
        }
    }
}

/// A time-bound grant of a role: active from `valid_from` (inclusive) until
/// `valid_until` (exclusive).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Lease {
    /// A stable id.
    pub id: String,
    /// Who.
    pub identity: IdentityId,
    /// Which role.
    pub role: String,
    /// First instant the lease gives access.
    #[serde(deserialize_with = "instant")]
    pub valid_from: DateTime<Utc>,
    /// First instant it no longer does.
    #[serde(deserialize_with = "instant")]
    pub valid_until: DateTime<Utc>,
    /// Who approved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Lease {
    /// A lease of `role` for `identity` over `[from, until)`.
    pub fn new(
        id: impl Into<String>,
        identity: impl Into<IdentityId>,
        role: impl Into<String>,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Self {
        Lease {
            id: id.into(),
            identity: identity.into(),
            role: role.into(),
            valid_from: from,
            valid_until: until,
            approver: None,
            reason: None,
        }
    }

    /// Whether the lease gives access at `now` (start inclusive, end exclusive).
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.valid_from <= now && now < self.valid_until
    }
}

/// When a target should hold an account for an identity.
///
/// Written as `"entitled"`, `"always"`, `"never"`, or any other text, which
/// is a CEL condition (`account = 'level >= 3'`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
#[non_exhaustive]
pub enum AccountWhen {
    /// When the identity is entitled to anything on the target (the default).
    #[default]
    Entitled,
    /// For every identity.
    Always,
    /// Never (the target is managed for entitlements only, accounts exist already).
    Never,
    /// When a CEL condition over the identity holds.
    If(String),
}

impl From<String> for AccountWhen {
    fn from(s: String) -> Self {
        match s.trim() {
            "entitled" => AccountWhen::Entitled,
            "always" => AccountWhen::Always,
            "never" => AccountWhen::Never,
            _ => AccountWhen::If(s),
        }
    }
}

impl From<AccountWhen> for String {
    fn from(w: AccountWhen) -> Self {
        match w {
            AccountWhen::Entitled => "entitled".to_owned(),
            AccountWhen::Always => "always".to_owned(),
            AccountWhen::Never => "never".to_owned(),
            AccountWhen::If(cond) => cond,
        }
    }
}

/// What a leaver's account becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LeaverAction {
    /// Disabled now, kept.
    #[default]
    Disable,
    /// Disabled now, deleted after the grace period.
    Delete,
    /// Left enabled (access is still revoked): for accounts another process owns.
    Keep,
}

/// A leaver policy: what happens and when.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Leaver {
    /// What happens.
    #[serde(default)]
    pub action: LeaverAction,
    /// Days between termination and deletion (for `delete`).
    #[serde(default)]
    pub grace_days: u32,
}

/// How one target's accounts are made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TargetPolicy {
    /// A line for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When an account should exist.
    #[serde(default)]
    pub account: AccountWhen,
    /// The login as a CEL expression (`given_name.lowerAscii() + "." + family_name.lowerAscii()`);
    /// the identity id when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// Account attributes as CEL expressions over the identity.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// Attributes (of `attributes`) whose values are secret, such as an
    /// initial password or AD's `unicodePwd`: never written into plans,
    /// outbox rows, audit records or `Debug` output (they hold the name,
    /// and the value is computed again when the plan is applied), and
    /// write-only: set when the account is created, never compared or
    /// re-set by later plans, since they cannot be read back.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub secret: BTreeSet<String>,
    /// Attributes (of `attributes`) that an empty or missing input clears
    /// on the target. Any other attribute whose expression cannot be
    /// evaluated because a value it reads is missing or empty is left as
    /// it is on the target (neither set nor removed) and reported: a blank
    /// HR cell never erases directory data.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub empty_clears: BTreeSet<String>,
    /// What leavers' accounts become.
    #[serde(default)]
    pub leaver: Leaver,
}

/// A segregation-of-duties rule: no identity may hold two or more of these.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SodRule {
    /// A line for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Roles that must not meet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Entitlements that must not meet, as `target:entitlement`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entitlements: Vec<String>,
    /// What a plan does about it: `prevent` (the default: a grant that
    /// would complete the conflict is held and reported, and a lease that
    /// would is refused) or `report` (reported only).
    #[serde(default)]
    pub enforce: Enforce,
    /// What a `prevent` rule does about access already held on both
    /// sides: `leave` it (the default: reported, a person decides) or
    /// `remove_newer`: revoke the side granted last, when the engine's
    /// grant ledger dates every grant involved (access granted outside
    /// prov has no date, and is then reported and left alone).
    #[serde(default, skip_serializing_if = "Resolve::is_leave")]
    pub resolve: Resolve,
    /// Who may approve an exception to the rule (identity ids).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// Identities allowed to break the rule, each approved by one of
    /// `approvers` (never by themselves) with a reason: their grants are
    /// planned, each operation's reasons (and so its audit record) naming
    /// the exception.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<SodException>,
}

/// An approved exception to a segregation-of-duties rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SodException {
    /// Who may break the rule.
    pub identity: IdentityId,
    /// Who approved it: one of the rule's `approvers`.
    pub approver: String,
    /// Why.
    pub reason: String,
}

/// How a segregation-of-duties rule is enforced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Enforce {
    /// A grant that would complete the conflict is held and reported;
    /// access already held on both sides is reported and left alone
    /// (unless [`SodRule::resolve`] says to remove the newer); a lease
    /// that would complete it is refused.
    #[default]
    Prevent,
    /// Reported only.
    Report,
}

/// What a `prevent` segregation-of-duties rule does about access
/// already held on both of its sides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Resolve {
    /// Reported and left alone: a person decides.
    #[default]
    Leave,
    /// The side granted last is revoked (and then held, as any grant that
    /// would complete the rule), when every grant involved has a date in
    /// the grant ledger; otherwise reported and left alone.
    RemoveNewer,
}

impl Resolve {
    /// `leave` or `remove_newer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolve::Leave => "leave",
            Resolve::RemoveNewer => "remove_newer",
        }
    }

    fn is_leave(&self) -> bool {
        *self == Resolve::Leave
    }
}

impl Enforce {
    /// `prevent` or `report`.
    pub fn as_str(self) -> &'static str {
        match self {
            Enforce::Prevent => "prevent",
            Enforce::Report => "report",
        }
    }
}

/// A whole policy as written. Load it with [`Policy::from_toml`],
/// [`Policy::from_json`] or [`Policy::load`], or build it in Rust; then
/// [`compile`](Policy::compile) it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Policy {
    /// Identity attributes and their types. When present, every CEL
    /// expression may use only these (and `id`, `state`, `manager`,
    /// `start_date`, `end_date`), and is type-checked against them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, AttrType>,
    /// Targets and their account templates.
    #[serde(default)]
    pub targets: BTreeMap<String, TargetPolicy>,
    /// Roles by id.
    #[serde(default)]
    pub roles: BTreeMap<String, Role>,
    /// Birthright rules by id.
    #[serde(default)]
    pub rules: BTreeMap<String, Rule>,
    /// Assignments by hand.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assignments: Vec<Assignment>,
    /// Leases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leases: Vec<Lease>,
    /// Segregation-of-duties rules by id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sod: BTreeMap<String, SodRule>,
    /// Where this policy was read from, for error messages.
    #[serde(skip)]
    pub(crate) origin: Option<Origin>,
}

/// The text a policy was read from, kept to put line numbers on errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) file: Option<String>,
    pub(crate) format: Format,
    pub(crate) text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Toml,
    Json,
}

impl Policy {
    /// An empty policy, to build in Rust.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares an identity attribute (builder style).
    pub fn attribute(mut self, name: impl Into<String>, ty: AttrType) -> Self {
        self.attributes.insert(name.into(), ty);
        self
    }

    /// Adds a target (builder style).
    pub fn target(mut self, id: impl Into<String>, target: TargetPolicy) -> Self {
        self.targets.insert(id.into(), target);
        self
    }

    /// Adds a role (builder style).
    pub fn role(mut self, id: impl Into<String>, role: Role) -> Self {
        self.roles.insert(id.into(), role);
        self
    }

    /// Adds a birthright rule (builder style).
    pub fn rule(mut self, id: impl Into<String>, rule: Rule) -> Self {
        self.rules.insert(id.into(), rule);
        self
    }

    /// Adds an assignment (builder style).
    pub fn assign(mut self, assignment: Assignment) -> Self {
        self.assignments.push(assignment);
        self
    }

    /// Adds a lease (builder style).
    pub fn lease(mut self, lease: Lease) -> Self {
        self.leases.push(lease);
        self
    }

    /// Adds a segregation-of-duties rule (builder style).
    pub fn sod_rule(mut self, id: impl Into<String>, rule: SodRule) -> Self {
        self.sod.insert(id.into(), rule);
        self
    }

    /// Parses a TOML policy. Syntax errors name the line.
    pub fn from_toml(text: &str) -> Result<Self, PolicyErrors> {
        Self::parse(text, Format::Toml, None)
    }

    /// Parses a JSON policy. Syntax errors name the line.
    pub fn from_json(text: &str) -> Result<Self, PolicyErrors> {
        Self::parse(text, Format::Json, None)
    }

    /// Reads a policy file, TOML or JSON by its extension (`.json` is JSON,
    /// anything else TOML). Errors name the file and the line.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, PolicyErrors> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            PolicyErrors::from(
                PolicyError::new("", format!("cannot read the policy: {e}")).in_file(&file),
            )
        })?;
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Toml,
        };
        Self::parse(&text, format, Some(file))
    }

    fn parse(text: &str, format: Format, file: Option<String>) -> Result<Self, PolicyErrors> {
        let parsed: Result<Policy, PolicyError> = match format {
            Format::Toml => toml::from_str(text).map_err(|e| {
                let line = e.span().map(|s| line_of(text, s.start));
                let mut err = PolicyError::new("", e.message().to_owned());
                err.line = line;
                err
            }),
            Format::Json => serde_json::from_str(text).map_err(|e| {
                let mut err = PolicyError::new("", e.to_string());
                err.line = Some(e.line());
                err
            }),
        };
        match parsed {
            Ok(mut policy) => {
                policy.origin = Some(Origin {
                    file,
                    format,
                    text: text.to_owned(),
                });
                Ok(policy)
            }
            Err(mut e) => {
                e.file = file;
                Err(PolicyErrors::from(e))
            }
        }
    }

    /// The ids of the roles the policy defines, for tooling.
    pub fn role_ids(&self) -> BTreeSet<&str> {
        self.roles.keys().map(String::as_str).collect()
    }

    /// The target ids.
    pub fn target_ids(&self) -> Vec<TargetId> {
        self.targets.keys().map(TargetId::new).collect()
    }
}

/// The 1-based line of byte offset `at` in `text`.
pub(crate) fn line_of(text: &str, at: usize) -> usize {
    let at = at.min(text.len());
    text.as_bytes()
        .iter()
        .take(at)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// An instant written as an RFC 3339 string (JSON) or a TOML date-time.
fn instant<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Toml(toml::value::Datetime),
    }
    let text = match Either::deserialize(d)? {
        Either::Text(s) => s,
        Either::Toml(t) => t.to_string(),
    };
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            serde::de::Error::custom(format!(
                "`{text}` is not an RFC 3339 date-time with an offset: {e}"
            ))
        })
}
