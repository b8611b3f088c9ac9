//! The `Store` trait: what the engine keeps between runs, and its
//! implementations (memory, SQLite, PostgreSQL).
//!
//! A store holds the ownership ledger (links and their origins), the audit
//! log, the outbox of operations in flight, and leases. Everything the trait
//! uses is exported here, so a host can bring its own store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prov_core::{AccountId, IdentityId, Result, TargetId};
use serde::{Deserialize, Serialize};

use crate::audit::{AuditEvent, AuditRecord};
use crate::leases::{LeaseRecord, LeaseState};
use crate::leavers::LeaverRecord;
use crate::ledger::{EntitlementRecord, GrantChange, GrantRecord, LedgerChange, Link};
use crate::plan::PlannedOp;

mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

/// An operation written down before it is sent to its target, so that a
/// process killed mid-apply leaves a trace of what may have happened.
///
/// Entries are keyed by run and operation: two runs that plan the same
/// operation (operation ids are stable across plans) never share an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OutboxEntry {
    /// The run that began it.
    pub run: String,
    /// The process that ran it (`host:pid`), for people reading a recovery.
    #[serde(default)]
    pub owner: String,
    /// The operation, as planned.
    pub op: PlannedOp,
    /// When it was begun.
    pub begun: DateTime<Utc>,
}

impl OutboxEntry {
    /// An entry for `op` of `run`, begun at `begun`.
    pub fn new(
        run: impl Into<String>,
        owner: impl Into<String>,
        op: PlannedOp,
        begun: DateTime<Utc>,
    ) -> Self {
        OutboxEntry {
            run: run.into(),
            owner: owner.into(),
            op,
            begun,
        }
    }
}

/// A run's claim on targets: held until `until`, renewed while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Claim {
    /// The run.
    pub run: String,
    /// The process (`host:pid`).
    pub owner: String,
    /// When the claim lapses unless renewed.
    pub until: DateTime<Utc>,
}

impl Claim {
    /// A claim by `run` of `owner` until `until`.
    pub fn new(run: impl Into<String>, owner: impl Into<String>, until: DateTime<Utc>) -> Self {
        Claim {
            run: run.into(),
            owner: owner.into(),
            until,
        }
    }
}

/// Who holds a target another run wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Holder {
    /// The target.
    pub target: TargetId,
    /// The holder's claim.
    pub claim: Claim,
}

/// How an operation in the outbox ended, written in one transaction: its
/// ledger change, its audit record, and the removal of its outbox entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Completion {
    /// The run whose entry this closes.
    pub run: String,
    /// The operation's id.
    pub op: String,
    /// The ledger change the operation makes (a create's link, a delete's
    /// removal, a rename's move), if any.
    pub ledger: Option<LedgerChange>,
    /// The grant ledger change it makes (a grant's time, a revoke's
    /// removal), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<GrantChange>,
    /// The audit record's content.
    pub event: AuditEvent,
    /// Written only if its outbox entry is still open (recovery: two
    /// processes recovering one entry at once record it once).
    #[serde(default)]
    pub if_open: bool,
}

impl Completion {
    /// A completion of `op` in `run`, recorded as `event`.
    pub fn new(run: impl Into<String>, op: impl Into<String>, event: AuditEvent) -> Self {
        Completion {
            run: run.into(),
            op: op.into(),
            ledger: None,
            grant: None,
            event,
            if_open: false,
        }
    }

    /// With a ledger change (builder style).
    pub fn with_ledger(mut self, change: LedgerChange) -> Self {
        self.ledger = Some(change);
        self
    }

    /// With a grant ledger change (builder style).
    pub fn with_grant(mut self, change: GrantChange) -> Self {
        self.grant = Some(change);
        self
    }
}

/// Durable engine state.
///
/// # Contract
///
/// - Writes are durable when the call returns; reads see every write that
///   returned before them.
/// - [`complete`](Store::complete) is atomic: for each completion, the
///   ledger changes (links and grants), the audit record and the removal of the outbox entry
///   happen together or not at all. This is what makes "every call that
///   changed a target has exactly one audit record" hold through crashes: an
///   entry leaves the outbox only in the transaction that records it.
/// - The audit log is one hash chain: appends from several tasks (and, for
///   a shared store, several processes) are serialised, each batch whole
///   and in order.
/// - An origin is never downgraded: putting a `linked` link over a
///   `created` one keeps `created`.
/// - Errors use `prov_core::Error` kinds (`Unavailable` for a store that
///   cannot be reached, which the engine treats as a reason to stop, never
///   to guess).
///
/// # Implementing
///
/// Run the engine's store tests against the implementation (see
/// `crates/prov-engine/tests/it/store.rs`: one function, every store).
#[async_trait]
pub trait Store: Send + Sync {
    /// Every link, sorted by target and account.
    async fn links(&self) -> Result<Vec<Link>>;
    /// One identity's links, sorted by target and account.
    async fn links_of(&self, identity: &IdentityId) -> Result<Vec<Link>>;
    /// The link of one account, if any.
    async fn link(&self, target: &TargetId, account: &AccountId) -> Result<Option<Link>>;
    /// Records a link (replacing one for the same target and account, but
    /// never downgrading its origin).
    async fn put_link(&self, link: &Link) -> Result<()>;
    /// Forgets a link; forgetting one that is absent is not an error.
    async fn remove_link(&self, target: &TargetId, account: &AccountId) -> Result<()>;

