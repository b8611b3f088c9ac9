//! Leases with approval: time-bound access that someone asks for, someone
//! approves (or rejects), and that ends by itself.
//!
//! Three settings are kept apart, as access reviews need them:
//! how long a request may wait for a decision (`wait`), when access starts
//! (at approval, or the requested start if later: never at the request),
//! and how long it lasts (`duration`, at most the role's maximum).

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prov_core::IdentityId;
use prov_resolver::{CompiledPolicy, Lease};
use serde::{Deserialize, Serialize};

/// Where a lease stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LeaseState {
    /// Waiting for a decision.
    Requested,
    /// Approved: gives access over `[valid_from, valid_until)`.
    Approved,
    /// Rejected.
    Rejected,
    /// Taken back before its end.
    Revoked,
}

/// A lease request, as someone makes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LeaseRequest {
    /// Who gets access.
    pub identity: IdentityId,
    /// Which role.
    pub role: String,
    /// How long access lasts once it starts ("2h", "14d" in JSON).
    #[serde(with = "human")]
    pub duration: Duration,
    /// When access should start at the earliest (`None`: at approval).
    pub start: Option<DateTime<Utc>>,
    /// How long the request may wait for a decision ("1d" in JSON).
    #[serde(with = "human")]
    pub wait: Duration,
    /// Who asks.
    pub requested_by: String,
    /// Why.
    pub reason: String,
}

impl LeaseRequest {
    /// A request for `role` for `duration`, waiting at most a day for approval.
    pub fn new(
        identity: impl Into<IdentityId>,
        role: impl Into<String>,
        duration: Duration,
        requested_by: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        LeaseRequest {
            identity: identity.into(),
            role: role.into(),
            duration,
            start: None,
            wait: Duration::from_secs(86_400),
            requested_by: requested_by.into(),
            reason: reason.into(),
        }
    }

    /// Asks for access to start no earlier than `at` (builder style).
    pub fn starting(mut self, at: DateTime<Utc>) -> Self {
        self.start = Some(at);
        self
    }

    /// Lets the request wait `wait` for a decision (builder style).
    pub fn waiting(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }
}

/// A lease as the store keeps it: the request, the decision, the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LeaseRecord {
    /// Its id.
    pub id: String,
    /// The request.
    pub request: LeaseRequest,
    /// Where it stands.
    pub state: LeaseState,
    /// When it was requested.
    pub requested_at: DateTime<Utc>,
    /// When a request not decided by then lapses.
    pub decide_by: DateTime<Utc>,
    /// Who approved, rejected or revoked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    /// A note with the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// First instant of access (set at approval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<DateTime<Utc>>,
    /// First instant without it (set at approval; moved earlier by a revoke).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<DateTime<Utc>>,
}

impl LeaseRecord {
    /// The lease as the resolver takes it, when it was approved.
    pub fn as_lease(&self) -> Option<Lease> {
        match (self.state, self.valid_from, self.valid_until) {
            (LeaseState::Approved | LeaseState::Revoked, Some(from), Some(until))
                if from < until =>
            {
                let mut l = Lease::new(
                    self.id.clone(),
                    self.request.identity.clone(),
                    self.request.role.clone(),
                    from,
                    until,
                );
                l.approver.clone_from(&self.decided_by);
                l.reason = Some(self.request.reason.clone());
                Some(l)
            }
            _ => None,
        }
    }

    /// Whether it gives access at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.as_lease().is_some_and(|l| l.is_active(now))
    }
}

/// Why a lease action was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseError {
    /// The request breaks the policy (unknown role, longer than the role's
    /// maximum, an approver the policy does not name, the requester
    /// approving their own request, an identity the sources lack or that left).
    Policy(String),
    /// No lease has this id.
    NotFound(String),
    /// The lease is not in a state that allows this.
    State {
        /// The lease.
        id: String,
        /// Its state.
        state: LeaseState,
        /// What was attempted.
        action: &'static str,
    },
    /// The request waited longer than allowed; ask again.
    Lapsed {
        /// The lease.
        id: String,
        /// When the decision was due.
        decide_by: DateTime<Utc>,
    },
    /// The store failed.
    Store(String),
}

