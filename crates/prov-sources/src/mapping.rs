//! How a source's columns (or JSON keys) become an identity.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use prov_core::{Identity, LifecycleState, Value};
use serde::{Deserialize, Serialize};

use crate::error::RowError;

/// The type a column is read as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
#[non_exhaustive]
pub enum ColumnType {
    /// Text, trimmed.
    String,
    /// A whole number.
    Int,
    /// `true`/`false`, `yes`/`no`, `1`/`0`, `y`/`n` (any case).
    Bool,
    /// A date in `format` (chrono syntax, default `%Y-%m-%d`), as a timestamp at midnight UTC.
    Date {
        /// The date format.
        #[serde(default = "default_date_format")]
        format: String,
    },
    /// A list split on `separator` (default `;`), items trimmed, empty items dropped.
    List {
        /// The separator.
        #[serde(default = "default_separator")]
        separator: String,
    },
}

fn default_date_format() -> String {
    "%Y-%m-%d".to_owned()
}

fn default_separator() -> String {
    ";".to_owned()
}

/// Where one attribute comes from.
///
/// In a config file, either the column name alone (a string column) or a
/// table: `level = { column = "grade", type = "int", required = true }`,
/// `projects = { column = "proj", type = "list", separator = "," }`,
/// `hired = { column = "hire_date", type = "date", format = "%d/%m/%Y" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "ColumnSpec")]
#[non_exhaustive]
pub struct Column {
    /// The column (CSV header) or key (JSON).
    pub column: String,
    /// How to read it.
    pub ty: ColumnType,
    /// Whether an empty or missing value is an error (default: it is simply absent).
    pub required: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ColumnSpec {
    Name(String),
    Full(ColumnTable),
}

/// A [`Column`] written as a table in a config file:
/// `{ column = "grade", type = "int", required = true }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ColumnTable {
    /// The column (CSV header) or key (JSON).
    pub column: String,
    /// `string` (default), `int`, `bool`, `date` or `list`.
    #[serde(default, rename = "type")]
    pub ty: Option<String>,
    /// For `date`: the format (chrono syntax, default `%Y-%m-%d`).
    #[serde(default)]
    pub format: Option<String>,
    /// For `list`: the separator (default `;`).
    #[serde(default)]
    pub separator: Option<String>,
    /// Whether an empty or missing value is an error.
    #[serde(default)]
    pub required: bool,
}

impl TryFrom<ColumnSpec> for Column {
    type Error = String;

    fn try_from(spec: ColumnSpec) -> Result<Self, String> {
        match spec {
            ColumnSpec::Name(column) => Ok(Column::string(column)),
            ColumnSpec::Full(ColumnTable {
                column,
                ty,
                format,
                separator,
                required,
            }) => {
                let ty = match ty.as_deref().unwrap_or("string") {
                    "string" => ColumnType::String,
                    "int" => ColumnType::Int,
                    "bool" => ColumnType::Bool,
                    "date" => ColumnType::Date {
                        format: format.unwrap_or_else(default_date_format),
                    },
                    "list" => ColumnType::List {
                        separator: separator.unwrap_or_else(default_separator),
                    },
                    other => {
                        return Err(format!(
                            "column `{column}`: unknown type `{other}` (use string, int, bool, date or list)"
                        ));
                    }
                };
                Ok(Column {
                    column,
                    ty,
                    required,
                })
            }
        }
    }
}

impl Column {
    /// A string column.
    pub fn string(column: impl Into<String>) -> Self {
        Column {
            column: column.into(),
            ty: ColumnType::String,
            required: false,
        }
    }

    /// A column of another type.
    pub fn typed(column: impl Into<String>, ty: ColumnType) -> Self {
        Column {
            column: column.into(),
            ty,
            required: false,
        }
    }

    /// Marks the column required (builder style).
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
}

