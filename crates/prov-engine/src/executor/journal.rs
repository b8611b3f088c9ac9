//! The apply's journal: outbox entries begun before operations are sent,
//! and completions (audit record, ledger change, entry removed) written in
//! grouped transactions.
//!
//! Group commit: a completion is queued; the task that finds no write in
//! progress writes everything queued in one transaction, and keeps writing
//! until the queue is empty. While one transaction is being made durable,
//! the next group gathers, so the group size follows the store's latency:
//! one record per transaction when operations are slow, hundreds when they
//! are fast. No timer adds latency to a quiet apply.
//!
//! Before deletes the executor waits (`sync`) until the earlier phases'
//! records are written: a delete destroys what recovery would look at (no
//! account on which to find a revoke).
//!
//! The guarantee does not depend on the grouping: an entry leaves the
//! outbox only in the transaction that writes its audit record, so a crash
//! before a group is written leaves its entries open for recovery.

use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use crate::store::{Completion, OutboxEntry, Store};

/// Most completions written in one transaction.
const MAX_GROUP: usize = 2048;

#[derive(Default)]
struct Queue {
    pending: Vec<Completion>,
    writing: bool,
    /// The first store failure; once set, nothing more is begun.
    error: Option<String>,
    /// Completions queued so far, and those whose write has ended.
    queued: u64,
    ended: u64,
}

pub(crate) struct Journal<'s> {
    store: &'s dyn Store,
    queue: Mutex<Queue>,
    /// Woken after each group's write ends.
    written: Notify,
}

impl<'s> Journal<'s> {
    pub(crate) fn new(store: &'s dyn Store) -> Self {
        Journal {
            store,
            queue: Mutex::new(Queue::default()),
            written: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue is changed only by pushes and whole takes: a panic
        // elsewhere cannot leave it half changed.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The first store failure, if any.
    pub(crate) fn error(&self) -> Option<String> {
        self.lock().error.clone()
    }

    /// Writes entries to the outbox in one transaction, before their
    /// operations are sent. Refused once the store has failed: nothing is
    /// sent that could not be recorded.
    pub(crate) async fn begin(&self, entries: &[OutboxEntry]) -> Result<(), String> {
        if let Some(e) = self.error() {
            return Err(e);
        }
        if entries.is_empty() {
            return Ok(());
        }
        self.store.outbox_begin(entries).await.map_err(|e| {
            let msg = format!("the outbox could not be written: {e}");
            self.fail(&msg);
            msg
        })
    }

    fn fail(&self, msg: &str) {
        let mut q = self.lock();
        if q.error.is_none() {
            q.error = Some(msg.to_owned());
        }
    }

    /// Queues a completion and, when no write is in progress, writes the
    /// queue (this one included) before returning.
    pub(crate) async fn finish(&self, completion: Completion) {
        {
            let mut q = self.lock();
            q.pending.push(completion);
            q.queued = q.queued.saturating_add(1);
            if q.writing {
                return;
            }
            q.writing = true;
        }
        self.write_queue().await;
    }

    /// Returns once every completion queued before the call is written (or
    /// its write failed, which `error` then says). The executor calls it
    /// before deletes, which destroy what recovery would look at (a delete
    /// leaves no account to find a revoke on), and at the end.
    pub(crate) async fn sync(&self) {
        let target = self.lock().queued;
        loop {
            let notified = self.written.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let write = {
                let mut q = self.lock();
                if q.ended >= target {
                    return;
                }
                if q.writing {
                    false
                } else {
                    q.writing = true;
                    true
                }
            };
            if write {
                self.write_queue().await;
            } else {
                notified.await;
            }
        }
    }

    async fn write_queue(&self) {
        loop {
            let group: Vec<Completion> = {
                let mut q = self.lock();
                if q.pending.is_empty() {
                    q.writing = false;
                    return;
                }
                let n = q.pending.len().min(MAX_GROUP);
                q.pending.drain(..n).collect()
            };
            let n = group.len();
            let result = self.store.complete(group).await;
            if let Err(e) = result {
                // The group's entries stay open in the outbox: the next
                // run's recovery inspects the targets and records them.
                self.fail(&format!(
                    "{n} outcomes could not be written to the audit log (their operations \
                     stay in the outbox; the next run records them): {e}"
                ));
            }
            {
                let mut q = self.lock();
                q.ended = q.ended.saturating_add(n as u64);
            }
            self.written.notify_waiters();
        }
    }
}