impl fmt::Display for LeaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaseError::Policy(m) => write!(f, "refused: {m}"),
            LeaseError::NotFound(id) => write!(f, "no lease `{id}`"),
            LeaseError::State { id, state, action } => {
                write!(f, "lease `{id}` is {state:?} and cannot be {action}")
            }
            LeaseError::Lapsed { id, decide_by } => {
                write!(
                    f,
                    "lease request `{id}` lapsed: it had to be decided by {}; request it again",
                    decide_by.to_rfc3339()
                )
            }
            LeaseError::Store(m) => write!(f, "store: {m}"),
        }
    }
}

impl std::error::Error for LeaseError {}

/// The longest any lease may last, whatever its role says (a role's
/// `max_lease_days` may only shorten it).
pub const MAX_LEASE: Duration = Duration::from_secs(366 * 86_400);

/// The longest a request may wait for a decision.
pub const MAX_WAIT: Duration = Duration::from_secs(30 * 86_400);

/// `at + d`, or a policy error naming `what` when it does not fit.
fn later(at: DateTime<Utc>, d: Duration, what: &str) -> Result<DateTime<Utc>, LeaseError> {
    chrono::TimeDelta::from_std(d)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .ok_or_else(|| LeaseError::Policy(format!("the {what} is too long")))
}

/// Checks a request against the policy: the role exists, the duration is
/// longer than zero and within the role's maximum and [`MAX_LEASE`] (naming
/// the maximum when it is not), the wait within [`MAX_WAIT`], and every
/// instant computed from them representable.
pub fn check_request(
    policy: &CompiledPolicy,
    req: &LeaseRequest,
    now: DateTime<Utc>,
) -> Result<(), LeaseError> {
    if req.duration.is_zero() {
        return Err(LeaseError::Policy(
            "a lease must last longer than zero".to_owned(),
        ));
    }
    if req.duration > MAX_LEASE {
        return Err(LeaseError::Policy(format!(
            "a lease lasts at most {} (asked: {})",
            human::format(MAX_LEASE),
            human::format(req.duration)
        )));
    }
    if req.wait > MAX_WAIT {
        return Err(LeaseError::Policy(format!(
            "a request waits at most {} for a decision (asked: {})",
            human::format(MAX_WAIT),
            human::format(req.wait)
        )));
    }
    let start = req.start.unwrap_or(now);
    later(now, req.wait, "wait")?;
    let probe = Lease::new(
        "request",
        req.identity.clone(),
        req.role.clone(),
        start,
        later(start, req.duration, "duration")?,
    );
    policy.check_lease(&probe).map_err(LeaseError::Policy)
}

/// A new record for a request made at `now` (checked by [`check_request`]).
pub(crate) fn new_record(
    id: String,
    req: LeaseRequest,
    now: DateTime<Utc>,
) -> Result<LeaseRecord, LeaseError> {
    Ok(LeaseRecord {
        id,
        decide_by: later(now, req.wait, "wait")?,
        request: req,
        state: LeaseState::Requested,
        requested_at: now,
        decided_by: None,
        decided_at: None,
        note: None,
        valid_from: None,
        valid_until: None,
    })
}

/// Approves a record at `now`: access starts now, or at the requested start if later.
pub(crate) fn approve(
    rec: &mut LeaseRecord,
    approver: &str,
    now: DateTime<Utc>,
) -> Result<(), LeaseError> {
    if rec.state != LeaseState::Requested {
        return Err(LeaseError::State {
            id: rec.id.clone(),
            state: rec.state,
            action: "approved",
        });
    }
    if now > rec.decide_by {
        return Err(LeaseError::Lapsed {
            id: rec.id.clone(),
            decide_by: rec.decide_by,
        });
    }
    let from = rec.request.start.map_or(now, |s| s.max(now));
    let until = later(from, rec.request.duration, "duration")?;
    rec.state = LeaseState::Approved;
    rec.decided_by = Some(approver.to_owned());
    rec.decided_at = Some(now);
    rec.valid_from = Some(from);
    rec.valid_until = Some(until);
    Ok(())
}

