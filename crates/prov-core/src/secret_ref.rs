//! Where a credential in a settings file comes from: an environment
//! variable or a file, never the settings file itself unless it says
//! `danger_inline`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// A credential named in connector settings: `{ env = "VAR" }`, `{ file =
/// "PATH" }` (its first line; a relative path is taken from the settings
/// file's directory), or `{ danger_inline = "..." }`, the value itself,
/// which a settings file shared or committed would leak. A bare string is
/// refused: the settings file is not a secret store.
///
/// Never printed (its `Debug` names the variable or the file, not the
/// value) and never serialised.
///
/// ```
/// use prov_core::SecretRef;
/// # #[derive(serde::Deserialize)]
/// # struct S { password: SecretRef }
/// let s: S = serde_json::from_str(r#"{"password": {"env": "LDAP_PASSWORD"}}"#).unwrap();
/// assert_eq!(format!("{:?}", s.password), "SecretRef(env LDAP_PASSWORD)");
/// assert!(serde_json::from_str::<S>(r#"{"password": "hunter2"}"#).is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretRef {
    /// An environment variable holding the value.
    Env(String),
    /// A file whose first line is the value.
    File(PathBuf),
    /// The value itself, written in the settings (`danger_inline`).
    Inline(String),
}

impl SecretRef {
    /// The value: the variable's, or the file's (relative to `base`) with
    /// its line ending removed. The error says which variable or file, and
    /// never holds the value.
    pub fn reveal(&self, base: &Path) -> Result<String, String> {
        match self {
            SecretRef::Env(var) => {
                std::env::var(var).map_err(|_| format!("the environment variable {var} is not set"))
            }
            SecretRef::File(file) => {
                let path = base.join(file);
                std::fs::read_to_string(&path)
                    .map(|s| s.lines().next().unwrap_or_default().to_owned())
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))
            }
            SecretRef::Inline(value) => Ok(value.clone()),
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(var) => write!(f, "SecretRef(env {var})"),
            SecretRef::File(file) => write!(f, "SecretRef(file {})", file.display()),
            SecretRef::Inline(_) => f.write_str("SecretRef(<inline, redacted>)"),
        }
    }
}

const HOW: &str = "a secret is written as { env = \"VAR\" } or { file = \"PATH\" } \
                   ({ danger_inline = \"...\" } puts the value itself in the settings)";

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Ref;
        impl<'de> Visitor<'de> for Ref {
            type Value = SecretRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(HOW)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<SecretRef, E> {
                Err(E::custom(format!(
                    "a value written in the settings is refused: {HOW}"
                )))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretRef, A::Error> {
                let mut out = None;
                while let Some(key) = map.next_key::<String>()? {
                    let value: String = map.next_value()?;
                    let r = match key.as_str() {
                        "env" => SecretRef::Env(value),
                        "file" => SecretRef::File(PathBuf::from(value)),
                        "danger_inline" => SecretRef::Inline(value),
                        other => {
                            return Err(de::Error::custom(format!("`{other}`: {HOW}")));
                        }
                    };
                    if out.replace(r).is_some() {
                        return Err(de::Error::custom(format!("more than one source: {HOW}")));
                    }
                }
                out.ok_or_else(|| de::Error::custom(HOW))
            }
        }
        d.deserialize_any(Ref)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::SecretRef;
    use std::path::Path;

    fn parse(json: &str) -> Result<SecretRef, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn the_three_sources_and_the_refusals() {
        assert_eq!(parse(r#"{"env":"X"}"#).unwrap(), SecretRef::Env("X".into()));
        assert_eq!(
            parse(r#"{"file":"s.txt"}"#).unwrap(),
            SecretRef::File("s.txt".into())
        );
        let inline = parse(r#"{"danger_inline":"hunter2"}"#).unwrap();
        assert_eq!(inline.reveal(Path::new(".")).unwrap(), "hunter2");
        assert!(!format!("{inline:?}").contains("hunter2"));
        for bad in [
            r#""hunter2""#,
            r#"{"env":"X","file":"y"}"#,
            r#"{"enviroment":"X"}"#,
            "{}",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("{ env = \"VAR\" }"), "{bad}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn a_file_gives_its_first_line_and_a_missing_one_is_named() {
        let dir = std::env::temp_dir().join(format!("prov-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("s.txt"), "pa ss\r\nignored\n").unwrap();
        let r = SecretRef::File("s.txt".into());
        assert_eq!(r.reveal(&dir).unwrap(), "pa ss");
        let e = SecretRef::File("none.txt".into()).reveal(&dir).unwrap_err();
        assert!(e.contains("none.txt"), "{e}");
        let e = SecretRef::Env("PROV_SURELY_UNSET_VAR".into())
            .reveal(&dir)
            .unwrap_err();
        assert_eq!(
            e,
            "the environment variable PROV_SURELY_UNSET_VAR is not set"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