/// The mapping from a source record to an [`Identity`].
///
/// ```
/// use prov_sources::{Column, Mapping};
/// let m = Mapping::new("employee_id")
///     .state("status")
///     .dates("start_date", "end_date")
///     .manager("manager_id")
///     .attribute("given_name", Column::string("first_name").required())
///     .attribute("department", Column::string("dept"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Mapping {
    /// The column holding the identity id (required, unique).
    pub id: String,
    /// The column holding the lifecycle state; every identity is active when absent.
    #[serde(default)]
    pub state: Option<String>,
    /// Source values for states beyond the standard names (`A = "active"`, `T = "terminated"`).
    #[serde(default)]
    pub state_values: BTreeMap<String, LifecycleState>,
    /// The state a blank state cell stands for. Without it a blank state
    /// cell is an error naming the record: guessing "active" would give
    /// access to someone who may have left.
    #[serde(default)]
    pub state_default: Option<LifecycleState>,
    /// The start date column.
    #[serde(default)]
    pub start_date: Option<String>,
    /// The end date column.
    #[serde(default)]
    pub end_date: Option<String>,
    /// The format of the start and end dates (default `%Y-%m-%d`).
    #[serde(default = "default_date_format")]
    pub date_format: String,
    /// The manager's identity id column.
    #[serde(default)]
    pub manager: Option<String>,
    /// Attributes by name.
    #[serde(default)]
    pub attributes: BTreeMap<String, Column>,
    /// Whether columns the mapping does not name become string attributes
    /// under their own names (default: yes, so a plain export works unmapped).
    #[serde(default = "yes")]
    pub other_columns: bool,
    /// Attributes something downstream reads (the policy's expressions;
    /// see [`expect`](Self::expect)): each must come from a mapped column
    /// or, with `other_columns`, a column of that name, or loading fails
    /// naming it. A renamed column then stops the run instead of reading
    /// as a blank cell for everyone.
    #[serde(skip)]
    pub expected: std::collections::BTreeSet<String>,
}

fn yes() -> bool {
    true
}

impl Mapping {
    /// A mapping with `id` as the id column and every other column a string attribute.
    pub fn new(id: impl Into<String>) -> Self {
        Mapping {
            id: id.into(),
            state: None,
            state_values: BTreeMap::new(),
            state_default: None,
            start_date: None,
            end_date: None,
            date_format: default_date_format(),
            manager: None,
            attributes: BTreeMap::new(),
            other_columns: true,
            expected: std::collections::BTreeSet::new(),
        }
    }

    /// Sets the state column (builder style).
    pub fn state(mut self, column: impl Into<String>) -> Self {
        self.state = Some(column.into());
        self
    }

    /// Maps a source's own state value (builder style).
    pub fn state_value(mut self, value: impl Into<String>, state: LifecycleState) -> Self {
        self.state_values.insert(value.into(), state);
        self
    }

    /// Sets the start and end date columns (builder style).
    pub fn dates(mut self, start: impl Into<String>, end: impl Into<String>) -> Self {
        self.start_date = Some(start.into());
        self.end_date = Some(end.into());
        self
    }

    /// Sets the manager column (builder style).
    pub fn manager(mut self, column: impl Into<String>) -> Self {
        self.manager = Some(column.into());
        self
    }

    /// Maps an attribute (builder style).
    pub fn attribute(mut self, name: impl Into<String>, column: Column) -> Self {
        self.attributes.insert(name.into(), column);
        self
    }

    /// Sets the state a blank state cell stands for (builder style).
    pub fn state_default(mut self, state: LifecycleState) -> Self {
        self.state_default = Some(state);
        self
    }

    /// Names attributes something downstream reads, such as
    /// `CompiledPolicy::identity_attributes` (builder style): loading fails,
    /// naming each, when the source cannot give it.
    pub fn expect<I, S>(mut self, attributes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.expected.extend(attributes.into_iter().map(Into::into));
        self
    }

    /// The expected attributes no column gives, given `has_column(name)`:
    /// neither the column the mapping maps them from nor, unmapped under
    /// `other_columns`, a column of their own name.
    pub(crate) fn unsourced(&self, has_column: impl Fn(&str) -> bool) -> Vec<&str> {
        self.expected
            .iter()
            .map(String::as_str)
            .filter(|a| match self.attributes.get(*a) {
                Some(c) => !has_column(&c.column),
                None => !(self.other_columns && has_column(a)),
            })
            .collect()
    }

    /// Drops columns the mapping does not name (builder style).
    pub fn only_mapped(mut self) -> Self {
        self.other_columns = false;
        self
    }

