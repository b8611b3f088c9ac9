//! prov-engine integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test reports failure by panicking

mod audit;
mod crash;
mod engine;
mod executor;
mod groups;
mod leases;
mod leavers;
mod ledger;
mod planner;
mod review;
mod secrets;
mod sod;
mod store;
mod sync;
