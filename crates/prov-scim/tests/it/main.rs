//! prov-scim's integration tests: one binary, a module per concern.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod canaille;
mod client;
mod engine;
mod filter;
mod patch;
mod server;
