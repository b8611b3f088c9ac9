//! SCIM filters (RFC 7644 section 3.4.2.2): the tree, a parser with
//! limits and positioned errors, an evaluator over resources as JSON, and
//! a printer whose output parses back to the same tree.
//!
//! The grammar is the RFC's: `eq ne co sw ew pr gt ge lt le`; `not (...)`,
//! `and` binding tighter than `or`; grouping; value paths
//! (`emails[type eq "work"]`); sub-attributes (`name.familyName`);
//! URN-prefixed paths
//! (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber`).
//! Keywords, operators, the literals `true`, `false` and `null`, and
//! attribute names are case-insensitive. Two things beyond the RFC's
//! ABNF, because identity providers send them: a value path followed by a
//! sub-attribute comparison (`emails[type eq "work"].value eq "x"`, read
//! as `emails[type eq "work" and value eq "x"]`), and `$ref` as an
//! attribute name.
//!
//! `and` and `or` chains are n-ary (`a or b or c` is one [`Filter::Or`]),
//! so a 500-term lookup by id does not count as 500 levels of nesting.

mod eval;
mod parse;

use std::fmt;

pub use eval::default_case_exact;
#[cfg(any(feature = "server", feature = "client"))]
pub(crate) use parse::attr_path as parse_attr_path;

/// The longest filter accepted, in bytes.
pub const MAX_LENGTH: usize = 16 * 1024;
/// The deepest nesting accepted: parentheses (a group or `not (...)`)
/// and value paths, each one level.
pub const MAX_DEPTH: usize = 32;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Filter {
    /// `PATH pr`: the attribute has a value (not null, not empty).
    Present(AttrPath),
    /// `PATH OP VALUE`.
    Compare(AttrPath, CompareOp, CompValue),
    /// `PATH[FILTER]`: some value of the multi-valued `PATH` matches
    /// `FILTER`, whose paths name sub-attributes of that value.
    ValuePath(AttrPath, Box<Filter>),
    /// `not (FILTER)`.
    Not(Box<Filter>),
    /// `A and B and ...` (at least two).
    And(Vec<Filter>),
    /// `A or B or ...` (at least two).
    Or(Vec<Filter>),
}

/// An attribute path: `[URN:]name[.sub]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct AttrPath {
    /// The schema URN, when written (`urn:ietf:params:scim:schemas:core:2.0:User`).
    pub urn: Option<String>,
    /// The attribute, as written.
    pub name: String,
    /// The sub-attribute, as written.
    pub sub: Option<String>,
}

impl AttrPath {
    /// `name`, no URN, no sub-attribute.
    pub fn new(name: impl Into<String>) -> Self {
        AttrPath {
            urn: None,
            name: name.into(),
            sub: None,
        }
    }

    /// `name.sub`.
    pub fn sub(name: impl Into<String>, sub: impl Into<String>) -> Self {
        AttrPath {
            urn: None,
            name: name.into(),
            sub: Some(sub.into()),
        }
    }

    /// With the schema URN `urn`.
    pub fn with_urn(mut self, urn: impl Into<String>) -> Self {
        self.urn = Some(urn.into());
        self
    }

    /// Whether this path names `name` (and `sub`), ignoring case and the URN.
    pub fn is(&self, name: &str, sub: Option<&str>) -> bool {
        self.name.eq_ignore_ascii_case(name)
            && match (&self.sub, sub) {
                (None, None) => true,
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => false,
            }
    }
}

/// A PATCH operation's path (RFC 7644 section 3.5.2): an attribute
/// (`name.familyName`, `urn:...:User:employeeNumber`), or a value path
/// with an optional sub-attribute (`emails[type eq "work"].value`,
/// `members[value eq "2819c223"]`). A refused path is answered with 400
/// and `scimType` `invalidPath`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PatchPath {
    /// The attribute (with a sub-attribute only when there is no filter).
    pub attr: AttrPath,
    /// The value filter, for a value path.
    pub filter: Option<Filter>,
    /// The sub-attribute after a value path's `]`.
    pub sub: Option<String>,
}

