//! What an apply reports: an outcome per operation, and why a plan was
//! not applied at all.

use std::fmt;

use prov_core::{AccountId, ErrorKind, IdentityId, TargetId};
use serde::{Deserialize, Serialize};

use crate::plan::{PlannedOp, SafetyBlock};

#[cfg(doc)]
use super::Executor;

/// Why a plan was not applied at all.
#[derive(Debug)]
#[non_exhaustive]
pub enum ApplyError {
    /// The deletion safeguard blocked it; nothing was done.
    Blocked(Vec<SafetyBlock>),
    /// The plan names a target the executor has no connector for.
    UnknownTarget(TargetId),
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::Blocked(blocks) => {
                write!(
                    f,
                    "the plan is blocked by the deletion safeguard, nothing was applied:"
                )?;
                for b in blocks {
                    write!(f, "\n  {b}")?;
                }
                Ok(())
            }
            ApplyError::UnknownTarget(t) => {
                write!(f, "the plan names target `{t}`, which has no connector")
            }
        }
    }
}

impl std::error::Error for ApplyError {}

/// How one operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
#[non_exhaustive]
pub enum OpStatus {
    /// Done (including "already so": a repeat of a grant is done).
    Done,
    /// Failed; the error's kind and the message with the backend's detail.
    Failed {
        /// The error kind.
        kind: ErrorKind,
        /// The full message.
        message: String,
    },
    /// Not tried, because an operation it depends on failed.
    Skipped {
        /// Which.
        reason: String,
    },
}

/// The outcome of one operation, naming everything a person needs to act on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OpOutcome {
    /// The operation's id in the plan.
    pub op: String,
    /// What it was (`create`, `grant`, ...).
    pub name: String,
    /// The target.
    pub target: TargetId,
    /// The identity.
    pub identity: Option<IdentityId>,
    /// The account, when known (a failed create has none).
    pub account: Option<AccountId>,
    /// How it ended.
    #[serde(flatten)]
    pub status: OpStatus,
    /// Calls made, retries included.
    pub attempts: u32,
    /// Set when a done operation found the target already so and changed
    /// nothing there (a delete of an account already gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unchanged: Option<String>,
}

impl fmt::Display for OpOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.op, self.name, self.target)?;
        if let Some(a) = &self.account {
            write!(f, " {a}")?;
        }
        if let Some(i) = &self.identity {
            write!(f, " [{i}]")?;
        }
        match &self.status {
            OpStatus::Done => write!(f, ": done"),
            OpStatus::Failed { kind, message } => write!(
                f,
                ": FAILED ({kind}) after {} attempts: {message}",
                self.attempts
            ),
            OpStatus::Skipped { reason } => write!(f, ": skipped: {reason}"),
        }
    }
}

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ApplyReport {
    /// One outcome per operation, in plan order.
    pub outcomes: Vec<OpOutcome>,
    /// Calls made to targets, retries included.
    pub calls: u64,
    /// Retries among them.
    pub retries: u64,
    /// The run's id, as the audit records name it.
    pub run: String,
    /// The plan's digest, as the audit records name it.
    pub plan: String,
    /// Set when outcomes could not be written to the audit log. Their
    /// operations stay in the outbox, and the next run's recovery records
    /// them; nothing was sent after the failure.
    pub audit_error: Option<String>,
    /// Set when the apply was stopped (see [`Executor::with_stop`]): the
    /// operations not yet sent are skipped, those in flight were recorded.
    pub stopped: bool,
}

impl ApplyReport {
    /// Operations done.
    pub fn done(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.status == OpStatus::Done)
            .count()
    }

    /// Operations failed or skipped.
    pub fn failures(&self) -> impl Iterator<Item = &OpOutcome> {
        self.outcomes.iter().filter(|o| o.status != OpStatus::Done)
    }

    /// Whether every operation is done and recorded.
    pub fn is_success(&self) -> bool {
        self.failures().next().is_none() && self.audit_error.is_none() && !self.stopped
    }
}

pub(crate) fn outcome(
    op: &PlannedOp,
    account: Option<AccountId>,
    status: OpStatus,
    attempts: u32,
) -> OpOutcome {
    OpOutcome {
        op: op.id.clone(),
        name: op.kind.name().to_owned(),
        target: op.target.clone(),
        identity: op.identity.clone(),
        account,
        status,
        attempts,
        unchanged: None,
    }
}

pub(crate) fn failed(e: &prov_core::Error, context: &str) -> OpStatus {
    let message = if context.is_empty() {
        e.to_string()
    } else {
        format!("{context}: {e}")
    };
    OpStatus::Failed {
        kind: e.kind(),
        message,
    }
}

pub(crate) fn skipped(reason: impl Into<String>) -> OpStatus {
    OpStatus::Skipped {
        reason: reason.into(),
    }
}