    /// The columns the mapping names, to check a header against.
    pub(crate) fn named_columns(&self) -> Vec<&str> {
        let mut out = vec![self.id.as_str()];
        out.extend(self.state.as_deref());
        out.extend(self.start_date.as_deref());
        out.extend(self.end_date.as_deref());
        out.extend(self.manager.as_deref());
        out.extend(self.attributes.values().map(|c| c.column.as_str()));
        out
    }

    /// Builds an identity from one record, given as `get(column)`; every
    /// problem in the record is reported, naming the field.
    pub(crate) fn identity(
        &self,
        get: &dyn Fn(&str) -> Option<String>,
        all_columns: &[&str],
    ) -> Result<Identity, Vec<RowError>> {
        let mut errors = Vec::new();
        let text = |col: &str| {
            get(col)
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        let id = match text(&self.id) {
            Some(id) => id,
            None => {
                errors.push(RowError::new(&self.id, "the identity id is empty"));
                String::new()
            }
        };
        let mut who = Identity::new(id.as_str());
        if let Some(col) = &self.state {
            match (text(col), self.state_default) {
                (Some(v), _) => match self.state_values.get(&v).copied().or_else(|| LifecycleState::parse(&v)) {
                    Some(s) => who.state = s,
                    None => errors.push(RowError::new(col, format!("unknown state `{v}` (use pre_hire, active, suspended, terminated, or map it in state_values)"))),
                },
                (None, Some(s)) => who.state = s,
                (None, None) => errors.push(RowError::new(
                    col,
                    "the state is blank (set state_default in the mapping to read blank cells as a state)",
                )),
            }
        }
        let date = |col: &Option<String>, errors: &mut Vec<RowError>| -> Option<NaiveDate> {
            let col = col.as_deref()?;
            let v = text(col)?;
            match NaiveDate::parse_from_str(&v, &self.date_format) {
                Ok(d) => Some(d),
                Err(e) => {
                    errors.push(RowError::new(
                        col,
                        format!(
                            "`{v}` is not a date in the format {} ({e})",
                            self.date_format
                        ),
                    ));
                    None
                }
            }
        };
        who.start_date = date(&self.start_date, &mut errors);
        who.end_date = date(&self.end_date, &mut errors);
        if let (Some(s), Some(e)) = (who.start_date, who.end_date)
            && e < s
        {
            errors.push(RowError::new(
                self.end_date.as_deref().unwrap_or("end_date"),
                format!("the end date {e} is before the start date {s}"),
            ));
        }
        if let Some(col) = &self.manager {
            who.manager = text(col).map(prov_core::IdentityId::from);
        }
        for (name, c) in &self.attributes {
            match text(&c.column) {
                None if c.required => errors.push(RowError::new(
                    &c.column,
                    format!("required for attribute `{name}`, and empty"),
                )),
                None => {}
                Some(v) => match convert(&v, &c.ty) {
                    Ok(value) => {
                        who.attributes.insert(name.clone(), value);
                    }
                    Err(msg) => errors.push(RowError::new(&c.column, msg)),
                },
            }
        }
        if self.other_columns {
            let named = self.named_columns();
            for col in all_columns.iter().filter(|c| !named.contains(c)) {
                if let Some(v) = text(col)
                    && !who.attributes.contains_key(*col)
                {
                    who.attributes.insert((*col).to_owned(), Value::String(v));
                }
            }
        }
        if errors.is_empty() {
            Ok(who)
        } else {
            Err(errors)
        }
    }
}

fn convert(v: &str, ty: &ColumnType) -> Result<Value, String> {
    match ty {
        ColumnType::String => Ok(Value::String(v.to_owned())),
        ColumnType::Int => v
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| format!("`{v}` is not a whole number")),
        ColumnType::Bool => match v.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "1" => Ok(Value::Bool(true)),
            "false" | "no" | "n" | "0" => Ok(Value::Bool(false)),
            _ => Err(format!("`{v}` is not true or false")),
        },
        ColumnType::Date { format } => NaiveDate::parse_from_str(v, format)
            .map(|d| Value::Timestamp(d.and_time(chrono::NaiveTime::MIN).and_utc()))
            .map_err(|e| format!("`{v}` is not a date in the format {format} ({e})")),
        ColumnType::List { separator } => Ok(Value::List(
            v.split(separator.as_str())
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        )),
    }
}
