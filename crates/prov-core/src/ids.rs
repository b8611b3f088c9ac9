//! Newtype ids: an identity id can never be passed where a target id is meant.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// Cheap to clone (a shared string), ordered and hashed by its text.
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Makes an id from its text.
            pub fn new(id: impl AsRef<str>) -> Self {
                Self(Arc::from(id.as_ref()))
            }

            /// The id's text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::new(s)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(Arc::from(s))
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// The stable id of a person (or service identity), usually the HR employee id.
    IdentityId
);
id_type!(
    /// The name of a target system as configured (`ldap`, `github`, `aws-prod`).
    TargetId
);
id_type!(
    /// A target's own id for an account: an LDAP DN, a SCIM `id`, an AWS user id.
    AccountId
);
id_type!(
    /// A target's own id for a group, role, policy or licence.
    EntitlementId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_serialise_as_plain_strings() {
        let id = TargetId::new("ldap");
        assert_eq!(serde_json::to_string(&id).ok().as_deref(), Some("\"ldap\""));
        let back: TargetId = serde_json::from_str("\"ldap\"").unwrap_or_else(|_| TargetId::new(""));
        assert_eq!(back, id);
        assert_eq!(format!("{id:?}"), "TargetId(\"ldap\")");
    }
}
