//! `MemoryStore`: everything in memory, for tests and for embedding without persistence.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prov_core::{AccountId, EntitlementId, IdentityId, Result, TargetId};

use super::{Claim, Completion, Holder, OutboxEntry, Store};
use crate::audit::{AuditEvent, AuditKey, AuditRecord};
use crate::leases::{LeaseRecord, LeaseState};
use crate::leavers::LeaverRecord;
use crate::ledger::{EntitlementRecord, GrantChange, GrantRecord, LedgerChange, Link};

#[derive(Debug, Default)]
struct State {
    links: BTreeMap<(TargetId, AccountId), Link>,
    /// Each identity's links, so that an event reads only its own.
    by_identity: BTreeMap<IdentityId, BTreeSet<(TargetId, AccountId)>>,
    audit: Vec<AuditRecord>,
    outbox: BTreeMap<(String, String), OutboxEntry>,
    leases: BTreeMap<String, LeaseRecord>,
    claims: BTreeMap<TargetId, Claim>,
    leavers: BTreeMap<IdentityId, LeaverRecord>,
    /// The grant ledger: each account's entitlements granted by the engine, with when.
    grants: BTreeMap<(TargetId, AccountId), BTreeMap<EntitlementId, DateTime<Utc>>>,
    /// The entitlement ledger: entitlements the engine created.
    created: BTreeMap<(TargetId, EntitlementId), EntitlementRecord>,
    /// Each target's change token.
    tokens: BTreeMap<TargetId, String>,
}

impl State {
    fn put_link(&mut self, link: &Link) {
        let key = (link.target.clone(), link.account.clone());
        let mut link = link.clone();
        if let Some(old) = self.remove_link(&key) {
            link.origin = old.origin.kept_with(link.origin);
        }
        self.by_identity
            .entry(link.identity.clone())
            .or_default()
            .insert(key.clone());
        self.links.insert(key, link);
    }

    fn remove_link(&mut self, key: &(TargetId, AccountId)) -> Option<Link> {
        let old = self.links.remove(key)?;
        if let Some(keys) = self.by_identity.get_mut(&old.identity) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_identity.remove(&old.identity);
            }
        }
        Some(old)
    }

    fn apply(&mut self, change: &LedgerChange) {
        match change {
            LedgerChange::Put(link) => self.put_link(link),
            LedgerChange::Remove { target, account } => {
                let key = (target.clone(), account.clone());
                self.remove_link(&key);
                self.grants.remove(&key);
            }
            LedgerChange::Move { target, from, to } => {
                let key = (target.clone(), from.clone());
                if let Some(mut link) = self.remove_link(&key) {
                    link.account = to.clone();
                    self.put_link(&link);
                }
                if let Some(grants) = self.grants.remove(&key) {
                    self.grants.insert((target.clone(), to.clone()), grants);
                }
            }
            LedgerChange::Created(record) => {
                // The first record stands (its creation time).
                self.created
                    .entry((record.target.clone(), record.entitlement.clone()))
                    .or_insert_with(|| record.clone());
            }
            LedgerChange::Retired {
                target,
                entitlement,
            } => {
                self.created.remove(&(target.clone(), entitlement.clone()));
            }
        }
    }

    fn apply_grant(&mut self, change: &GrantChange) {
        match change {
            GrantChange::Granted(g) => {
                self.grants
                    .entry((g.target.clone(), g.account.clone()))
                    .or_default()
                    .insert(g.entitlement.clone(), g.granted_at);
            }
            GrantChange::Revoked {
                target,
                account,
                entitlement,
            } => {
                let key = (target.clone(), account.clone());
                if let Some(grants) = self.grants.get_mut(&key) {
                    grants.remove(entitlement);
                    if grants.is_empty() {
                        self.grants.remove(&key);
                    }
                }
            }
        }
    }

    fn seal(&mut self, events: Vec<AuditEvent>, key: Option<&AuditKey>) -> Vec<AuditRecord> {
        let mut sealed = Vec::with_capacity(events.len());
        for event in events {
            let record = AuditRecord::seal_with(self.audit.last(), event, key);
            self.audit.push(record.clone());
            sealed.push(record);
        }
        sealed
    }
}

