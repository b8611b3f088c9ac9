//! HR exports as CSV and JSON Lines.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use prov_core::Identity;

use crate::Source;
use crate::error::{MAX_ERRORS, RowError, SourceError, SourceErrors};
use crate::mapping::Mapping;

/// Collects identities and errors as records are read.
struct Loader<'a> {
    file: &'a str,
    errors: Vec<SourceError>,
    total: usize,
    seen: HashMap<String, u64>,
    out: Vec<Identity>,
}

impl<'a> Loader<'a> {
    fn new(file: &'a str) -> Self {
        Loader {
            file,
            errors: Vec::new(),
            total: 0,
            seen: HashMap::new(),
            out: Vec::new(),
        }
    }

    fn error(&mut self, line: u64, field: Option<&str>, message: impl Into<String>) {
        self.total += 1;
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(SourceError {
                file: self.file.to_owned(),
                line,
                field: field.map(str::to_owned),
                message: message.into(),
            });
        }
    }

    fn record(&mut self, line: u64, id_field: &str, result: Result<Identity, Vec<RowError>>) {
        match result {
            Ok(who) => match self.seen.get(who.id.as_str()) {
                Some(first) => {
                    let msg = format!("identity id `{}` is also on line {first}", who.id);
                    self.error(line, Some(id_field), msg);
                }
                None => {
                    self.seen.insert(who.id.as_str().to_owned(), line);
                    self.out.push(who);
                }
            },
            Err(errs) => {
                for e in errs {
                    self.error(line, Some(&e.field), e.message);
                }
            }
        }
    }

    fn finish(self) -> Result<Vec<Identity>, SourceErrors> {
        if self.total == 0 {
            Ok(self.out)
        } else {
            Err(SourceErrors {
                errors: self.errors,
                total: self.total,
            })
        }
    }
}

/// An HR export as CSV with a header row.
#[derive(Debug, Clone)]
pub struct CsvSource {
    path: PathBuf,
    mapping: Mapping,
    delimiter: u8,
}

impl CsvSource {
    /// Reads `path` with `mapping`, comma-separated.
    pub fn new(path: impl AsRef<Path>, mapping: Mapping) -> Self {
        CsvSource {
            path: path.as_ref().to_path_buf(),
            mapping,
            delimiter: b',',
        }
    }

    /// Uses another delimiter (builder style).
    pub fn delimiter(mut self, d: u8) -> Self {
        self.delimiter = d;
        self
    }
}

impl Source for CsvSource {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn load(&self) -> Result<Vec<Identity>, SourceErrors> {
        let file = self.name();
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .trim(csv::Trim::Headers)
            .from_path(&self.path)
            .map_err(|e| SourceErrors::file(&file, format!("cannot read: {e}")))?;
        let headers = reader
            .headers()
            .map_err(|e| SourceErrors::file(&file, format!("cannot read the header: {e}")))?
            .clone();
        let columns: Vec<&str> = headers.iter().collect();
        let mut loader = Loader::new(&file);
        for col in self.mapping.named_columns() {
            if !columns.contains(&col) {
                loader.error(
                    1,
                    Some(col),
                    format!(
                        "the mapping names column `{col}`, which the header lacks (it has: {})",
                        columns.join(", ")
                    ),
                );
            }
        }
        for attr in self.mapping.unsourced(|c| columns.contains(&c)) {
            loader.error(
                1,
                Some(attr),
                format!(
                    "the policy reads attribute `{attr}`, which no column gives: the mapping \
                     does not map it and the header has no column `{attr}` (it has: {}); \
                     a renamed column would otherwise read as blank for everyone",
                    columns.join(", ")
                ),
            );
        }
        if loader.total > 0 {
            return loader.finish();
        }
        let index: HashMap<&str, usize> =
            columns.iter().enumerate().map(|(i, c)| (*c, i)).collect();
        for row in reader.records() {
            let row = match row {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    loader.error(line, None, format!("not a valid CSV record: {e}"));
                    continue;
                }
            };
            let line = row.position().map_or(0, |p| p.line());
            let get = |col: &str| index.get(col).and_then(|&i| row.get(i)).map(str::to_owned);
            let result = self.mapping.identity(&get, &columns);
            loader.record(line, &self.mapping.id, result);
        }
        loader.finish()
    }
}

/// An HR export as JSON Lines: one JSON object per line.
#[derive(Debug, Clone)]
pub struct JsonLinesSource {
    path: PathBuf,
    mapping: Mapping,
}

impl JsonLinesSource {
    /// Reads `path` with `mapping` (keys in place of columns; lists are
    /// joined with `;` for list columns).
    pub fn new(path: impl AsRef<Path>, mapping: Mapping) -> Self {
        JsonLinesSource {
            path: path.as_ref().to_path_buf(),
            mapping,
        }
    }
}

fn json_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Array(items) => Some(
            items
                .iter()
                .filter_map(json_text)
                .collect::<Vec<_>>()
                .join(";"),
        ),
        serde_json::Value::Object(_) => Some(v.to_string()),
    }
}

impl Source for JsonLinesSource {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn load(&self) -> Result<Vec<Identity>, SourceErrors> {
        let file = self.name();
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| SourceErrors::file(&file, format!("cannot read: {e}")))?;
        let mut loader = Loader::new(&file);
        let mut seen: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        let mut records = 0usize;
        for (i, raw) in text.lines().enumerate() {
            let line = u64::try_from(i + 1).unwrap_or(u64::MAX);
            if raw.trim().is_empty() {
                continue;
            }
            let obj: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(raw) {
                Ok(serde_json::Value::Object(o)) => o,
                Ok(_) => {
                    loader.error(line, None, "not a JSON object");
                    continue;
                }
                Err(e) => {
                    loader.error(line, None, format!("not valid JSON: {e}"));
                    continue;
                }
            };
            let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            for k in &keys {
                if !seen.contains(*k) {
                    seen.insert((*k).to_owned());
                }
            }
            records += 1;
            let get = |k: &str| obj.get(k).and_then(json_text);
            let result = self.mapping.identity(&get, &keys);
            loader.record(line, &self.mapping.id, result);
        }
        // JSON Lines has no header, and a record may leave out a key it has
        // no value for; but a key the policy reads that no record has
        // stands for a renamed one (it would read as blank everywhere).
        if records > 0 {
            for attr in self.mapping.unsourced(|k| seen.contains(k)) {
                loader.error(
                    0,
                    Some(attr),
                    format!(
                        "the policy reads attribute `{attr}`, which no key gives: no record \
                         has the key the mapping reads it from (or, unmapped, a key `{attr}`)"
                    ),
                );
            }
        }
        loader.finish()
    }
}
