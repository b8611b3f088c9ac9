//! prov-testkit's own tests: the suite passes the reference connector and
//! catches deliberately broken ones.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test reports failure by panicking

mod broken;
mod faults;
mod memory;
