//! The audit log: append-only, hash-chained records of everything applied.
//!
//! Each record carries the hash of the one before it and its own hash over
//! its content and that link, so [`verify`] finds any record edited,
//! removed or moved, and names the first one affected.

use std::fmt;

use chrono::{DateTime, Utc};
use prov_core::{AccountId, IdentityId, TargetId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::plan::hex;

/// What happened, before it is sealed into the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditEvent {
    /// When.
    pub time: DateTime<Utc>,
    /// Who or what acted (`prov-engine`, a user running `prov apply`, an approver).
    pub actor: String,
    /// For whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityId>,
    /// Where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetId>,
    /// On which account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    /// What (`create`, `grant ldap:cn=staff`, `lease.approve`).
    pub operation: String,
    /// Why (the reason chain).
    pub reason: String,
    /// How it ended (`done`, `failed: ...`, `skipped: ...`; recovery writes
    /// `recovered: applied ...` or `recovered: not applied ...`).
    pub outcome: String,
    /// The run that did it (one apply, one event, one recovery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// The plan it carried out, by its digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

impl AuditEvent {
    /// An event with the fields every record has.
    pub fn new(
        time: DateTime<Utc>,
        actor: impl Into<String>,
        operation: impl Into<String>,
        reason: impl Into<String>,
        outcome: impl Into<String>,
    ) -> Self {
        AuditEvent {
            time,
            actor: actor.into(),
            identity: None,
            target: None,
            account: None,
            operation: operation.into(),
            reason: reason.into(),
            outcome: outcome.into(),
            run: None,
            plan: None,
        }
    }
}

impl AuditEvent {
    /// Whether the event records a change made on a target: an operation
    /// done, or one that recovery found applied after a crash.
    pub fn changed_target(&self) -> bool {
        self.target.is_some()
            && self.operation != "link"
            && (self.outcome == "done" || self.outcome.starts_with("recovered: applied"))
    }
}

/// A sealed record of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// The event.
    #[serde(flatten)]
    pub event: AuditEvent,
    /// The previous record's hash (64 zeros for the first).
    pub prev: String,
    /// SHA-256 over `seq`, `prev` and the event.
    pub hash: String,
}

/// The hash the first record links to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl AuditRecord {
    /// Seals `event` as the record after `prev` (`None` for the first).
    pub fn seal(prev: Option<&AuditRecord>, event: AuditEvent) -> Self {
        let seq = prev.map_or(1, |p| p.seq + 1);
        let prev_hash = prev.map_or_else(|| GENESIS.to_owned(), |p| p.hash.clone());
        let hash = digest(seq, &prev_hash, &event);
        AuditRecord {
            seq,
            event,
            prev: prev_hash,
            hash,
        }
    }
}

fn digest(seq: u64, prev: &str, event: &AuditEvent) -> String {
    let mut h = Sha256::new();
    h.update(seq.to_be_bytes());
    h.update(prev.as_bytes());
    // Field order is fixed by the struct, so the JSON is canonical.
    h.update(serde_json::to_vec(event).unwrap_or_default());
    hex(&h.finalize())
}

/// Where and how a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChainError {
    /// The position (1-based) of the first record that does not fit.
    pub position: usize,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "audit log broken at record {}: {}",
            self.position, self.problem
        )
    }
}

impl std::error::Error for ChainError {}

/// Checks a whole chain: sequence numbers from 1 without gaps, each record
/// linked to the one before, each hash matching its content.
pub fn verify(records: &[AuditRecord]) -> Result<(), ChainError> {
    let mut prev_hash = GENESIS;
    for (i, r) in records.iter().enumerate() {
        let position = i + 1;
        let err = |problem: String| Err(ChainError { position, problem });
        if r.seq != position as u64 {
            return err(format!(
                "sequence number {} where {position} was expected (a record was removed or moved)",
                r.seq
            ));
        }
        if r.prev != prev_hash {
            return err(
                "it does not link to the record before it (a record was removed, moved or edited)"
                    .to_owned(),
            );
        }
        if digest(r.seq, &r.prev, &r.event) != r.hash {
            return err("its content does not match its hash (it was edited)".to_owned());
        }
        prev_hash = &r.hash;
    }
    Ok(())
}

/// The records as JSON Lines, one record per line.
pub fn to_jsonl(records: &[AuditRecord]) -> serde_json::Result<String> {
    let mut out = String::new();
    for r in records {
        out.push_str(&serde_json::to_string(r)?);
        out.push('\n');
    }
    Ok(out)
}

/// Reads JSON Lines back; a bad line is an error naming its number.
pub fn from_jsonl(text: &str) -> Result<Vec<AuditRecord>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}
