//! Source errors: every one names the file, the line and the field.

use std::fmt;

/// A problem with one field of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RowError {
    /// The column or key.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl RowError {
    pub(crate) fn new(field: &str, message: impl Into<String>) -> Self {
        RowError {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// One problem in a source.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceError {
    /// The file.
    pub file: String,
    /// The 1-based line (0 for file-level problems).
    pub line: u64,
    /// The column or key, when one is at fault.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found: a source with any bad record loads nothing, so no
/// identity is half-loaded or silently skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceErrors {
    /// The problems, in file order (the first 100 when there are more).
    pub errors: Vec<SourceError>,
    /// How many problems there were in all.
    pub total: usize,
}

/// Most problems kept; a file with thousands of bad rows needs the first ones, not all.
pub(crate) const MAX_ERRORS: usize = 100;

impl fmt::Display for SourceErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "the source has {} problem{}; nothing was loaded:",
            self.total,
            if self.total == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            writeln!(f, "  {e}")?;
        }
        if self.total > self.errors.len() {
            writeln!(f, "  ... and {} more", self.total - self.errors.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for SourceErrors {}

impl SourceErrors {
    pub(crate) fn file(file: &str, message: impl Into<String>) -> Self {
        SourceErrors {
            errors: vec![SourceError {
                file: file.to_owned(),
                line: 0,
                field: None,
                message: message.into(),
            }],
            total: 1,
        }
    }
}
