//! The plan: what the engine will do, in order, and why.

use std::fmt;

use chrono::{DateTime, Utc};
use prov_core::{AccountId, AttributeDelta, Attributes, EntitlementId, IdentityId, TargetId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The plan format's version, written into every plan.
pub const PLAN_VERSION: u32 = 2;

/// An account an operation acts on: one the target has, or one an earlier
/// operation of the same plan creates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum AccountRef {
    /// An account the target has.
    Existing {
        /// Its id on the target.
        id: AccountId,
    },
    /// The account the plan's create operation for this login makes.
    New {
        /// Its login.
        login: String,
    },
}

impl AccountRef {
    fn key(&self) -> String {
        match self {
            AccountRef::Existing { id } => format!("id:{id}"),
            AccountRef::New { login } => format!("new:{login}"),
        }
    }
}

impl fmt::Display for AccountRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountRef::Existing { id } => write!(f, "{id}"),
            AccountRef::New { login } => write!(f, "(new) {login}"),
        }
    }
}

/// What one operation does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
#[non_exhaustive]
pub enum OpKind {
    /// Create an account.
    Create {
        /// The login.
        login: String,
        /// Its attributes.
        attributes: Attributes,
        /// Whether it starts enabled.
        enabled: bool,
        /// The names of its secret attributes: their values are never in
        /// the plan, only in [`Plan::secrets`] of a plan made in this
        /// process (`Engine::apply` plans again to compute them).
        #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
        secret: std::collections::BTreeSet<String>,
    },
    /// Record that an existing account belongs to the identity (correlation):
    /// a store write, no call to the target.
    Link {
        /// The account.
        account: AccountId,
    },
    /// Forget a link whose account the target no longer lists (someone
    /// deleted it there): a store write, no call to the target.
    Unlink {
        /// The account that is gone.
        account: AccountId,
    },
    /// Change attributes (and the login, for a rename).
    Update {
        /// The account.
        account: AccountRef,
        /// What changes.
        delta: AttributeDelta,
        /// Secret attributes set again (an explicit reset,
        /// `Engine::reset_secrets`): names only, as for a create.
        #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
        secret: std::collections::BTreeSet<String>,
    },
    /// Enable or disable.
    SetEnabled {
        /// The account.
        account: AccountRef,
        /// The new state.
        enabled: bool,
    },
    /// Give an entitlement.
    Grant {
        /// The account.
        account: AccountRef,
        /// The entitlement.
        entitlement: EntitlementId,
    },
    /// Take an entitlement away.
    Revoke {
        /// The account.
        account: AccountRef,
        /// The entitlement.
        entitlement: EntitlementId,
    },
    /// Delete the account.
    Delete {
        /// The account.
        account: AccountId,
    },
    /// Create an entitlement (a group) the policy names and the target
    /// lacks, before anything is granted it (a target with
    /// `create_entitlements`).
    CreateEntitlement {
        /// Its id (the name the policy gives it).
        entitlement: EntitlementId,
    },
    /// Delete an entitlement the engine created and no policy names any
    /// more, after it is revoked from its holders.
    DeleteEntitlement {
        /// Its id.
        entitlement: EntitlementId,
    },
}

impl OpKind {
    /// The order operations run in: accounts and entitlements exist
    /// before anything is granted; access is revoked before an account is
    /// disabled; deletes of accounts, then of entitlements, last.
    pub fn phase(&self) -> u8 {
        match self {
            OpKind::Create { .. } | OpKind::Link { .. } | OpKind::Unlink { .. } => 0,
            OpKind::Update { .. }
            | OpKind::SetEnabled { enabled: true, .. }
            | OpKind::CreateEntitlement { .. } => 1,
            OpKind::Revoke { .. } => 2,
            OpKind::Grant { .. } => 3,
            OpKind::SetEnabled { enabled: false, .. } => 4,
            OpKind::Delete { .. } => 5,
            OpKind::DeleteEntitlement { .. } => 6,
        }
    }