impl std::str::FromStr for PatchPath {
    type Err = FilterError;

    fn from_str(text: &str) -> Result<Self, FilterError> {
        parse::parse_path(text)
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CompareOp {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Contains.
    Co,
    /// Starts with.
    Sw,
    /// Ends with.
    Ew,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Ge,
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
}

impl CompareOp {
    /// The operator as written in a filter (lower case).
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        const ALL: [CompareOp; 9] = [
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Co,
            CompareOp::Sw,
            CompareOp::Ew,
            CompareOp::Gt,
            CompareOp::Ge,
            CompareOp::Lt,
            CompareOp::Le,
        ];
        ALL.into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(word))
    }
}

/// The value a comparison compares with.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CompValue {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A JSON number.
    Number(serde_json::Number),
    /// A JSON string (dates are strings too).
    String(String),
}

/// Why a filter was refused: where, and what. A server answers it with 400
/// and `scimType` [`FilterError::SCIM_TYPE`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FilterError {
    /// The byte offset in the filter where the problem is.
    pub position: usize,
    /// What is wrong there.
    pub message: String,
}

impl FilterError {
    /// The RFC 7644 `scimType` of a refused filter.
    pub const SCIM_TYPE: &'static str = "invalidFilter";

    pub(crate) fn at(position: usize, message: impl Into<String>) -> Self {
        FilterError {
            position,
            message: message.into(),
        }
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid filter at position {}: {}",
            self.position, self.message
        )
    }
}

impl std::error::Error for FilterError {}

impl std::str::FromStr for Filter {
    type Err = FilterError;

    fn from_str(text: &str) -> Result<Self, FilterError> {
        parse::parse(text)
    }
}

impl Filter {
    /// `A and B`, flattening chains.
    pub fn and(self, other: Filter) -> Filter {
        join(self, other, true)
    }

    /// `A or B`, flattening chains.
    pub fn or(self, other: Filter) -> Filter {
        join(self, other, false)
    }

    /// The attribute equality this filter is, when it is exactly one:
    /// `userName eq "bjensen"` gives the path and the value (what a store
    /// answers from an index instead of a scan).
    pub fn as_equality(&self) -> Option<(&AttrPath, &CompValue)> {
        match self {
            Filter::Compare(path, CompareOp::Eq, value) => Some((path, value)),
            _ => None,
        }
    }
}

fn join(a: Filter, b: Filter, and: bool) -> Filter {
    let mut items = Vec::new();
    for f in [a, b] {
        match (f, and) {
            (Filter::And(fs), true) | (Filter::Or(fs), false) => items.extend(fs),
            (f, _) => items.push(f),
        }
    }
    if and {
        Filter::And(items)
    } else {
        Filter::Or(items)
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("null"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Number(n) => write!(f, "{n}"),
            CompValue::String(s) => f.write_str(&serde_json::Value::String(s.clone()).to_string()),
        }
    }
}

impl fmt::Display for Filter {
    /// The filter in canonical form: lower-case keywords, `not (...)`, an
    /// `or` inside an `and` in parentheses, strings JSON-quoted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Present(p) => write!(f, "{p} pr"),
            Filter::Compare(p, op, v) => write!(f, "{p} {} {v}", op.as_str()),
            Filter::ValuePath(p, inner) => write!(f, "{p}[{inner}]"),
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::And(fs) => {
                for (i, item) in fs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" and ")?;
                    }
                    // A nested `and` too: the tree stays as it was built.
                    if matches!(item, Filter::Or(_) | Filter::And(_)) {
                        write!(f, "({item})")?;
                    } else {
                        write!(f, "{item}")?;
                    }
                }
                Ok(())
            }
            Filter::Or(fs) => {
                for (i, item) in fs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" or ")?;
                    }
                    if matches!(item, Filter::Or(_)) {
                        write!(f, "({item})")?;
                    } else {
                        write!(f, "{item}")?;
                    }
                }
                Ok(())
            }
        }
    }
}
