//! Distinguished names: escaping values into DNs and filters, parsing DNs
//! back (RFC 4514), and the "is this under my base" test that keeps the
//! connector inside its configured subtrees.

use std::fmt;

/// A value escaped for a DN attribute value (RFC 4514 section 2.4): `,`,
/// `+`, `"`, `\`, `<`, `>`, `;`, `=`, NUL, a leading `#` or space and a
/// trailing space are written as `\XX`.
pub fn escape_dn_value(value: &str) -> String {
    ldap3::dn_escape(value).into_owned()
}

/// A value escaped for a search filter (RFC 4515 section 3): `*`, `(`,
/// `)`, `\` and NUL are written as `\XX`.
pub fn escape_filter_value(value: &str) -> String {
    ldap3::ldap_escape(value).into_owned()
}

/// `(attribute=value)` with the value escaped.
pub(crate) fn equality(attribute: &str, value: &str) -> String {
    format!("({attribute}={})", escape_filter_value(value))
}

/// One `type=value` of an RDN, the value unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ava {
    /// The attribute type as written.
    pub attribute: String,
    /// The value, unescaped.
    pub value: String,
}

/// A parsed DN: RDNs from the entry up to the root, each one or more AVAs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dn {
    rdns: Vec<Vec<Ava>>,
}

/// Why a DN could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnError {
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for DnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DnError {}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl Dn {
    /// Parses `text` (RFC 4514 string form). The empty string is the root DN.
    pub fn parse(text: &str) -> Result<Dn, DnError> {
        let err = |m: &str| DnError {
            message: format!("{m} in DN {text:?}"),
        };
        let bytes = text.as_bytes();
        let mut rdns = Vec::new();
        if text.trim().is_empty() {
            return Ok(Dn { rdns });
        }
        let mut rdn: Vec<Ava> = Vec::new();
        let mut i = 0;
        loop {
            // Attribute type up to '='.
            let start = i;
            while i < bytes.len() && bytes.get(i) != Some(&b'=') {
                i += 1;
            }
            let attribute = text.get(start..i).unwrap_or_default().trim();
            if i >= bytes.len() || attribute.is_empty() {
                return Err(err("an RDN without `type=value`"));
            }
            if !attribute
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
            {
                return Err(err("a bad attribute type"));
            }
            i += 1; // '='
            // Value up to an unescaped ',' or '+'.
            let mut value: Vec<u8> = Vec::new();
            let mut trailing_escaped = 0usize; // bytes at the end that came from escapes
            while let Some(&c) = bytes.get(i) {
                match c {
                    b',' | b'+' => break,
                    b'\\' => {
                        let (Some(&a), b) = (bytes.get(i + 1), bytes.get(i + 2)) else {
                            return Err(err("a `\\` at the end"));
                        };
                        if let (Some(h), Some(l)) = (hex(a), b.copied().and_then(hex)) {
                            value.push(h * 16 + l);
                            i += 3;
                        } else if b" \"#+,;<=>\\".contains(&a) {
                            value.push(a);
                            i += 2;
                        } else {
                            return Err(err("a bad escape"));
                        }
                        trailing_escaped = value.len();
                    }
                    // Unescaped spaces before a value are not part of it.
                    b' ' if value.is_empty() => i += 1,
                    _ => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
            // Unescaped spaces after a value are not part of it.
            while value.len() > trailing_escaped && value.last() == Some(&b' ') {
                value.pop();
            }
            let value = String::from_utf8(value).map_err(|_| err("a value that is not UTF-8"))?;
            rdn.push(Ava {
                attribute: attribute.to_owned(),
                value,
            });
            match bytes.get(i) {
                Some(b'+') => {
                    i += 1;
                }
                Some(_) => {
                    rdns.push(std::mem::take(&mut rdn));
                    i += 1;
                }
                None => {
                    rdns.push(rdn);
                    return Ok(Dn { rdns });
                }
            }
        }
    }

    /// The first RDN's first value for `attribute` (case-insensitive type).
    pub fn rdn_value(&self, attribute: &str) -> Option<&str> {
        self.rdns
            .first()?
            .iter()
            .find(|a| a.attribute.eq_ignore_ascii_case(attribute))
            .map(|a| a.value.as_str())
    }

    /// How many RDNs.
    pub fn len(&self) -> usize {
        self.rdns.len()
    }

    /// Whether this is the root DN.
    pub fn is_empty(&self) -> bool {
        self.rdns.is_empty()
    }

    /// Whether this DN is `base` or below it. Types and values compare
    /// case-insensitively (the naming attributes of directories are
    /// case-insensitive strings).
    pub fn is_within(&self, base: &Dn) -> bool {
        if base.rdns.len() > self.rdns.len() {
            return false;
        }
        let skip = self.rdns.len() - base.rdns.len();
        self.rdns
            .iter()
            .skip(skip)
            .zip(&base.rdns)
            .all(|(a, b)| same_rdn(a, b))
    }

    /// Whether this DN is directly below `base` (one level).
    pub fn is_child_of(&self, base: &Dn) -> bool {
        self.rdns.len() == base.rdns.len() + 1 && self.is_within(base)
    }

    /// Whether the two name the same entry.
    pub fn same(&self, other: &Dn) -> bool {
        self.rdns.len() == other.rdns.len() && self.is_within(other)
    }

    /// A canonical text for maps: lower-cased types and values, escaped.
    pub fn normalized(&self) -> String {
        let mut out = String::new();
        for (i, rdn) in self.rdns.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let mut avas: Vec<String> = rdn
                .iter()
                .map(|a| {
                    format!(
                        "{}={}",
                        a.attribute.to_ascii_lowercase(),
                        escape_dn_value(&a.value.to_lowercase())
                    )
                })
                .collect();
            avas.sort();
            out.push_str(&avas.join("+"));
        }
        out
    }
}

/// The DN in one spelling: escapes as [`escape_dn_value`] writes them, no
/// spaces around separators, attribute types in lower case, values as given. The server may
/// spell one DN several ways (`\2C`, `\2c`, `\,`); ids use this one.
impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rdn) in self.rdns.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            for (j, ava) in rdn.iter().enumerate() {
                if j > 0 {
                    f.write_str("+")?;
                }
                write!(
                    f,
                    "{}={}",
                    ava.attribute.to_ascii_lowercase(),
                    escape_dn_value(&ava.value)
                )?;
            }
        }
        Ok(())
    }
}

