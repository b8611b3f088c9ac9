//! The `Store` trait: what the engine keeps between runs.
//!
//! This first cut holds the ownership ledger (links). Leases, the outbox,
//! the audit log and sync tokens, and the SQLite and PostgreSQL
//! implementations, follow (issue 3).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use prov_core::{AccountId, Result, TargetId};

use crate::audit::{AuditEvent, AuditRecord};
use crate::planner::Link;

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
}

/// A store in memory, for tests and for embedding without persistence.
#[derive(Debug, Default)]
pub struct MemoryStore {
    links: Mutex<BTreeMap<(TargetId, AccountId), Link>>,
    audit: Mutex<Vec<AuditRecord>>,
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
}