    /// The last phase.
    pub const LAST_PHASE: u8 = 6;

    /// The operation's name (`create`, `grant`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            OpKind::Create { .. } => "create",
            OpKind::Link { .. } => "link",
            OpKind::Unlink { .. } => "unlink",
            OpKind::Update { .. } => "update",
            OpKind::SetEnabled { enabled: true, .. } => "enable",
            OpKind::SetEnabled { enabled: false, .. } => "disable",
            OpKind::Grant { .. } => "grant",
            OpKind::Revoke { .. } => "revoke",
            OpKind::Delete { .. } => "delete",
            OpKind::CreateEntitlement { .. } => "create_entitlement",
            OpKind::DeleteEntitlement { .. } => "delete_entitlement",
        }
    }

    /// Whether it takes something away that may be hard to give back.
    pub fn is_removal(&self) -> bool {
        matches!(
            self,
            OpKind::SetEnabled { enabled: false, .. } | OpKind::Delete { .. }
        )
    }

    /// The account the operation acts on, as an existing id (`false`) or
    /// a new login (`true`): the order of [`OpKind::account_key`] without
    /// formatting it (`id:` sorts before `new:`).
    fn account_order(&self) -> (bool, &str) {
        match self {
            OpKind::CreateEntitlement { .. } | OpKind::DeleteEntitlement { .. } => (false, ""),
            OpKind::Create { login, .. } => (true, login),
            OpKind::Link { account } | OpKind::Unlink { account } | OpKind::Delete { account } => {
                (false, account.as_str())
            }
            OpKind::Update { account, .. }
            | OpKind::SetEnabled { account, .. }
            | OpKind::Grant { account, .. }
            | OpKind::Revoke { account, .. } => match account {
                AccountRef::Existing { id } => (false, id.as_str()),
                AccountRef::New { login } => (true, login),
            },
        }
    }

    /// The account key the operation acts on, for ids.
    fn account_key(&self) -> String {
        match self {
            OpKind::CreateEntitlement { .. } | OpKind::DeleteEntitlement { .. } => String::new(),
            OpKind::Create { login, .. } => format!("new:{login}"),
            OpKind::Link { account } | OpKind::Unlink { account } | OpKind::Delete { account } => {
                format!("id:{account}")
            }
            OpKind::Update { account, .. }
            | OpKind::SetEnabled { account, .. }
            | OpKind::Grant { account, .. }
            | OpKind::Revoke { account, .. } => account.key(),
        }
    }

    fn entitlement(&self) -> &str {
        match self {
            OpKind::Grant { entitlement, .. }
            | OpKind::Revoke { entitlement, .. }
            | OpKind::CreateEntitlement { entitlement }
            | OpKind::DeleteEntitlement { entitlement } => entitlement.as_str(),
            _ => "",
        }
    }
}

/// One operation of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PlannedOp {
    /// Stable id: the same operation gets the same id in every plan.
    pub id: String,
    /// The target.
    pub target: TargetId,
    /// The identity it is for (`None` for orphans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityId>,
    /// The account's login, for people reading the plan (the id may be opaque).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_login: Option<String>,
    /// What it does.
    #[serde(flatten)]
    pub kind: OpKind,
    /// Why: reason chains, most specific first.
    pub reasons: Vec<String>,
    /// For an update: the account's values, as listed when planned, of the
    /// attributes it sets or removes (absent ones are not listed), so that
    /// a reader sees `mail: old -> new`. Not used to apply.
    #[serde(default, skip_serializing_if = "prov_core::Attributes::is_empty")]
    pub before: prov_core::Attributes,
}

