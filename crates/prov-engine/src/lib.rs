//! prov's engine: plans the changes that bring targets in line with the
//! policy, with the reasons for each, and applies them.
//!
//! - The planner is pure and deterministic. Given the compiled policy, the
//!   identities, each target's accounts and the ownership ledger, [`plan`]
//!   returns a [`Plan`] whose operations are ordered (accounts exist before
//!   they are granted anything, access is revoked before an account is
//!   disabled), carry stable ids and reason chains, and are checked by the
//!   deletion safeguard; the plan's fingerprint lets [`Engine`] refuse to
//!   apply it once its inputs have changed.
//! - The [`Executor`] applies a plan: bounded concurrency and a rate limit
//!   per target, retries with backoff for retryable errors only, batched
//!   grants and revokes, and every operation written to the [`Store`]'s
//!   outbox before it is sent, so a killed process resumes without losing or
//!   repeating work.
//! - [`Engine`] ties them together with the store (memory, SQLite or
//!   PostgreSQL), the hash-chained [`audit`] log, [`leases`] and
//!   [`Engine::handle`] for one joiner, mover or leaver at once.
//!
//! Speed: planning a million accounts is bound by reading them from memory.
//! A program that plans hundreds of thousands of accounts should make
//! [mimalloc](https://docs.rs/mimalloc) its global allocator, as the `prov`
//! command does: on the project's machine the same plan of 1,000,000
//! accounts took about half the time with it as with glibc's `malloc`,
//! because it keeps objects of one size together and the planner's walk
//! over the accounts then reads memory in order (docs/benchmarks.md).
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
pub mod leavers;
mod ledger;
mod plan;
mod planner;
mod recover;
pub mod review;
mod store;

pub use engine::{
    ChangesPlan, DEFAULT_LOCK_WAIT, DEFAULT_MAX_PLAN_AGE, Engine, EngineError, Event,
};
pub use executor::{
    ApplyError, ApplyOptions, ApplyReport, DEFAULT_DEADLINE, Executor, OpOutcome, OpStatus,
    Progress, RetryPolicy, TargetLimits,
};
pub use ledger::{EntitlementRecord, GrantChange, GrantRecord, LedgerChange, Link, LinkOrigin};
pub use plan::{AccountRef, Conflict, OpKind, Orphan, PLAN_VERSION, Plan, PlannedOp, SafetyBlock};
pub use planner::{
    Absent, Adopt, Correlation, Exclude, OrphanPolicy, PlanInput, PlanOptions, Safety,
    TargetOptions, fingerprint, plan, plan_resolved,
};
#[cfg(feature = "postgres")]
pub use store::PostgresStore;
#[cfg(feature = "sqlite")]
pub use store::SqliteStore;
pub use store::{Claim, Completion, Holder, MemoryStore, OutboxEntry, Store};