    /// The grant ledger's records for one account: when the engine granted
    /// each of the entitlements it still holds by the engine's hand.
    async fn grants_of(&self, target: &TargetId, account: &AccountId) -> Result<Vec<GrantRecord>>;

    /// The entitlement ledger: every entitlement the engine created and
    /// has not deleted, sorted by target and entitlement. Written by
    /// completions ([`LedgerChange::Created`], [`LedgerChange::Retired`]).
    async fn created_entitlements(&self) -> Result<Vec<EntitlementRecord>>;

    /// Appends events to the audit log, sealing each into the hash chain,
    /// atomically and in order; returns the sealed records.
    async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditRecord>>;

    /// Up to `limit` audit records from sequence number `from` (1-based), oldest first.
    async fn audit_range(&self, from: u64, limit: usize) -> Result<Vec<AuditRecord>>;

    /// The last audit record, if any: the chain's head.
    async fn audit_head(&self) -> Result<Option<AuditRecord>>;

    /// The whole audit log, oldest first.
    async fn audit_log(&self) -> Result<Vec<AuditRecord>> {
        let mut out: Vec<AuditRecord> = Vec::new();
        loop {
            let from = out.last().map_or(1, |r| r.seq.saturating_add(1));
            let page = self.audit_range(from, 10_000).await?;
            if page.is_empty() {
                return Ok(out);
            }
            out.extend(page);
        }
    }

    /// Writes operations down before they are sent, in one transaction
    /// (replacing entries with the same run and operation id).
    async fn outbox_begin(&self, entries: &[OutboxEntry]) -> Result<()>;

    /// Closes outbox entries, each with its ledger change and audit record,
    /// in one transaction (see the contract); returns the sealed records.
    async fn complete(&self, done: Vec<Completion>) -> Result<Vec<AuditRecord>>;

    /// Operations begun and never completed: what a killed process left (or
    /// what a live one has in flight), oldest first.
    async fn outbox_open(&self) -> Result<Vec<OutboxEntry>>;

    /// Claims `targets` for `claim.run`, all or none, in one transaction:
    /// a target held by another run whose claim has not lapsed at `now`
    /// (and is not in `dead`: runs known to have ended, such as a killed
    /// process on this host) is not taken, and its holder is returned.
    /// Claiming again as the same run extends the claim.
    async fn claim(
        &self,
        claim: &Claim,
        targets: &[TargetId],
        now: DateTime<Utc>,
        dead: &[String],
    ) -> Result<Option<Holder>>;

    /// Extends every claim of `claim.run` to `claim.until` (the heartbeat).
    async fn renew(&self, claim: &Claim) -> Result<()>;

    /// Ends every claim of `run`.
    async fn release(&self, run: &str) -> Result<()>;

    /// Every run's claim (one per run, the latest `until`), for recovery:
    /// the open entries of a run whose claim has not lapsed are its own.
    async fn claims(&self) -> Result<Vec<Claim>>;

    /// Writes a lease (replacing the one with the same id).
    async fn put_lease(&self, lease: &LeaseRecord) -> Result<()>;

    /// Changes a lease only if it is still in state `expected` (compare and
    /// set), appending `event` to the audit log in the same transaction.
    /// Returns whether it changed: `false` means someone decided first, and
    /// nothing was written. An approve and a reject of one request at once
    /// therefore never both succeed.
    async fn decide_lease(
        &self,
        lease: &LeaseRecord,
        expected: LeaseState,
        event: AuditEvent,
    ) -> Result<bool>;

    /// One lease by id.
    async fn lease(&self, id: &str) -> Result<Option<LeaseRecord>>;

    /// One identity's leases, by id.
    async fn leases_of(&self, identity: &IdentityId) -> Result<Vec<LeaseRecord>>;

    /// Every lease, by id.
    async fn leases(&self) -> Result<Vec<LeaseRecord>>;

    /// Remembers a leaver; an identity already recorded keeps its record
    /// (the first moment of leaving stands).
    async fn put_leaver(&self, leaver: &LeaverRecord) -> Result<()>;

    /// Forgets a leaver record; returns whether there was one.
    async fn remove_leaver(&self, identity: &IdentityId) -> Result<bool>;

    /// Every leaver record, by identity.
    async fn leavers(&self) -> Result<Vec<LeaverRecord>>;

    /// One identity's leaver record, if any.
    async fn leaver(&self, identity: &IdentityId) -> Result<Option<LeaverRecord>>;

    /// The change token kept for `target` ([`Connector::changes_since`](prov_core::Connector::changes_since)),
    /// if any: the changes before it have been applied.
    async fn change_token(&self, target: &TargetId) -> Result<Option<String>>;

    /// Keeps `token` as `target`'s change token, in place of the one before.
    async fn put_change_token(&self, target: &TargetId, token: &str) -> Result<()>;
}
