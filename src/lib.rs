//! prov: embeddable identity provisioning.
//!
//! This facade re-exports the workspace crates behind features:
//! [`core`] always, [`resolver`] (feature `resolver`), [`testkit`] (feature `testkit`).
//! See the README for the crate map.
#![forbid(unsafe_code)]

pub use prov_core as core;
#[cfg(feature = "resolver")]
pub use prov_resolver as resolver;
#[cfg(feature = "testkit")]
pub use prov_testkit as testkit;
