//! The apply's journal: outbox entries begun before operations are sent,
//! and completions (audit record, ledger change, entry removed) written in
//! grouped transactions.
//!
//! Group commit: a completion is queued; one writer, running beside the
//! apply, writes everything queued in one transaction, and again while the
//! queue is not empty. While one transaction is being made durable, the
//! next group gathers, so the group size follows the store's latency: one
//! record per transaction when operations are slow, hundreds when they are
//! fast. No timer adds latency to a quiet apply, and no operation waits for
//! the store unless the writer falls far behind.
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

/// Most completions queued and not yet written before operations wait.
const MAX_PENDING: usize = 4 * MAX_GROUP;

#[derive(Default)]
struct Queue {
    pending: Vec<Completion>,
    /// Set at the end of the apply: the writer stops once the queue is empty.
    closed: bool,
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
    /// Wakes the writer: something was queued, or the journal closed.
    work: Notify,
}

impl<'s> Journal<'s> {
    pub(crate) fn new(store: &'s dyn Store) -> Self {
        Journal {
            store,
            queue: Mutex::new(Queue::default()),
            written: Notify::new(),
            work: Notify::new(),
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

    /// Queues a completion for the writer. Returns at once unless the
    /// writer is more than [`MAX_PENDING`] behind (then it waits: what is
    /// sent but not yet recorded stays bounded).
    pub(crate) async fn finish(&self, completion: Completion) {
        loop {
            let written = self.written.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            {
                let mut q = self.lock();
                if q.pending.len() < MAX_PENDING || q.closed {
                    q.pending.push(completion);
                    q.queued = q.queued.saturating_add(1);
                    break;
                }
            }
            written.await;
        }
        self.work.notify_one();
        // The writer runs in the same task as the operations: let it take
        // the queue now, so that a store failure is known (and stops the
        // sends) within one write, even when the target's calls never wait.
        tokio::task::yield_now().await;
    }

    /// Returns once every completion queued before the call is written (or
    /// its write failed, which `error` then says). The executor calls it
    /// before deletes, which destroy what recovery would look at (a delete
    /// leaves no account to find a revoke on), and at the end.
    pub(crate) async fn sync(&self) {
        let target = self.lock().queued;
        loop {
            let written = self.written.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            if self.lock().ended >= target {
                return;
            }
            written.await;
        }
    }

    /// Ends the writer once what is queued is written.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.work.notify_one();
    }

    /// The writer: runs beside the apply (joined with it, in the same task)
    /// until [`close`](Self::close), writing whatever is queued in one
    /// transaction at a time. While one transaction is being made durable
    /// the next group gathers, so no operation waits on the store and the
    /// groups grow with its latency.
    pub(crate) async fn writer(&self) {
        loop {
            // Let the operations running beside it (in the same task) queue
            // what they have finished: operations that take microseconds
            // (an event's, on fast targets) then share one transaction.
            tokio::task::yield_now().await;
            let group: Vec<Completion> = {
                let mut q = self.lock();
                if q.pending.is_empty() {
                    if q.closed {
                        return;
                    }
                    Vec::new()
                } else {
                    let n = q.pending.len().min(MAX_GROUP);
                    q.pending.drain(..n).collect()
                }
            };
            if group.is_empty() {
                self.work.notified().await;
                continue;
            }
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
