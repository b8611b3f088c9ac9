//! The ownership ledger: which identity each managed account belongs to,
//! and how the engine came to manage it. The planner reads it to decide
//! what it may disable or delete; the executor and recovery write it; the
//! store keeps it.

use chrono::{DateTime, Utc};
use prov_core::{AccountId, EntitlementId, IdentityId, TargetId};
use serde::{Deserialize, Serialize};

/// How the engine came to manage an account: the ownership ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LinkOrigin {
    /// The engine created it: it may disable and delete it.
    Created,
    /// It existed and correlation linked it: disabled when its identity
    /// leaves, deleted only if the target's options allow.
    Linked,
}

impl LinkOrigin {
    /// `created` or `linked`, as stores write it.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkOrigin::Created => "created",
            LinkOrigin::Linked => "linked",
        }
    }

    /// The origin a link keeps when it is recorded again with `new`: an
    /// origin is never downgraded, so an account the engine created stays
    /// its own to delete even if correlation later links it again.
    pub fn kept_with(self, new: LinkOrigin) -> LinkOrigin {
        if self == LinkOrigin::Created || new == LinkOrigin::Created {
            LinkOrigin::Created
        } else {
            LinkOrigin::Linked
        }
    }

    /// Reads what [`as_str`](Self::as_str) wrote.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "created" => Some(LinkOrigin::Created),
            "linked" => Some(LinkOrigin::Linked),
            _ => None,
        }
    }
}

/// A record in the ownership ledger: this account on this target is this identity's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Link {
    /// The target.
    pub target: TargetId,
    /// The account.
    pub account: AccountId,
    /// Its identity.
    pub identity: IdentityId,
    /// How it came to be managed.
    pub origin: LinkOrigin,
}

impl Link {
    /// A link.
    pub fn new(
        target: TargetId,
        account: AccountId,
        identity: IdentityId,
        origin: LinkOrigin,
    ) -> Self {
        Link {
            target,
            account,
            identity,
            origin,
        }
    }
}

/// A change to the ledger that an operation's completion makes, written in
/// the same store transaction as the operation's audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "change")]
#[non_exhaustive]
pub enum LedgerChange {
    /// Records a link. An origin is never downgraded: a link the engine
    /// `created` stays `created` when the same account is linked again.
    Put(Link),
    /// Forgets the link of a deleted account.
    Remove {
        /// The target.
        target: TargetId,
        /// The account.
        account: AccountId,
    },
    /// Moves a link to the account's new id after a rename (an LDAP DN).
    Move {
        /// The target.
        target: TargetId,
        /// The id before.
        from: AccountId,
        /// The id after.
        to: AccountId,
    },
    /// Records an entitlement the engine created (the entitlement ledger).
    Created(EntitlementRecord),
    /// Forgets an entitlement the engine created, once deleted.
    Retired {
        /// The target.
        target: TargetId,
        /// The entitlement.
        entitlement: EntitlementId,
    },
}

/// An entitlement (a group) the engine created on a target: the
/// entitlement ledger. Only these are ever deleted by the engine, once no
/// policy names them; one that existed before, or whose create the
/// engine cannot prove was its own, has no record and is never deleted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EntitlementRecord {
    /// The target.
    pub target: TargetId,
    /// The entitlement's id there.
    pub entitlement: EntitlementId,
    /// When its create was recorded as done.
    pub created_at: DateTime<Utc>,
}

impl EntitlementRecord {
    /// A record of `entitlement` created on `target` at `created_at`.
    pub fn new(target: TargetId, entitlement: EntitlementId, created_at: DateTime<Utc>) -> Self {
        EntitlementRecord {
            target,
            entitlement,
            created_at,
        }
    }
}

/// When the engine granted an entitlement to an account: the grant ledger,
/// kept beside the ownership ledger so that "the newer of two grants" can
/// be told (a separation-of-duties rule with `resolve = "remove_newer"`).
/// Access the engine did not grant has no record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GrantRecord {
    /// The target.
    pub target: TargetId,
    /// The account.
    pub account: AccountId,
    /// The entitlement granted.
    pub entitlement: EntitlementId,
    /// When the grant was recorded as done (for a grant found applied by
    /// recovery: when recovery found it, which is later than the grant).
    pub granted_at: DateTime<Utc>,
}

impl GrantRecord {
    /// A grant record.
    pub fn new(
        target: TargetId,
        account: AccountId,
        entitlement: EntitlementId,
        granted_at: DateTime<Utc>,
    ) -> Self {
        GrantRecord {
            target,
            account,
            entitlement,
            granted_at,
        }
    }
}

/// A change to the grant ledger that an operation's completion makes, in
/// the same store transaction as its audit record. A deleted account's
/// records go with its link ([`LedgerChange::Remove`]), a renamed one's
/// move with it ([`LedgerChange::Move`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "change")]
#[non_exhaustive]
pub enum GrantChange {
    /// A grant was done: records (or renews) its time.
    Granted(GrantRecord),
    /// A revoke was done: forgets the record.
    Revoked {
        /// The target.
        target: TargetId,
        /// The account.
        account: AccountId,
        /// The entitlement revoked.
        entitlement: EntitlementId,
    },
}

impl GrantChange {
    /// The change a done grant or revoke of `kind` on `account` makes, at
    /// `at`; `None` for other operations.
    pub(crate) fn of(
        target: &TargetId,
        kind: &crate::plan::OpKind,
        account: &AccountId,
        at: DateTime<Utc>,
    ) -> Option<Self> {
        use crate::plan::OpKind;
        match kind {
            OpKind::Grant { entitlement, .. } => Some(GrantChange::Granted(GrantRecord::new(
                target.clone(),
                account.clone(),
                entitlement.clone(),
                at,
            ))),
            OpKind::Revoke { entitlement, .. } => Some(GrantChange::Revoked {
                target: target.clone(),
                account: account.clone(),
                entitlement: entitlement.clone(),
            }),
            _ => None,
        }
    }
}
