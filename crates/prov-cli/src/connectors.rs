//! The target kinds the command knows, one entry each in [`KINDS`]: the
//! kind's name, its settings type (the keys a `[targets.ID]` of that kind
//! takes beside the common ones, refused when unknown) and how it opens.
//! A new connector is one more entry, and docs/config.md must list its
//! keys (a test says so).

use std::path::Path;
use std::sync::Arc;

use prov_core::{Connector, TargetId};
use prov_resolver::CompiledPolicy;

use crate::config::Config;
use crate::output::Fail;

/// What opening a target has to go on.
pub(crate) struct Opening<'a> {
    pub(crate) target: &'a TargetId,
    pub(crate) config: &'a Config,
    /// The config's directory: relative paths start there.
    pub(crate) base: &'a Path,
    pub(crate) policy: &'a CompiledPolicy,
    /// `validate` and `what-if`: nothing may be written.
    pub(crate) offline: bool,
}

/// A kind's connector, or `None` when, offline, it has nothing to offer
/// without writing.
pub(crate) type Opened = Result<Option<Arc<dyn Connector>>, Fail>;

/// One target kind.
pub(crate) struct Kind {
    /// The word after `kind =`.
    pub(crate) name: &'static str,
    /// The keys of its settings type (serde's names): the config
    /// reference's test checks docs/config.md against them.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) keys: fn() -> &'static [&'static str],
    /// Reads the settings and opens the connector; `None` when, offline,
    /// the kind has nothing to offer without writing.
    pub(crate) open: fn(&Opening<'_>) -> Opened,
}

/// Every kind, in the order `prov` names them.
pub(crate) const KINDS: &[Kind] = &[
    Kind {
        name: "ldap",
        keys: keys_of::<prov_ldap::LdapSettings>,
        open: open_ldap,
    },
    Kind {
        name: "scim",
        keys: keys_of::<prov_scim::client::ScimSettings>,
        open: open_scim,
    },
    Kind {
        name: "aws-identity-center",
        keys: keys_of::<prov_aws::IdentityCenterSettings>,
        open: open_aws_identity_center,
    },
    Kind {
        name: "aws-iam",
        keys: keys_of::<prov_aws::IamSettings>,
        open: open_aws_iam,
    },
    Kind {
        name: "file",
        keys: keys_of::<crate::file_target::FileSettings>,
        open: open_file,
    },
];

/// The kind named `name`.
pub(crate) fn kind(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}

/// The kinds' names, for an error: `ldap, file`.
pub(crate) fn names() -> String {
    KINDS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
}

fn open_ldap(o: &Opening<'_>) -> Opened {
    let t = o.target.as_str();
    let settings: prov_ldap::LdapSettings = o.config.settings_of(t)?;
    let cfg = settings
        .into_config(o.base)
        .map_err(|e| o.config.settings_fail(t, e.field(), e.message()))?;
    let conn = prov_ldap::LdapConnector::new(cfg)
        .map_err(|e| o.config.settings_fail(t, e.field(), e.message()))?;
    Ok(Some(Arc::new(conn)))
}

/// Reads a target's settings of type `S` and opens the connector `make`
/// builds from them; a settings error names the target's key.
fn open_with<S, C>(o: &Opening<'_>, make: impl FnOnce(S, &Path) -> prov_core::Result<C>) -> Opened
where
    S: serde::de::DeserializeOwned,
    C: Connector + 'static,
{
    let t = o.target.as_str();
    let settings: S = o.config.settings_of(t)?;
    let conn =
        make(settings, o.base).map_err(|e| o.config.settings_fail(t, e.field(), e.message()))?;
    Ok(Some(Arc::new(conn)))
}

fn open_scim(o: &Opening<'_>) -> Opened {
    open_with(o, prov_scim::client::ScimSettings::into_connector)
}

fn open_aws_identity_center(o: &Opening<'_>) -> Opened {
    open_with(o, |s: prov_aws::IdentityCenterSettings, _| {
        s.into_connector()
    })
}

fn open_aws_iam(o: &Opening<'_>) -> Opened {
    open_with(o, |s: prov_aws::IamSettings, _| s.into_connector())
}

fn open_file(o: &Opening<'_>) -> Opened {
    let t = o.target.as_str();
    let settings: crate::file_target::FileSettings = o.config.settings_of(t)?;
    // A file target offers whatever the policy grants, so `validate
    // --online` has nothing to ask it, and offline its files stay as they are.
    if o.offline {
        return Ok(None);
    }
    let conn = crate::file_target::FileTarget::open(
        &o.base.join(settings.path),
        o.policy.entitlements_on(o.target).into_iter().cloned(),
    )
    .map_err(|e| Fail::new(crate::output::code::USAGE, e.to_string()))?;
    Ok(Some(Arc::new(conn)))
}

/// What serde's derive says a type's keys (a struct's fields) or words
/// (an enum's variants) are: a deserializer that records the names it is
/// asked for and gives up. Empty for a type that is neither.
pub(crate) fn keys_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::value::Error;
    use serde::de::{Error as _, Visitor};
    struct Recorder<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Recorder<'_> {
        type Error = Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(Error::custom("not a struct or an enum"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Error> {
            *self.0 = fields;
            Err(Error::custom("recorded"))
        }
        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _: &'static str,
            variants: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Error> {
            *self.0 = variants;
            Err(Error::custom("recorded"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map identifier ignored_any
        }
    }
    let mut names: &'static [&'static str] = &[];
    let _ = T::deserialize(Recorder(&mut names));
    names
}
