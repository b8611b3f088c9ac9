//! prov's engine: plans the changes that bring targets in line with the
//! policy, with the reasons for each, and (next) applies them.
//!
//! This first part is the planner: pure and deterministic. Given the
//! compiled policy, the identities, each target's accounts and the
//! ownership ledger, [`plan`] returns a [`Plan`] whose operations are
//! ordered (accounts exist before they are granted anything, access is
//! revoked before an account is disabled), carry stable ids and reason
//! chains, and are checked by the deletion safeguard.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

pub mod audit;
mod engine;
mod executor;
pub mod leases;
mod plan;
mod planner;
#[cfg(feature = "postgres")]
mod postgres;
pub mod review;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;

pub use engine::{Engine, EngineError, Event};
pub use executor::{
    ApplyError, ApplyOptions, ApplyReport, Executor, OpOutcome, OpStatus, Progress, RetryPolicy,
    TargetLimits,
};
pub use plan::{AccountRef, Conflict, OpKind, Orphan, PLAN_VERSION, Plan, PlannedOp, SafetyBlock};
pub use planner::{
    Correlation, Link, LinkOrigin, OrphanPolicy, PlanInput, PlanOptions, Safety, TargetOptions,
    fingerprint, plan, plan_resolved,
};
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use store::{MemoryStore, Store};
