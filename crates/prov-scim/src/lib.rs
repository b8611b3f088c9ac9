//! prov-scim: SCIM 2.0 (RFC 7643, RFC 7644) for prov.
//!
//! The protocol modules do no I/O and are always built: [`filter`] parses,
//! evaluates and prints filters (`userName eq "bjensen"`, `emails[type eq
//! "work" and value co "@example.org"]`) and PATCH paths; [`patch`] applies
//! PATCH requests to resources and makes the smallest one between two
//! versions; [`schema`] has RFC 7643's User, enterprise User and Group
//! schemas as data (canonical names, multi-valued, case-exact, mutability);
//! [`types`] has the resources and messages (User with the enterprise
//! extension, Group, ListResponse, PatchOp, Error, ServiceProviderConfig,
//! Schema, ResourceType, BulkRequest, BulkResponse) with serde.
//!
//! ```
//! use prov_scim::filter::Filter;
//! use serde_json::json;
//!
//! let f: Filter = r#"emails[type eq "work" and value co "@example.org"] and active eq true"#
//!     .parse()
//!     .map_err(|e: prov_scim::filter::FilterError| e.to_string())?;
//! let bjensen = json!({
//!     "userName": "bjensen",
//!     "active": true,
//!     "emails": [{"type": "work", "value": "bjensen@Example.org"}],
//! });
//! assert!(f.matches(&bjensen));
//! // Printing gives a filter that parses to the same tree.
//! assert_eq!(f.to_string().parse::<Filter>().map_err(|e| e.to_string())?, f);
//! # Ok::<(), String>(())
//! ```
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

#[cfg(feature = "client")]
pub mod client;
pub mod filter;
pub mod patch;
pub mod schema;
#[cfg(feature = "server")]
pub mod server;
pub mod types;
