//! Policy errors: each names the role, rule or field, and the file and line
//! when the policy came from a file.

use std::fmt;

use crate::policy::{Origin, line_of};

/// One problem in a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicyError {
    /// Where in the policy: `roles.admin.inherits`, `rules.sales.when`,
    /// `targets.ldap.attributes.mail` (empty for file-level errors).
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// The file, when the policy was loaded from one.
    pub file: Option<String>,
    /// The 1-based line, when the policy was parsed from text.
    pub line: Option<usize>,
}

impl PolicyError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        PolicyError {
            path: path.into(),
            message: message.into(),
            file: None,
            line: None,
        }
    }

    pub(crate) fn in_file(mut self, file: &str) -> Self {
        self.file = Some(file.to_owned());
        self
    }

    /// Finds the line for `path` (and, when given, the offending `needle`
    /// value under it) in the text the policy came from.
    pub(crate) fn locate(mut self, origin: Option<&Origin>, needle: Option<&str>) -> Self {
        if let Some(origin) = origin {
            self.file.clone_from(&origin.file);
            self.line = find_line(&origin.text, &self.path, needle);
        }
        self
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}: ")?,
            (Some(file), None) => write!(f, "{file}: ")?,
            (None, Some(line)) => write!(f, "line {line}: ")?,
            (None, None) => {}
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for PolicyError {}

/// Every problem found in a policy: compiling reports them all at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors {
    /// The problems, in the order of the policy's sections.
    pub errors: Vec<PolicyError>,
}

impl PolicyErrors {
    /// Whether any error's text contains `needle` (handy in tests).
    pub fn mentions(&self, needle: &str) -> bool {
        self.errors.iter().any(|e| e.to_string().contains(needle))
    }
}

impl From<PolicyError> for PolicyErrors {
    fn from(e: PolicyError) -> Self {
        PolicyErrors { errors: vec![e] }
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        writeln!(
            f,
            "the policy has {n} error{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

/// Walks the dotted path through the text, each key searched as a whole
/// word after the previous one; this finds TOML headers (`[roles.admin]`),
/// TOML keys and JSON keys alike. Returns the line of the last thing found.
fn find_line(text: &str, path: &str, needle: Option<&str>) -> Option<usize> {
    let mut at = 0usize;
    let mut found = None;
    let parts = path.split('.').filter(|p| !p.is_empty());
    for part in parts.chain(needle) {
        match find_word(text, part, at) {
            Some(pos) => {
                at = pos + part.len();
                found = Some(pos);
            }
            None => break,
        }
    }
    found.map(|pos| line_of(text, pos))
}

fn find_word(text: &str, word: &str, from: usize) -> Option<usize> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    let mut start = from;
    while let Some(rel) = text.get(start..).and_then(|rest| rest.find(word)) {
        let pos = start + rel;
        let before = text.get(..pos).and_then(|s| s.chars().next_back());
        let after = text.get(pos + word.len()..).and_then(|s| s.chars().next());
        if !before.is_some_and(is_ident) && !after.is_some_and(is_ident) {
            return Some(pos);
        }
        start = pos + word.len().max(1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_line_of_a_nested_key_in_toml_and_json() {
        let toml = "[roles.base]\n\n[roles.admin]\ninherits = [\"base\", \"ghost\"]\n";
        assert_eq!(
            find_line(toml, "roles.admin.inherits", Some("ghost")),
            Some(4)
        );
        let json = "{\n \"roles\": {\n  \"admin\": {\n   \"inherits\": [\"ghost\"]\n  }\n }\n}";
        assert_eq!(
            find_line(json, "roles.admin.inherits", Some("ghost")),
            Some(4)
        );
        assert_eq!(find_line(json, "roles.nobody", None), Some(2));
    }
}
