//! The `Store` trait: what the engine keeps between runs.
//!
//! This first cut holds the ownership ledger (links). Leases, the outbox,
//! the audit log and sync tokens, and the SQLite and PostgreSQL
//! implementations, follow (issue 3).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use prov_core::{AccountId, Result, TargetId};

use serde::{Deserialize, Serialize};

use crate::audit::{AuditEvent, AuditRecord};
use crate::leases::LeaseRecord;
use crate::plan::PlannedOp;
use crate::planner::Link;

/// An operation written down before it is sent to its target, so that a
/// process killed mid-apply leaves a trace of what may have happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OutboxEntry {
    /// The operation, as planned.
    pub op: PlannedOp,
    /// When it was begun.
    pub begun: chrono::DateTime<chrono::Utc>,
}

impl OutboxEntry {
    /// An entry for `op`, begun at `begun`.
    pub fn new(op: PlannedOp, begun: chrono::DateTime<chrono::Utc>) -> Self {
        OutboxEntry { op, begun }
    }
}

/// Durable engine state.
///
/// # Contract
///
/// Writes are durable when the call returns; reads see every write that
/// returned before them. Errors use `prov_core::Error` kinds
/// (`Unavailable` for a store that cannot be reached, which the engine
/// treats as a reason to stop, never to guess).
#[async_trait]
pub trait Store: Send + Sync {
    /// Every link, sorted by target and account.
    async fn links(&self) -> Result<Vec<Link>>;
    /// Records a link (replacing one for the same target and account).
    async fn put_link(&self, link: &Link) -> Result<()>;
    /// Forgets a link; forgetting one that is absent is not an error.
    async fn remove_link(&self, target: &TargetId, account: &AccountId) -> Result<()>;

    /// Appends events to the audit log, sealing each into the hash chain,
    /// atomically and in order; returns the sealed records.
    async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditRecord>>;

    /// The whole audit log, oldest first.
    async fn audit_log(&self) -> Result<Vec<AuditRecord>>;

    /// Writes operations down before they are sent (replacing entries with
    /// the same operation id).
    async fn outbox_begin(&self, entries: &[OutboxEntry]) -> Result<()>;

    /// Marks operations finished (done, failed or recovered): they leave the outbox.
    async fn outbox_finish(&self, op_ids: &[String]) -> Result<()>;

    /// Operations begun and never finished: what a killed process left.
    async fn outbox_open(&self) -> Result<Vec<OutboxEntry>>;

    /// Writes a lease (replacing the one with the same id).
    async fn put_lease(&self, lease: &LeaseRecord) -> Result<()>;

    /// Every lease, by id.
    async fn leases(&self) -> Result<Vec<LeaseRecord>>;
}

/// A store in memory, for tests and for embedding without persistence.
#[derive(Debug, Default)]
pub struct MemoryStore {
    links: Mutex<BTreeMap<(TargetId, AccountId), Link>>,
    audit: Mutex<Vec<AuditRecord>>,
    outbox: Mutex<BTreeMap<String, OutboxEntry>>,
    leases: Mutex<BTreeMap<String, LeaseRecord>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, BTreeMap<(TargetId, AccountId), Link>> {
        // Each write is one insert or remove: a panic elsewhere cannot leave it half done.
        self.links
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn links(&self) -> Result<Vec<Link>> {
        Ok(self.guard().values().cloned().collect())
    }

    async fn put_link(&self, link: &Link) -> Result<()> {
        self.guard()
            .insert((link.target.clone(), link.account.clone()), link.clone());
        Ok(())
    }

    async fn remove_link(&self, target: &TargetId, account: &AccountId) -> Result<()> {
        self.guard().remove(&(target.clone(), account.clone()));
        Ok(())
    }

    async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditRecord>> {
        let mut log = self
            .audit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut sealed = Vec::with_capacity(events.len());
        for event in events {
            let record = AuditRecord::seal(log.last(), event);
            log.push(record.clone());
            sealed.push(record);
        }
        Ok(sealed)
    }

    async fn audit_log(&self) -> Result<Vec<AuditRecord>> {
        Ok(self
            .audit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone())
    }

    async fn outbox_begin(&self, entries: &[OutboxEntry]) -> Result<()> {
        let mut outbox = self
            .outbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for e in entries {
            outbox.insert(e.op.id.clone(), e.clone());
        }
        Ok(())
    }

    async fn outbox_finish(&self, op_ids: &[String]) -> Result<()> {
        let mut outbox = self
            .outbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for id in op_ids {
            outbox.remove(id);
        }
        Ok(())
    }

    async fn outbox_open(&self) -> Result<Vec<OutboxEntry>> {
        Ok(self
            .outbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect())
    }

    async fn put_lease(&self, lease: &LeaseRecord) -> Result<()> {
        self.leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(lease.id.clone(), lease.clone());
        Ok(())
    }

    async fn leases(&self) -> Result<Vec<LeaseRecord>> {
        Ok(self
            .leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect())
    }
}
