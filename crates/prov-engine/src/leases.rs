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
    /// How long access lasts once it starts.
    pub duration: Duration,
    /// When access should start at the earliest (`None`: at approval).
    pub start: Option<DateTime<Utc>>,
    /// How long the request may wait for a decision.
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
    /// The request breaks the policy (unknown role, longer than the role's maximum).
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

/// Checks a request against the policy: the role exists and the duration is
/// within its maximum (naming the maximum when it is not).
pub fn check_request(
    policy: &CompiledPolicy,
    req: &LeaseRequest,
    now: DateTime<Utc>,
) -> Result<(), LeaseError> {
    let start = req.start.unwrap_or(now);
    let length = chrono::Duration::from_std(req.duration)
        .map_err(|_| LeaseError::Policy("the duration is too long".to_owned()))?;
    if length <= chrono::Duration::zero() {
        return Err(LeaseError::Policy(
            "a lease must last longer than zero".to_owned(),
        ));
    }
    let probe = Lease::new(
        "request",
        req.identity.clone(),
        req.role.clone(),
        start,
        start + length,
    );
    policy.check_lease(&probe).map_err(LeaseError::Policy)
}

/// A new record for a request made at `now`.
pub(crate) fn new_record(id: String, req: LeaseRequest, now: DateTime<Utc>) -> LeaseRecord {
    let wait = chrono::Duration::from_std(req.wait).unwrap_or(chrono::Duration::days(1));
    LeaseRecord {
        id,
        decide_by: now + wait,
        request: req,
        state: LeaseState::Requested,
        requested_at: now,
        decided_by: None,
        decided_at: None,
        note: None,
        valid_from: None,
        valid_until: None,
    }
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
    let length =
        chrono::Duration::from_std(rec.request.duration).unwrap_or(chrono::Duration::zero());
    rec.state = LeaseState::Approved;
    rec.decided_by = Some(approver.to_owned());
    rec.decided_at = Some(now);
    rec.valid_from = Some(from);
    rec.valid_until = Some(from + length);
    Ok(())
}
