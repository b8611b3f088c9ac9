//! prov's test kit, for connector authors and for the engine's own tests:
//!
//! - [`conformance`]: the `Connector` contract as async test cases, picked
//!   from the connector's capabilities, reporting like a test tool;
//! - [`MemoryConnector`]: the reference connector that passes the suite,
//!   with modelled target limits, and a file-backed mode that outlives the process;
//! - [`FaultyConnector`]: injects retryable and permanent errors, lost
//!   replies, latency and rate limits from a seed;
//! - [`ManualClock`]: time moved by hand;
//! - [`slapd`] and [`samba`]: throwaway OpenLDAP and Samba AD servers;
//!   [`moto`]: a throwaway AWS emulator.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

pub mod conformance;
mod faulty;
mod memory;
pub mod moto;
pub mod samba;
pub mod slapd;
mod throttle;

pub use faulty::{FaultConfig, FaultStats, FaultyConnector};
pub use memory::{ManualClock, MemoryConnector, MemoryLimits, MemoryStats};
pub use throttle::TokenBucket;
