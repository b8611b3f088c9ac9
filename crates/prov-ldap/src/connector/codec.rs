//! Attribute values to and from the directory, per syntax.

use super::*;

pub(super) fn decode(syntax: Syntax, values: &[Vec<u8>]) -> Option<Value> {
    let text = |v: &Vec<u8>| String::from_utf8_lossy(v).into_owned();
    let first = values.first()?;
    Some(match syntax {
        Syntax::String => Value::String(text(first)),
        Syntax::Strings => Value::List(values.iter().map(|v| Value::String(text(v))).collect()),
        Syntax::Integer => text(first)
            .trim()
            .parse::<i64>()
            .map(Value::Int)
            .unwrap_or_else(|_| Value::String(text(first))),
        Syntax::Boolean => match text(first).as_str() {
            "TRUE" => Value::Bool(true),
            "FALSE" => Value::Bool(false),
            other => Value::String(other.to_owned()),
        },
        Syntax::Time => parse_time(&text(first))
            .map(Value::Timestamp)
            .unwrap_or_else(|| Value::String(text(first))),
        Syntax::Binary => Value::Bytes(first.clone()),
    })
}

pub(super) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let digits = s.trim_end_matches('Z');
    let digits = digits.split(['.', ',']).next()?;
    NaiveDateTime::parse_from_str(digits, "%Y%m%d%H%M%S")
        .ok()
        .map(|t| t.and_utc())
}

pub(super) fn encode(syntax: Syntax, value: &Value) -> std::result::Result<Vec<Vec<u8>>, String> {
    let one = |v: &Value| -> std::result::Result<Vec<u8>, String> {
        Ok(match v {
            Value::String(s) => s.clone().into_bytes(),
            Value::Int(i) => i.to_string().into_bytes(),
            Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.as_bytes().to_vec(),
            Value::Timestamp(t) => t.format("%Y%m%d%H%M%SZ").to_string().into_bytes(),
            Value::Bytes(b) => b.clone(),
            Value::Null => return Err("is null".to_owned()),
            Value::List(_) => return Err("is a list inside a list".to_owned()),
            _ => return Err("has a type the directory cannot hold".to_owned()),
        })
    };
    match (syntax, value) {
        (_, Value::Null) => Ok(Vec::new()),
        (Syntax::Strings, Value::List(items)) => items.iter().map(one).collect(),
        (_, Value::List(_)) => {
            Err("is a list, and the directory attribute takes one value".to_owned())
        }
        (Syntax::Integer, Value::String(s)) if s.trim().parse::<i64>().is_err() => {
            Err(format!("{s:?} is not an integer"))
        }
        (_, v) => {
            let bytes = one(v)?;
            if bytes.is_empty() {
                // LDAP has no empty values: an empty string removes the attribute.
                Ok(Vec::new())
            } else {
                Ok(vec![bytes])
            }
        }
    }
}

/// A modification with text values as one with byte values.
pub(super) fn bytes_mod(m: Mod<String>) -> Mod<Vec<u8>> {
    let set = |v: HashSet<String>| v.into_iter().map(String::into_bytes).collect();
    match m {
        Mod::Add(a, v) => Mod::Add(a.into_bytes(), set(v)),
        Mod::Delete(a, v) => Mod::Delete(a.into_bytes(), set(v)),
        Mod::Replace(a, v) => Mod::Replace(a.into_bytes(), set(v)),
        Mod::Increment(a, v) => Mod::Increment(a.into_bytes(), v.into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_encode_and_decode_per_syntax() {
        assert_eq!(
            encode(Syntax::String, &Value::from("x")),
            Ok(vec![b"x".to_vec()])
        );
        assert_eq!(encode(Syntax::String, &Value::from("")), Ok(Vec::new()));
        assert!(encode(Syntax::String, &Value::List(vec![Value::from("a")])).is_err());
        assert!(encode(Syntax::Integer, &Value::from("ten")).is_err());
        assert_eq!(
            encode(Syntax::Boolean, &Value::Bool(true)),
            Ok(vec![b"TRUE".to_vec()])
        );
        assert_eq!(
            decode(Syntax::Integer, &[b"1001".to_vec()]),
            Some(Value::Int(1001))
        );
        assert_eq!(
            decode(Syntax::Boolean, &[b"FALSE".to_vec()]),
            Some(Value::Bool(false))
        );
        let t = decode(Syntax::Time, &[b"20261122093000Z".to_vec()]);
        assert!(matches!(t, Some(Value::Timestamp(_))), "{t:?}");
        assert_eq!(decode(Syntax::String, &[]), None);
        assert_eq!(first_rdn_end("uid=a\\,b,ou=x"), Some(8));
    }
}
