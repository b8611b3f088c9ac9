//! Typed attribute values.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Attributes of an identity or an account, ordered by name so that
/// everything built from them (plans, hashes, output) is deterministic.
pub type Attributes = BTreeMap<String, Value>;

/// Attributes whose values are secret (an initial password), by name.
pub type SecretAttributes = BTreeMap<String, SecretValue>;

/// A value that must not be seen: `Debug` prints `[redacted]`, and it is
/// neither `Display` nor serialisable, so it cannot reach a plan, an
/// outbox row, an audit record or a log by accident. Only
/// [`expose`](Self::expose) gives the value, for the one call that sends it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SecretValue(Value);

impl SecretValue {
    /// Wraps a value.
    pub fn new(value: Value) -> Self {
        SecretValue(value)
    }

    /// The value, for the request that writes it to its target.
    pub fn expose(&self) -> &Value {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// One attribute value.
///
/// Serialised with its type as the key (`{"string": "Ada"}`,
/// `{"timestamp": "2026-01-01T00:00:00Z"}`), so that a timestamp never comes
/// back as a string and bytes never come back as a list of numbers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Value {
    /// No value (an attribute that is present but empty).
    Null,
    /// Text.
    String(String),
    /// True or false.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// An instant in UTC.
    Timestamp(DateTime<Utc>),
    /// Raw bytes (certificates, photos, AD `objectGUID`).
    Bytes(#[serde(with = "hex_bytes")] Vec<u8>),
    /// A multi-valued attribute.
    List(Vec<Value>),
}

impl Value {
    /// The text, when this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, when this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The integer, when this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The name of this value's type, as used in error messages and schemas.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::String(_) => "string",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Timestamp(_) => "timestamp",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::String(s) => f.write_str(s),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Timestamp(t) => write!(f, "{}", t.to_rfc3339()),
            Value::Bytes(b) => write!(f, "<{} bytes>", b.len()),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<DateTime<Utc>> for Value {
    fn from(t: DateTime<Utc>) -> Self {
        Value::Timestamp(t)
    }
}
impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::Bytes(b)
    }
}
impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(items: Vec<T>) -> Self {
        Value::List(items.into_iter().map(Into::into).collect())
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    const DIGITS: &[u8; 16] = b"0123456789abcdef";

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            out.push(char::from(DIGITS[usize::from(b >> 4)]));
            out.push(char::from(DIGITS[usize::from(b & 0xf)]));
        }
        s.serialize_str(&out)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() % 2 != 0 {
            return Err(D::Error::custom(
                "hex bytes must have an even number of digits",
            ));
        }
        let nibble = |c: u8| -> Result<u8, D::Error> {
            match c {
                b'0'..=b'9' => Ok(c - b'0'),
                b'a'..=b'f' => Ok(c - b'a' + 10),
                b'A'..=b'F' => Ok(c - b'A' + 10),
                _ => Err(D::Error::custom(format!(
                    "not a hex digit: {:?}",
                    char::from(c)
                ))),
            }
        };
        text.as_bytes()
            .chunks(2)
            .map(|pair| match pair {
                [hi, lo] => Ok(nibble(*hi)? << 4 | nibble(*lo)?),
                _ => Err(D::Error::custom(
                    "hex bytes must have an even number of digits",
                )),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_json_with_their_types() {
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let values = vec![
            Value::Null,
            Value::from("x"),
            Value::from(true),
            Value::from(42),
            Value::from(t),
            Value::Bytes(vec![0, 1, 0xfe, 0xff]),
            Value::List(vec![Value::from("a"), Value::from(1)]),
        ];
        let json = serde_json::to_string(&values).unwrap_or_default();
        assert!(json.contains("\"bytes\":\"0001feff\""), "{json}");
        let back: Vec<Value> = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, values);
    }

    #[test]
    fn bad_hex_is_an_error_not_a_panic() {
        assert!(serde_json::from_str::<Value>(r#"{"bytes":"abc"}"#).is_err());
        assert!(serde_json::from_str::<Value>(r#"{"bytes":"zz"}"#).is_err());
    }
}
