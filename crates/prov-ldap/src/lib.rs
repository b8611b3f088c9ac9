//! prov-ldap: LDAP directories as prov targets.
//!
//! [`LdapConnector`] implements [`prov_core::Connector`] for OpenLDAP,
//! 389-DS and Active Directory over [`ldap3`] with rustls: accounts are
//! entries under configured bases (their id is the DN), entitlements are
//! groups (their id is the group's name). The directory's dialect (object
//! classes, naming, how groups hold members, how accounts are disabled) is
//! configuration with presets ([`Dialect`]), not code.
//!
//! ```no_run
//! # async fn demo() -> prov_core::Result<()> {
//! use prov_core::{Connector, ConnectorExt};
//! use prov_ldap::{Dialect, LdapConfig, LdapConnector, Password};
//!
//! let cfg = LdapConfig::new(Dialect::OpenLdap, "ldaps://ldap.example.org", "dc=example,dc=org")
//!     .bind("cn=admin,dc=example,dc=org", Password::new("secret"));
//! let ldap = LdapConnector::new(cfg)?;
//! ldap.check().await?;
//! let everyone = ldap.list_all_accounts().await?;
//! # Ok(()) }
//! ```
//!
//! From a settings file, [`LdapSettings`] reads the same settings with
//! serde (the `prov` command's `kind = "ldap"` targets) and builds the
//! [`LdapConfig`].
//!
//! Security: a password bind needs TLS (`ldaps://` or StartTLS) unless
//! `danger_allow_plaintext_bind` is set; every value placed in a DN is escaped per RFC 4514 and every
//! value in a filter per RFC 4515; the bind password never appears in
//! `Debug` output or errors; TLS is rustls (aws-lc-rs) only.

mod config;
mod conn;
mod connector;
pub mod dn;
mod error;
mod kept;
mod settings;

pub use config::{
    AccountsConfig, AttributeMap, ChangeLog, ConnectionConfig, Dialect, DisableMethod,
    GroupsConfig, LdapConfig, MemberStyle, Password, Syntax, Tls,
};
pub use connector::LdapConnector;
pub use settings::LdapSettings;
