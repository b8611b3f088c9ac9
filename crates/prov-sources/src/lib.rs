//! Identity sources for prov: HR exports as CSV and JSON Lines, read with
//! a [`Mapping`] from columns to the identity model.
//!
//! A source with any bad record loads nothing: every problem is reported
//! with its file, line and field, so no identity is half-loaded or silently
//! skipped (a leaver missing from a half-read export would look like an
//! orphan; a mover half-read would lose access).
//!
//! ```
//! use prov_sources::{Column, CsvSource, Mapping, Source};
//! let dir = std::env::temp_dir().join(format!("prov-sources-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("hr.csv");
//! std::fs::write(&path, "id,first,dept,status\n1,Ada,Engineering,active\n2,Bob,Sales,T\n").unwrap();
//! let mapping = Mapping::new("id")
//!     .state("status")
//!     .state_value("T", prov_core::LifecycleState::Terminated)
//!     .attribute("given_name", Column::string("first").required())
//!     .attribute("department", Column::string("dept"));
//! let people = CsvSource::new(&path, mapping).load().unwrap();
//! assert_eq!(people.len(), 2);
//! assert_eq!(people[1].state, prov_core::LifecycleState::Terminated);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod error;
mod files;
mod mapping;

pub use error::{RowError, SourceError, SourceErrors};
pub use files::{CsvSource, JsonLinesSource};
pub use mapping::{Column, ColumnTable, ColumnType, Mapping};

use prov_core::Identity;

/// Where identities come from.
///
/// # Contract
///
/// `load` returns every identity, or an error listing every problem found
/// (with file, line and field) and no identities at all: never a partial
/// load. Ids are unique; a repeated id is an error naming both lines.
pub trait Source: Send + Sync {
    /// A name for messages (the file path).
    fn name(&self) -> String;
    /// Every identity.
    fn load(&self) -> Result<Vec<Identity>, SourceErrors>;
}
