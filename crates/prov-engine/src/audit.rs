//! The audit log: append-only, hash-chained records of everything applied.
//!
//! Each record carries the hash of the one before it and its own hash over
//! its content and that link, so [`verify`] finds any record edited,
//! removed or moved, and names the first one affected.
//!
//! What each mode protects against:
//! - **Plain chain** (SHA-256): an edit, removal or reordering inside the
//!   log by someone who does not recompute the hashes. Not: cutting records
//!   off the end, or recomputing every hash after an edit (anyone can).
//! - **Keyed chain** ([`AuditKey`], HMAC-SHA256; the store seals with it
//!   once configured): recomputing the hashes needs the key, so an edit
//!   re-sealed without it, or a whole log re-sealed without it, is found.
//!   Not: cutting records off the end, or anyone who holds the key.
//! - **Anchored head** ([`Head`], `prov audit head`, kept somewhere the
//!   engine cannot write): the log must still reach that record with that
//!   hash, so records cut off the end, or a rewrite of anything up to the
//!   anchor, are found. Records after the anchor are covered from the next
//!   anchor on.

use std::fmt;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
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
    /// SHA-256 over `seq`, `prev` and the event; HMAC-SHA256 with the
    /// audit key when `keyed`.
    pub hash: String,
    /// Whether the hash is keyed ([`AuditKey`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keyed: bool,
}

/// The key that seals the audit chain (HMAC-SHA256): with it configured, a
/// chain cannot be re-sealed by someone without it. Never printed.
#[derive(Clone)]
pub struct AuditKey(Vec<u8>);

impl AuditKey {
    /// A key of at least 16 bytes (for a passphrase, use 32 or more characters).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, String> {
        let bytes = bytes.into();
        if bytes.len() < 16 {
            return Err(format!(
                "an audit key needs at least 16 bytes, this one has {}",
                bytes.len()
            ));
        }
        Ok(AuditKey(bytes))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length: this cannot fail.
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()))
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(<redacted>)")
    }
}

/// A chain's head as kept elsewhere: `SEQ:HASH`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Head {
    /// The record's position.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
}

impl Head {
    /// The head of `record`.
    pub fn of(record: &AuditRecord) -> Self {
        Head {
            seq: record.seq,
            hash: record.hash.clone(),
        }
    }
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

impl std::str::FromStr for Head {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad =
            || format!("`{text}` is not a head: expected SEQ:HASH, as `prov audit head` prints");
        let (seq, hash) = text.trim().split_once(':').ok_or_else(bad)?;
        let seq: u64 = seq.parse().map_err(|_| bad())?;
        if seq == 0 || hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Head {
            seq,
            hash: hash.to_ascii_lowercase(),
        })
    }
}

/// The hash the first record links to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl AuditRecord {
    /// Seals `event` as the record after `prev` (`None` for the first).
    pub fn seal(prev: Option<&AuditRecord>, event: AuditEvent) -> Self {
        Self::seal_with(prev, event, None)
    }

    /// Seals `event` after `prev`, keyed when `key` is given.
    pub fn seal_with(
        prev: Option<&AuditRecord>,
        event: AuditEvent,
        key: Option<&AuditKey>,
    ) -> Self {
        let seq = prev.map_or(1, |p| p.seq.saturating_add(1));
        let prev_hash = prev.map_or_else(|| GENESIS.to_owned(), |p| p.hash.clone());
        let bytes = content(seq, &prev_hash, &event);
        let hash = match key {
            Some(k) => {
                let mut m = k.mac();
                m.update(&bytes);
                hex(&m.finalize().into_bytes())
            }
            None => hex(&Sha256::digest(&bytes)),
        };
        AuditRecord {
            seq,
            event,
            prev: prev_hash,
            hash,
            keyed: key.is_some(),
        }
    }

    /// Whether the hash matches the content (with `key` for a keyed record;
    /// compared in constant time).
    fn hash_matches(&self, key: Option<&AuditKey>) -> bool {
        let bytes = content(self.seq, &self.prev, &self.event);
        match (self.keyed, key) {
            (true, Some(k)) => {
                let mut m = k.mac();
                m.update(&bytes);
                unhex(&self.hash).is_some_and(|h| m.verify_slice(&h).is_ok())
            }
            (true, None) => false,
            (false, _) => hex(&Sha256::digest(&bytes)) == self.hash,
        }
    }
}

/// What a record's hash covers: its position, the link and the event.
fn content(seq: u64, prev: &str, event: &AuditEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(prev.as_bytes());
    // Field order is fixed by the struct, so the JSON is canonical.
    out.extend(serde_json::to_vec(event).unwrap_or_default());
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect()
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

/// Checks a whole plain chain: sequence numbers from 1 without gaps, each
/// record linked to the one before, each hash matching its content. A
/// keyed record cannot be checked without the key and is an error here:
/// use [`verify_with`].
pub fn verify(records: &[AuditRecord]) -> Result<(), ChainError> {
    verify_with(records, None, None).map(|_| ())
}

/// What [`verify_with`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// Records checked.
    pub records: usize,
    /// Among them, records sealed with the key.
    pub keyed: usize,
    /// Whether an anchored head was checked.
    pub head: bool,
}

/// Checks a chain as [`verify`] does, and also: with `key`, every keyed
/// record's HMAC, at least one keyed record, and no plain record after a
/// keyed one (a re-seal without the key); with `head`, that the chain
/// still reaches that record with that hash (nothing cut off the end,
/// nothing rewritten up to it). See the module docs for what each protects.
pub fn verify_with(
    records: &[AuditRecord],
    key: Option<&AuditKey>,
    head: Option<&Head>,
) -> Result<Verified, ChainError> {
    let mut prev_hash = GENESIS;
    let mut keyed = 0usize;
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
        if r.keyed && key.is_none() {
            return err(
                "it is sealed with the audit key: verify with the key (prov: the audit_key setting)"
                    .to_owned(),
            );
        }
        if key.is_some() && !r.keyed && keyed > 0 {
            return err(
                "it is not sealed with the audit key though records before it are: the chain \
                 was re-sealed without the key from here"
                    .to_owned(),
            );
        }
        if !r.hash_matches(key) {
            return err(if r.keyed {
                "its content does not match its keyed hash (it was edited, or this is not the key \
                 that sealed it)"
                    .to_owned()
            } else {
                "its content does not match its hash (it was edited)".to_owned()
            });
        }
        if r.keyed {
            keyed += 1;
        }
        prev_hash = &r.hash;
    }
    if key.is_some() && keyed == 0 && !records.is_empty() {
        return Err(ChainError {
            position: 1,
            problem: "no record is sealed with the audit key: the log was re-sealed without it, \
                      or was written before the key was configured"
                .to_owned(),
        });
    }
    if let Some(h) = head {
        let at = usize::try_from(h.seq).unwrap_or(usize::MAX);
        match records.get(at.saturating_sub(1)) {
            None => {
                return Err(ChainError {
                    position: records.len(),
                    problem: format!(
                        "the log ends at record {}, before the anchored head {h}: records were \
                         cut off the end",
                        records.len()
                    ),
                });
            }
            Some(r) if r.hash != h.hash => {
                return Err(ChainError {
                    position: at,
                    problem: format!(
                        "it is not the anchored head {h}: the chain was rewritten up to here"
                    ),
                });
            }
            Some(_) => {}
        }
    }
    Ok(Verified {
        records: records.len(),
        keyed,
        head: head.is_some(),
    })
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
