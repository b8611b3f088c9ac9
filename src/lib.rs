//! prov: embeddable identity provisioning.
//!
//! This facade re-exports the workspace crates behind features:
//! [`core`] always, [`resolver`] (feature `resolver`), [`engine`] (feature
//! `engine`, the planner so far), `testkit` (feature `testkit`, off by
//! default: the conformance suite and in-memory connector for tests). The
//! README has the crate map and a quick start.
//!
//! ```
//! use prov::core::Identity;
//! use prov::resolver::Policy;
//!
//! let policy = Policy::load(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/policy.toml"))
//!     .and_then(|p| p.compile())
//!     .map_err(|e| e.to_string())?;
//! let grace = Identity::new("E1002")
//!     .with("given_name", "Grace").with("family_name", "Hopper")
//!     .with("email", "grace.hopper@example.com").with("employment_type", "employee")
//!     .with("department", "Engineering").with("title", "VP Engineering")
//!     .with("location", "Berlin");
//! let desired = policy.desired(&grace, chrono::Utc::now());
//! let ldap = &desired.targets[&prov::core::TargetId::new("ldap")];
//! assert_eq!(ldap.account.as_ref().map(|a| a.login.as_str()), Some("grace.hopper"));
//! # Ok::<(), String>(())
//! ```
#![forbid(unsafe_code)]

pub use prov_core as core;
#[cfg(feature = "engine")]
pub use prov_engine as engine;
#[cfg(feature = "ldap")]
pub use prov_ldap as ldap;
#[cfg(feature = "resolver")]
pub use prov_resolver as resolver;
#[cfg(feature = "scim")]
pub use prov_scim as scim;
#[cfg(feature = "sources")]
pub use prov_sources as sources;
#[cfg(feature = "testkit")]
pub use prov_testkit as testkit;