impl PlannedOp {
    pub(crate) fn new(
        target: TargetId,
        identity: Option<IdentityId>,
        kind: OpKind,
        reasons: Vec<String>,
    ) -> Self {
        let id = op_id(&target, &kind);
        let login = match &kind {
            OpKind::Create { login, .. } => Some(login.clone()),
            _ => None,
        };
        PlannedOp {
            id,
            target,
            identity,
            account_login: login,
            kind,
            reasons,
            before: prov_core::Attributes::new(),
        }
    }

    /// The existing account the operation acts on, if any.
    pub fn existing_account(&self) -> Option<&AccountId> {
        match &self.kind {
            OpKind::Link { account } | OpKind::Unlink { account } | OpKind::Delete { account } => {
                Some(account)
            }
            OpKind::Update { account, .. }
            | OpKind::SetEnabled { account, .. }
            | OpKind::Grant { account, .. }
            | OpKind::Revoke { account, .. } => match account {
                AccountRef::Existing { id } => Some(id),
                AccountRef::New { .. } => None,
            },
            OpKind::Create { .. }
            | OpKind::CreateEntitlement { .. }
            | OpKind::DeleteEntitlement { .. } => None,
        }
    }

    /// The entitlement a create or delete of one acts on.
    pub fn entitlement_made(&self) -> Option<&EntitlementId> {
        match &self.kind {
            OpKind::CreateEntitlement { entitlement }
            | OpKind::DeleteEntitlement { entitlement } => Some(entitlement),
            _ => None,
        }
    }

    /// The plan's order: phase, target, account, entitlement. Borrowed, so
    /// that sorting millions of operations allocates nothing per comparison.
    pub(crate) fn sort_key(&self) -> (u8, &str, (bool, &str), &str) {
        (
            self.kind.phase(),
            self.target.as_str(),
            self.kind.account_order(),
            self.kind.entitlement(),
        )
    }
}

impl fmt::Display for PlannedOp {
    /// One line for people: the account by login when known (the id is in the JSON).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:<7} {}: ", self.id, self.kind.name(), self.target)?;
        let name = |a: &dyn fmt::Display| match &self.account_login {
            Some(login) => login.clone(),
            None => a.to_string(),
        };
        match &self.kind {
            OpKind::Create { login, enabled, .. } => {
                write!(f, "{login}{}", if *enabled { "" } else { " (disabled)" })?
            }
            OpKind::Link { account } | OpKind::Unlink { account } | OpKind::Delete { account } => {
                write!(f, "{}", name(account))?;
                if self.account_login.is_some() {
                    write!(f, " ({account})")?;
                }
            }
            OpKind::Update {
                account,
                delta,
                secret,
            } => {
                let mut parts: Vec<String> = delta.set.keys().map(|k| format!("set {k}")).collect();
                parts.extend(secret.iter().map(|k| format!("reset secret {k}")));
                parts.extend(delta.remove.iter().map(|k| format!("remove {k}")));
                if let Some(l) = &delta.login {
                    parts.push(format!("rename to {l}"));
                }
                write!(f, "{} ({})", name(account), parts.join(", "))?
            }
            OpKind::SetEnabled { account, .. } => write!(f, "{}", name(account))?,
            OpKind::Grant {
                account,
                entitlement,
            }
            | OpKind::Revoke {
                account,
                entitlement,
            } => write!(f, "{entitlement} for {}", name(account))?,
            OpKind::CreateEntitlement { entitlement }
            | OpKind::DeleteEntitlement { entitlement } => write!(f, "{entitlement}")?,
        }
        if let Some(who) = &self.identity {
            write!(f, " [{who}]")?;
        }
        Ok(())
    }
}

fn op_id(target: &TargetId, kind: &OpKind) -> String {
    let mut h = Sha256::new();
    for part in [
        target.as_str(),
        kind.name(),
        &kind.account_key(),
        kind.entitlement(),
    ] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex(&h.finalize()[..8])
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0xf] {
            out.push(char::from(
                DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0'),
            ));
        }
    }
    out
}

