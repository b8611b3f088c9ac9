//! The ownership ledger: which identity each managed account belongs to,
//! and how the engine came to manage it. The planner reads it to decide
//! what it may disable or delete; the executor and recovery write it; the
//! store keeps it.

use prov_core::{AccountId, IdentityId, TargetId};
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
}