/// Where a lease stands at a given time, as listings show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LeaseStatus {
    /// Waiting for a decision, still in time.
    Requested,
    /// Never decided, and past the time to decide.
    Lapsed,
    /// Approved, access not started yet.
    Scheduled,
    /// Approved and giving access now.
    Active,
    /// Approved, and its access has ended.
    Expired,
    /// Rejected.
    Rejected,
    /// Taken back before its end.
    Revoked,
}

impl LeaseStatus {
    /// The word listings use.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseStatus::Requested => "requested",
            LeaseStatus::Lapsed => "lapsed",
            LeaseStatus::Scheduled => "scheduled",
            LeaseStatus::Active => "active",
            LeaseStatus::Expired => "expired",
            LeaseStatus::Rejected => "rejected",
            LeaseStatus::Revoked => "revoked",
        }
    }
}

impl LeaseRecord {
    /// Where it stands at `now`: an approved lease past its end is
    /// expired, a request past its decision time lapsed.
    pub fn status(&self, now: DateTime<Utc>) -> LeaseStatus {
        match self.state {
            LeaseState::Requested if now > self.decide_by => LeaseStatus::Lapsed,
            LeaseState::Requested => LeaseStatus::Requested,
            LeaseState::Rejected => LeaseStatus::Rejected,
            LeaseState::Revoked => LeaseStatus::Revoked,
            LeaseState::Approved => match (self.valid_from, self.valid_until) {
                (Some(from), _) if now < from => LeaseStatus::Scheduled,
                (_, Some(until)) if now >= until => LeaseStatus::Expired,
                _ => LeaseStatus::Active,
            },
        }
    }
}

/// Durations as people write them: `30s`, `90m`, `2h`, `14d`, in plans,
/// lease records and on the command line. A stored record from before
/// (`{"secs": .., "nanos": ..}`) is still read.
pub mod human {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// `d` in the largest unit that divides it (`14d`, `36h`, `90m`, `45s`;
    /// under a second, `250ms`).
    pub fn format(d: Duration) -> String {
        let secs = d.as_secs();
        if d.subsec_nanos() != 0 {
            return format!("{}ms", d.as_millis());
        }
        for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
            if secs != 0 && secs.is_multiple_of(size) {
                return format!("{}{unit}", secs / size);
            }
        }
        format!("{secs}s")
    }

    /// Reads `30s`, `90m`, `12h`, `7d` or `250ms` (a whole number and a
    /// unit); the error says what was expected.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let text = text.trim();
        let bad = || format!("`{text}` is not a duration such as 30m, 12h or 7d");
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (num, unit) = text.split_at(split);
        let n: u64 = num.parse().map_err(|_| bad())?;
        let secs = |size: u64| {
            n.checked_mul(size)
                .map(Duration::from_secs)
                .ok_or_else(|| format!("`{text}` is too long"))
        };
        match unit {
            "ms" => Ok(Duration::from_millis(n)),
            "s" => secs(1),
            "m" => secs(60),
            "h" => secs(3_600),
            "d" => secs(86_400),
            _ => Err(bad()),
        }
    }

    /// Serialises as [`format()`] gives.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    /// Reads what [`parse`] reads, or the older `{secs, nanos}`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Text(String),
            Old { secs: u64, nanos: u32 },
        }
        match Either::deserialize(d)? {
            Either::Text(t) => parse(&t).map_err(serde::de::Error::custom),
            Either::Old { secs, nanos } => Ok(Duration::new(secs, 0)
                .checked_add(Duration::from_nanos(u64::from(nanos)))
                .unwrap_or(Duration::MAX)),
        }
    }
}