/// An account no identity explains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Orphan {
    /// The target.
    pub target: TargetId,
    /// The account.
    pub account: AccountId,
    /// Its login.
    pub login: String,
    /// Who it belonged to, when the store linked it to an identity that is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub former_identity: Option<IdentityId>,
    /// Whether the engine created it (only such orphans may be deleted).
    pub owned: bool,
}

/// Something the planner would not guess about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Conflict {
    /// The target.
    pub target: TargetId,
    /// The identity.
    pub identity: IdentityId,
    /// What is wrong.
    pub message: String,
    /// The accounts involved.
    pub accounts: Vec<AccountId>,
}

/// A target whose removals exceed its safety threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SafetyBlock {
    /// The target.
    pub target: TargetId,
    /// Accounts the plan would disable.
    pub disable: usize,
    /// Accounts the plan would delete.
    pub delete: usize,
    /// Links the plan would forget (their accounts are not listed).
    #[serde(default)]
    pub unlink: usize,
    /// For a block on one entitlement: which (its revokes are counted
    /// against its holders, so a glitch that takes one group from everyone
    /// is caught).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entitlement: Option<EntitlementId>,
    /// Revokes of `entitlement` the plan would make.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub revoke: usize,
    /// Groups the engine created that the plan would delete (`total` is
    /// then how many the entitlement ledger holds for the target).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub groups: usize,
    /// Accounts on the target now (holders of `entitlement`, for a block on one).
    pub total: usize,
    /// The threshold, for the message.
    pub threshold: String,
    /// The ids of the operations that would remove them.
    pub ops: Vec<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl fmt::Display for SafetyBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.groups > 0 {
            return write!(
                f,
                "{}: the plan would delete {} of the {} groups the engine created there, more \
                 than {}; review the operations and apply with --allow-destructive if this is \
                 intended",
                self.target, self.groups, self.total, self.threshold
            );
        }
        if let Some(e) = &self.entitlement {
            return write!(
                f,
                "{}: the plan would revoke {e} from {} of its {} holders, more than {}; review \
                 the operations and apply with --allow-destructive if this is intended",
                self.target, self.revoke, self.total, self.threshold
            );
        }
        write!(
            f,
            "{}: the plan would disable {} and delete {} of {} accounts",
            self.target, self.disable, self.delete, self.total
        )?;
        if self.unlink > 0 {
            write!(
                f,
                " and forget the links of {} accounts the target no longer lists",
                self.unlink
            )?;
        }
        write!(
            f,
            ", more than {}; review the operations and apply with --allow-destructive if this is intended",
            self.threshold
        )
    }
}

/// A whole plan: serialisable, and the same bytes for the same inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Plan {
    /// The plan format's version.
    pub version: u32,
    /// The time it was planned for.
    pub planned_for: DateTime<Utc>,
    /// A digest of everything it was made from (policy, identities, the
    /// targets' accounts, links, leases); `apply` refuses a plan whose
    /// inputs have changed since.
    pub fingerprint: String,
    /// The operations, in the order they run.
    pub ops: Vec<PlannedOp>,
    /// Accounts no identity explains.
    pub orphans: Vec<Orphan>,
    /// Correlations and logins the planner would not guess about.
    pub conflicts: Vec<Conflict>,
    /// Targets whose removals exceed their safety threshold.
    pub blocked: Vec<SafetyBlock>,
    /// Problems resolving identities (an expression failed on someone's data).
    pub problems: Vec<String>,
    /// Changes held back because a value the policy reads is missing or
    /// empty in the source (a blank HR cell, a renamed column): an
    /// identity's changes on a target whose account condition cannot be
    /// evaluated, a create or rename whose login cannot be computed, an
    /// attribute left as it is. Never turned into removals; each names the
    /// target, the identity and the value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<String>,
    /// Separation of duties: each rule an identity breaks (`identity E1:
    /// rule payments (prevent): roles ...`), and each grant held because it
    /// would complete a rule enforced as `prevent`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sod: Vec<String>,
    /// A digest of the plan's content (see [`Plan::content_digest`]), set by
    /// [`Plan::seal`]: the id audit records name the plan by, and how
    /// `Engine::apply` sees that a saved plan was edited. Empty until sealed.
    #[serde(default)]
    pub digest: String,
    /// The values of the creates' secret attributes, by operation id: in
    /// memory only (never serialised, redacted in `Debug`, not part of the
    /// digest), so a plan read from a file has none and its creates of
    /// accounts with secrets are refused by the executor.
    #[serde(skip)]
    pub secrets: std::collections::BTreeMap<String, prov_core::SecretAttributes>,
}

