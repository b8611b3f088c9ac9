//! The core of prov: the identity model, attribute values, the [`Connector`]
//! trait every target implements, [`Capabilities`] and the one [`Error`].
//!
//! This crate does no network I/O and starts no runtime: it has no tokio,
//! HTTP or TLS crate in its dependency tree, so a connector author depends
//! on it alone. The one thing it reads is a [`SecretRef`]'s environment
//! variable or file, when a connector's settings ask it to.
//!
//! ```
//! use prov_core::{Identity, LifecycleState, Value};
//!
//! let ada = Identity::new("e1001")
//!     .with("given_name", "Ada")
//!     .with("department", "Engineering")
//!     .with("level", 4);
//! assert_eq!(ada.state, LifecycleState::Active);
//! assert_eq!(ada.attr("department"), Some(&Value::from("Engineering")));
//! ```
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod capabilities;
mod clock;
mod connector;
mod error;
mod ids;
mod model;
mod secret_ref;
mod value;

pub use async_trait::async_trait;
pub use capabilities::{Capabilities, RateLimit};
pub use clock::{Clock, SystemClock};
pub use connector::{
    AttributeDelta, BatchOutcome, Change, ChangeSet, Connector, ConnectorExt, CreateAccount,
    ListRequest, MAX_PAGES, MemberFailure, MembershipChange, Page, PageGuard, UpdateAccount,
};
pub use error::{BackendDetail, Error, ErrorKind, Operation, Result};
pub use ids::{AccountId, EntitlementId, IdentityId, TargetId};
pub use model::{Account, Entitlement, EntitlementKind, EntitlementRef, Identity, LifecycleState};
pub use secret_ref::SecretRef;
pub use value::{Attributes, SecretAttributes, SecretValue, Value};

/// Dates and times as the model uses them (re-exported `chrono` types).
pub mod time {
    pub use chrono::{DateTime, NaiveDate, Utc};
}
