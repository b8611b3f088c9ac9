//! Leavers the engine remembers: so that a leaver stays gone when a later
//! export still says active, an identity that vanished from the sources is
//! a leaver, and grace periods count from the moment of leaving.
//!
//! A record is written when the engine learns that someone left: a leaver
//! event ([`Departure::Event`]), or an apply that disabled the accounts of
//! an identity first seen terminated without an end date
//! ([`Departure::Terminated`]) or gone from the sources ([`Departure::Absent`]).
//! Before each plan the engine reads the records and adjusts the
//! identities it plans for (`departures`), so plans stay pure and an
//! apply's re-plan reaches the same decisions.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use prov_core::{Identity, IdentityId, LifecycleState, Value};
use serde::{Deserialize, Serialize};

use crate::ledger::Link;

/// How the engine learnt that someone left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Departure {
    /// A leaver event. The identity stays a leaver, whatever later exports
    /// say, until the source shows the termination, a re-hire (a start
    /// date after the leaving day), or a person clears it.
    Event,
    /// The source said terminated without an end date: the record gives
    /// the moment grace periods count from. Dropped if the source stops
    /// saying terminated.
    Terminated,
    /// The identity is linked on a target and gone from every source: a
    /// leaver. Dropped when it comes back.
    Absent,
}

impl Departure {
    /// `event`, `terminated` or `absent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Departure::Event => "event",
            Departure::Terminated => "terminated",
            Departure::Absent => "absent",
        }
    }
}

/// One remembered leaver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LeaverRecord {
    /// Who.
    pub identity: IdentityId,
    /// When they left, as the engine learnt it.
    pub left_at: DateTime<Utc>,
    /// How.
    pub why: Departure,
    /// Who recorded it (the engine's actor).
    pub by: String,
}

impl LeaverRecord {
    /// A record of `identity` leaving at `left_at`.
    pub fn new(
        identity: IdentityId,
        left_at: DateTime<Utc>,
        why: Departure,
        by: impl Into<String>,
    ) -> Self {
        LeaverRecord {
            identity,
            left_at,
            why,
            by: by.into(),
        }
    }
}

/// The attribute that marks an identity the engine made up for one gone
/// from the sources (so a target with `absent = "ignore"` can leave it be).
pub const ABSENT: &str = "prov.absent";

/// The identities to plan for, given the sources' and the records.
#[derive(Debug, Default)]
pub(crate) struct Departures {
    /// The sources' identities, adjusted (a remembered leaver is
    /// terminated, with its leaving moment), then one terminated identity
    /// for each linked identity gone from the sources.
    pub(crate) identities: Vec<Identity>,
    /// Records to write once an apply has acted on them.
    pub(crate) new: Vec<LeaverRecord>,
    /// Records that no longer apply (a re-hire, a return), to remove then.
    pub(crate) stale: Vec<IdentityId>,
}

/// Applies the leaver records to the sources' identities: see the module docs.
pub(crate) fn departures(
    identities: &[Identity],
    records: &[LeaverRecord],
    links: &[Link],
    now: DateTime<Utc>,
    actor: &str,
) -> Departures {
    let by_id: BTreeMap<&IdentityId, &LeaverRecord> =
        records.iter().map(|r| (&r.identity, r)).collect();
    let mut out = Departures {
        identities: Vec::with_capacity(identities.len()),
        ..Departures::default()
    };
    for who in identities {
        let mut who = who.clone();
        let record = by_id.get(&who.id).copied();
        let applies = match record {
            Some(r) if r.why == Departure::Event => {
                let rehired = who.start_date.is_some_and(|s| s > r.left_at.date_naive());
                !rehired
            }
            Some(_) => prov_resolver::effective_state(&who, now) == LifecycleState::Terminated,
            None => false,
        };
        match record {
            Some(r) if applies => {
                who.state = LifecycleState::Terminated;
                who.left_at = Some(who.left_at.map_or(r.left_at, |t| t.min(r.left_at)));
            }
            Some(r) => out.stale.push(r.identity.clone()),
            None => {}
        }
        // First seen terminated with no moment to count grace from: the
        // apply that acts on it records one.
        if prov_resolver::effective_state(&who, now) == LifecycleState::Terminated
            && prov_resolver::leaving_moment(&who).is_none()
        {
            out.new.push(LeaverRecord::new(
                who.id.clone(),
                now,
                Departure::Terminated,
                actor,
            ));
        }
        out.identities.push(who);
    }
    // Linked identities gone from every source are leavers.
    let known: BTreeSet<&IdentityId> = identities.iter().map(|w| &w.id).collect();
    let gone: BTreeSet<&IdentityId> = links
        .iter()
        .map(|l| &l.identity)
        .filter(|id| !known.contains(id))
        .collect();
    for id in gone {
        let mut who = Identity::new(id.clone()).with_state(LifecycleState::Terminated);
        who.attributes.insert(ABSENT.to_owned(), Value::Bool(true));
        match by_id.get(id) {
            Some(r) => who.left_at = Some(r.left_at),
            None => out
                .new
                .push(LeaverRecord::new(id.clone(), now, Departure::Absent, actor)),
        }
        out.identities.push(who);
    }
    out
}
