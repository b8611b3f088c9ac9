//! prov-resolver integration tests: one binary, modules by concern.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test reports failure by panicking
mod compile_errors;
mod props;
mod resolve;