/// A store in memory, for tests and for embedding without persistence.
///
/// One lock guards all of it, so each call is atomic as the contract asks.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    key: Option<AuditKey>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Seals audit records with `key` (builder style; see [`AuditKey`]).
    pub fn with_audit_key(mut self, key: AuditKey) -> Self {
        self.key = Some(key);
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Each call finishes its changes under the lock before it can fail,
        // so a panic elsewhere cannot leave the state half changed.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn links(&self) -> Result<Vec<Link>> {
        Ok(self.lock().links.values().cloned().collect())
    }

    async fn links_of(&self, identity: &IdentityId) -> Result<Vec<Link>> {
        let state = self.lock();
        Ok(state
            .by_identity
            .get(identity)
            .into_iter()
            .flatten()
            .filter_map(|key| state.links.get(key).cloned())
            .collect())
    }

    async fn link(&self, target: &TargetId, account: &AccountId) -> Result<Option<Link>> {
        Ok(self
            .lock()
            .links
            .get(&(target.clone(), account.clone()))
            .cloned())
    }

    async fn put_link(&self, link: &Link) -> Result<()> {
        self.lock().put_link(link);
        Ok(())
    }

    async fn remove_link(&self, target: &TargetId, account: &AccountId) -> Result<()> {
        self.lock().remove_link(&(target.clone(), account.clone()));
        Ok(())
    }

    async fn created_entitlements(&self) -> Result<Vec<EntitlementRecord>> {
        Ok(self.lock().created.values().cloned().collect())
    }

    async fn grants_of(&self, target: &TargetId, account: &AccountId) -> Result<Vec<GrantRecord>> {
        Ok(self
            .lock()
            .grants
            .get(&(target.clone(), account.clone()))
            .map(|grants| {
                grants
                    .iter()
                    .map(|(e, &at)| {
                        GrantRecord::new(target.clone(), account.clone(), e.clone(), at)
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditRecord>> {
        Ok(self.lock().seal(events, self.key.as_ref()))
    }

    async fn audit_range(&self, from: u64, limit: usize) -> Result<Vec<AuditRecord>> {
        Ok(self
            .lock()
            .audit
            .iter()
            .filter(|r| r.seq >= from)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn audit_head(&self) -> Result<Option<AuditRecord>> {
        Ok(self.lock().audit.last().cloned())
    }

    async fn outbox_begin(&self, entries: &[OutboxEntry]) -> Result<()> {
        let mut state = self.lock();
        for e in entries {
            state
                .outbox
                .insert((e.run.clone(), e.op.id.clone()), e.clone());
        }
        Ok(())
    }

    async fn complete(&self, done: Vec<Completion>) -> Result<Vec<AuditRecord>> {
        let mut state = self.lock();
        let mut events = Vec::with_capacity(done.len());
        for c in done {
            let was_open = state.outbox.remove(&(c.run, c.op)).is_some();
            if c.if_open && !was_open {
                continue;
            }
            if let Some(change) = &c.ledger {
                state.apply(change);
            }
            if let Some(change) = &c.grant {
                state.apply_grant(change);
            }
            events.push(c.event);
        }
        Ok(state.seal(events, self.key.as_ref()))
    }

    async fn outbox_open(&self) -> Result<Vec<OutboxEntry>> {
        let mut open: Vec<OutboxEntry> = self.lock().outbox.values().cloned().collect();
        open.sort_by_key(|e| e.begun);
        Ok(open)
    }

    async fn claim(
        &self,
        claim: &Claim,
        targets: &[TargetId],
        now: chrono::DateTime<chrono::Utc>,
        dead: &[String],
    ) -> Result<Option<Holder>> {
        let mut state = self.lock();
        for t in targets {
            if let Some(held) = state.claims.get(t)
                && held.run != claim.run
                && held.until >= now
                && !dead.contains(&held.run)
            {
                return Ok(Some(Holder {
                    target: t.clone(),
                    claim: held.clone(),
                }));
            }
        }
        for t in targets {
            state.claims.insert(t.clone(), claim.clone());
        }
        Ok(None)
    }

    async fn renew(&self, claim: &Claim) -> Result<()> {
        for held in self.lock().claims.values_mut() {
            if held.run == claim.run {
                held.until = claim.until;
            }
        }
        Ok(())
    }

    async fn release(&self, run: &str) -> Result<()> {
        self.lock().claims.retain(|_, c| c.run != run);
        Ok(())
    }

    async fn claims(&self) -> Result<Vec<Claim>> {
        let mut by_run: BTreeMap<String, Claim> = BTreeMap::new();
        for c in self.lock().claims.values() {
            let e = by_run.entry(c.run.clone()).or_insert_with(|| c.clone());
            e.until = e.until.max(c.until);
        }
        Ok(by_run.into_values().collect())
    }

    async fn put_lease(&self, lease: &LeaseRecord) -> Result<()> {
        self.lock().leases.insert(lease.id.clone(), lease.clone());
        Ok(())
    }

    async fn decide_lease(
        &self,
        lease: &LeaseRecord,
        expected: LeaseState,
        event: AuditEvent,
    ) -> Result<bool> {
        let mut state = self.lock();
        if state.leases.get(&lease.id).map(|l| l.state) != Some(expected) {
            return Ok(false);
        }
        state.leases.insert(lease.id.clone(), lease.clone());
        state.seal(vec![event], self.key.as_ref());
        Ok(true)
    }

    async fn lease(&self, id: &str) -> Result<Option<LeaseRecord>> {
        Ok(self.lock().leases.get(id).cloned())
    }

    async fn leases_of(&self, identity: &IdentityId) -> Result<Vec<LeaseRecord>> {
        Ok(self
            .lock()
            .leases
            .values()
            .filter(|l| &l.request.identity == identity)
            .cloned()
            .collect())
    }

    async fn leases(&self) -> Result<Vec<LeaseRecord>> {
        Ok(self.lock().leases.values().cloned().collect())
    }

    async fn put_leaver(&self, leaver: &LeaverRecord) -> Result<()> {
        self.lock()
            .leavers
            .entry(leaver.identity.clone())
            .or_insert_with(|| leaver.clone());
        Ok(())
    }

    async fn remove_leaver(&self, identity: &IdentityId) -> Result<bool> {
        Ok(self.lock().leavers.remove(identity).is_some())
    }

    async fn leavers(&self) -> Result<Vec<LeaverRecord>> {
        Ok(self.lock().leavers.values().cloned().collect())
    }

    async fn leaver(&self, identity: &IdentityId) -> Result<Option<LeaverRecord>> {
        Ok(self.lock().leavers.get(identity).cloned())
    }

    async fn change_token(&self, target: &TargetId) -> Result<Option<String>> {
        Ok(self.lock().tokens.get(target).cloned())
    }

    async fn put_change_token(&self, target: &TargetId, token: &str) -> Result<()> {
        self.lock().tokens.insert(target.clone(), token.to_owned());
        Ok(())
    }
}