impl Plan {
    /// Whether the plan changes nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Counts of operations by name (`create`, `grant`, ...).
    pub fn counts(&self) -> std::collections::BTreeMap<&'static str, usize> {
        let mut out = std::collections::BTreeMap::new();
        for op in &self.ops {
            *out.entry(op.kind.name()).or_insert(0) += 1;
        }
        out
    }

    /// A digest of what the plan would do and why: its version,
    /// operations (with their reasons), orphans, conflicts, safety blocks,
    /// problems and held changes, in a canonical form. The time it was made and the fingerprint
    /// of its inputs are not part of it, so two plans that would do exactly
    /// the same have the same digest.
    pub fn content_digest(&self) -> String {
        #[derive(Serialize)]
        struct Content<'a> {
            version: u32,
            ops: &'a [PlannedOp],
            orphans: &'a [Orphan],
            conflicts: &'a [Conflict],
            blocked: &'a [SafetyBlock],
            problems: &'a [String],
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            held: &'a [String],
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            sod: &'a [String],
        }
        let content = Content {
            version: self.version,
            ops: &self.ops,
            orphans: &self.orphans,
            conflicts: &self.conflicts,
            blocked: &self.blocked,
            problems: &self.problems,
            held: &self.held,
            sod: &self.sod,
        };
        let mut h = Sha256::new();
        // Field order is fixed by the structs and maps are ordered, so the JSON is canonical.
        h.update(serde_json::to_vec(&content).unwrap_or_default());
        hex(&h.finalize()[..16])
    }

    /// Sets [`digest`](Self::digest) from the content (after any change to it).
    pub fn seal(&mut self) {
        self.digest = self.content_digest();
    }

    /// The first way in which this plan differs from `other` in what it
    /// would do, for a person: `None` when they would do exactly the same.
    pub fn first_difference(&self, other: &Plan) -> Option<String> {
        let n = self.ops.len().max(other.ops.len());
        for i in 0..n {
            match (self.ops.get(i), other.ops.get(i)) {
                (Some(a), Some(b)) if a == b => {}
                (Some(a), Some(b)) => {
                    let (ta, tb) = (a.to_string(), b.to_string());
                    return Some(if ta == tb {
                        // Same line, other details (reasons, attributes).
                        let json = |o: &PlannedOp| serde_json::to_string(o).unwrap_or_default();
                        format!(
                            "operation {}: the plan has {} where planning now gives {}",
                            i + 1,
                            json(a),
                            json(b)
                        )
                    } else {
                        format!(
                            "operation {}: the plan has `{ta}` where planning now gives `{tb}`",
                            i + 1
                        )
                    });
                }
                (Some(a), None) => {
                    return Some(format!(
                        "operation {}: the plan has `{a}`, which planning now does not give",
                        i + 1
                    ));
                }
                (None, Some(b)) => {
                    return Some(format!(
                        "operation {}: planning now gives `{b}`, which the plan lacks",
                        i + 1
                    ));
                }
                (None, None) => {}
            }
        }
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join("; ")
            }
        };
        if self.blocked != other.blocked {
            let show =
                |b: &[SafetyBlock]| list(&b.iter().map(ToString::to_string).collect::<Vec<_>>());
            return Some(format!(
                "safety blocks: the plan has {} where planning now gives {}",
                show(&self.blocked),
                show(&other.blocked)
            ));
        }
        for (what, mine, now) in [
            ("problems", &self.problems, &other.problems),
            ("separation of duties", &self.sod, &other.sod),
            ("held changes", &self.held, &other.held),
        ] {
            if mine != now {
                return Some(format!(
                    "{what}: the plan has {} where planning now gives {}",
                    list(mine),
                    list(now)
                ));
            }
        }
        if self.conflicts != other.conflicts {
            let show = |c: &[Conflict]| {
                list(
                    &c.iter()
                        .map(|c| format!("{} {}: {}", c.target, c.identity, c.message))
                        .collect::<Vec<_>>(),
                )
            };
            return Some(format!(
                "conflicts: the plan has {} where planning now gives {}",
                show(&self.conflicts),
                show(&other.conflicts)
            ));
        }
        if self.orphans != other.orphans {
            return Some(
                "orphans: the plan reports other unexplained accounts than planning now".to_owned(),
            );
        }
        if self.version != other.version {
            return Some(format!(
                "version: the plan is format {} where this prov writes {}",
                self.version, other.version
            ));
        }
        None
    }

    /// The plan as pretty JSON.
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }
}

