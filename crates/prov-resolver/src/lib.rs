//! prov's resolver: a policy of roles, rules, assignments, leases and
//! account templates, compiled once and resolved per identity into the
//! desired state of every target, with the reasons behind each entitlement.
//!
//! Pure and synchronous: no I/O, no clock (time is a parameter), the same
//! inputs give the same output.
//!
//! ```
//! use prov_core::{Identity, TargetId, EntitlementId};
//! use prov_resolver::Policy;
//!
//! let policy = Policy::from_toml(r#"
//!     [attributes]
//!     department = "string"
//!
//!     [targets.ldap]
//!
//!     [roles.employee]
//!     grants.ldap = ["cn=staff"]
//!     [roles.engineering]
//!     inherits = ["employee"]
//!     grants.ldap = ["cn=eng"]
//!
//!     [rules.eng]
//!     when = 'department == "Engineering"'
//!     roles = ["engineering"]
//! "#).unwrap().compile().unwrap();
//!
//! let ada = Identity::new("e1").with("department", "Engineering");
//! let now = chrono::Utc::now();
//! let desired = policy.desired(&ada, now);
//! let ldap = &desired.targets[&TargetId::new("ldap")];
//! assert_eq!(ldap.entitlements.len(), 2);
//! let why = policy.explain(&ada, &TargetId::new("ldap"), &EntitlementId::new("cn=staff"), now);
//! assert_eq!(why[0].to_string(), "rule eng -> role engineering -> role employee -> ldap:cn=staff");
//! ```
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod compile;
mod error;
mod expr;
mod policy;
mod resolve;
mod whatif;

pub use compile::{CompiledPolicy, MAX_GRACE_DAYS};
pub use error::{PolicyError, PolicyErrors};
pub use policy::{
    AccountWhen, Assignment, AttrType, Enforce, Lease, Leaver, LeaverAction, Policy, Resolve, Role,
    Rule, SodException, SodRule, TargetPolicy,
};
pub use resolve::{
    AccountView, Chain, DesiredAccount, DesiredState, DesiredTarget, Extra, LeaverPlan,
    MissingValue, PolicyStats, Problem, Resolution, RoleGrant, SodViolation, Source, TargetView,
    effective_state, leaving_moment,
};
pub use whatif::{AccessChange, IdentityChange, RoleCounts, TargetCounts, WhatIf, what_if};