/// `dn` in the one spelling of [`Dn`]'s `Display`, or as it is when it
/// does not parse.
pub(crate) fn canonical(dn: &str) -> String {
    // Nothing escaped, quoted, multi-valued or spaced: only the types may
    // need lower-casing, and often not even that.
    if !dn
        .bytes()
        .any(|b| matches!(b, b'\\' | b'"' | b'+' | b' ' | b';' | b'#' | b'<' | b'>'))
    {
        let types_lower = dn.split(',').all(|rdn| {
            rdn.split_once('=')
                .is_some_and(|(t, _)| !t.bytes().any(|b| b.is_ascii_uppercase()))
        });
        if types_lower {
            return dn.to_owned();
        }
    }
    Dn::parse(dn).map_or_else(|_| dn.to_owned(), |d| d.to_string())
}

fn same_rdn(a: &[Ava], b: &[Ava]) -> bool {
    a.len() == b.len()
        && a.iter().all(|x| {
            b.iter().any(|y| {
                x.attribute.eq_ignore_ascii_case(&y.attribute) && same_text(&x.value, &y.value)
            })
        })
}

/// Case-insensitive equality without allocating.
fn same_text(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
        || (!a.is_ascii() || !b.is_ascii())
            && a.chars()
                .flat_map(char::to_lowercase)
                .eq(b.chars().flat_map(char::to_lowercase))
}

/// `attribute=<escaped value>,parent`.
pub(crate) fn child(attribute: &str, value: &str, parent: &str) -> String {
    format!("{attribute}={},{parent}", escape_dn_value(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_values_round_trip_through_a_dn() {
        let hostile = [
            "*)(uid=*))(|(uid=*",
            "Smith, John",
            "a+b=c",
            "back\\slash",
            "nul\0byte",
            "#hash",
            " leading and trailing ",
            "quote\"semi;angle<>",
            "Zoë Ångström 李",
        ];
        for v in hostile {
            let dn = child("uid", v, "ou=people,dc=example,dc=org");
            let parsed = Dn::parse(&dn).unwrap_or_else(|e| panic!("{v:?}: {e}"));
            assert_eq!(parsed.rdn_value("uid"), Some(v), "{dn}");
            assert_eq!(parsed.len(), 4, "{dn}");
            let base = Dn::parse("OU=People,DC=example,DC=org").unwrap();
            assert!(parsed.is_child_of(&base));
        }
    }

    #[test]
    fn filters_escape_what_rfc_4515_says() {
        assert_eq!(
            equality("uid", "*)(uid=*))(|(uid=*"),
            "(uid=\\2a\\29\\28uid=\\2a\\29\\29\\28|\\28uid=\\2a)"
        );
        assert_eq!(equality("cn", "a\\b\0"), "(cn=a\\5cb\\00)");
        assert_eq!(equality("cn", "Zoë"), "(cn=Zoë)");
    }

    #[test]
    fn parsing_handles_spaces_plus_and_rejects_garbage() {
        let dn = Dn::parse("cn=a\\,b + uid=x , ou=people,dc=ex").unwrap();
        assert_eq!(dn.rdn_value("CN"), Some("a,b"));
        assert_eq!(dn.rdn_value("uid"), Some("x"));
        assert_eq!(dn.len(), 3);
        assert!(Dn::parse("").unwrap().is_empty());
        for bad in ["cn", "=x", "cn=x\\", "cn=x\\zz", "c n=x", "cn=x,"] {
            assert!(Dn::parse(bad).is_err(), "{bad:?} should not parse");
        }
        assert_eq!(
            canonical("uid=a\\2Cb ,  ou=people,dc=ex"),
            canonical("uid=a\\,b,ou=people,dc=ex")
        );
        assert_eq!(canonical("uid=a\\2cb,ou=people"), "uid=a\\2cb,ou=people");
        assert_eq!(canonical("CN=x,CN=Users,DC=corp"), "cn=x,cn=Users,dc=corp");
        assert_eq!(canonical("cn=x,cn=Users,dc=corp"), "cn=x,cn=Users,dc=corp");
        let a = Dn::parse("uid=X,ou=People,dc=ex").unwrap();
        let b = Dn::parse("UID=x, OU=people, DC=EX").unwrap();
        assert!(a.same(&b));
        assert_eq!(a.normalized(), b.normalized());
        assert!(!a.is_within(&Dn::parse("ou=groups,dc=ex").unwrap()));
    }
}