#[cfg(test)]
mod tests {
    use super::{AccountRef, OpKind, PlannedOp};
    use prov_core::{AttributeDelta, Attributes, EntitlementId, TargetId};

    #[test]
    fn the_borrowed_sort_key_orders_as_the_formatted_account_key() {
        let existing = |id: &str| AccountRef::Existing { id: id.into() };
        let new = |login: &str| AccountRef::New {
            login: login.to_owned(),
        };
        let grant = |account, e: &str| OpKind::Grant {
            account,
            entitlement: EntitlementId::new(e),
        };
        let kinds = vec![
            grant(new("zed"), "g1"),
            grant(existing("uid=b"), "g2"),
            grant(existing("uid=b"), "g1"),
            grant(existing("uid=a,x"), "g1"),
            grant(existing("uid=a"), "g1"),
            grant(new("amy"), "g1"),
            OpKind::Revoke {
                account: existing("n"),
                entitlement: EntitlementId::new("g"),
            },
            OpKind::Create {
                login: "id".to_owned(),
                attributes: Attributes::new(),
                enabled: true,
                secret: Default::default(),
            },
            OpKind::Link {
                account: "new".into(),
            },
            OpKind::Update {
                account: new("a"),
                delta: AttributeDelta::default(),
                secret: Default::default(),
            },
            OpKind::Update {
                account: existing("zz"),
                delta: AttributeDelta::default(),
                secret: Default::default(),
            },
            OpKind::Delete {
                account: "b".into(),
            },
            OpKind::SetEnabled {
                account: existing("b"),
                enabled: false,
            },
        ];
        let mut ops: Vec<PlannedOp> = Vec::new();
        for target in ["ldap", "github"] {
            for kind in &kinds {
                ops.push(PlannedOp::new(
                    TargetId::new(target),
                    None,
                    kind.clone(),
                    Vec::new(),
                ));
            }
        }
        let mut by_text = ops.clone();
        by_text.sort_by_key(|o| {
            (
                o.kind.phase(),
                o.target.to_string(),
                o.kind.account_key(),
                o.kind.entitlement().to_owned(),
            )
        });
        ops.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let ids = |ops: &[PlannedOp]| ops.iter().map(|o| o.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&ops), ids(&by_text));
        // Phase 0 on github first, and there an existing id before a new login.
        let first: Vec<_> = ops
            .iter()
            .take(2)
            .map(|o| (o.target.as_str(), o.kind.name()))
            .collect();
        assert_eq!(first, [("github", "link"), ("github", "create")]);
        assert_eq!(ops.last().map(|o| o.kind.name()), Some("delete"));
    }
}
