//! The connector's settings as a settings file writes them (serde), with
//! documented defaults, and the [`LdapConfig`] they build.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prov_core::SecretRef;
use serde::Deserialize;

use crate::config::{AttributeMap, Dialect, LdapConfig, Password, Tls};

/// An LDAP target's settings, as the `prov` command's `[targets.ID]` with
/// `kind = "ldap"` writes them:
///
/// ```toml
/// url = "ldaps://ldap.example.org"
/// suffix = "dc=example,dc=org"
/// bind_dn = "cn=prov,ou=services,dc=example,dc=org"
/// password = { env = "LDAP_PASSWORD" }
/// ```
///
/// Every other setting has a default, given on its field. Unknown keys are
/// refused. [`LdapSettings::into_config`] builds and checks the
/// [`LdapConfig`]; what these keys do not reach (filters, object classes,
/// the disable method) the dialect presets, and code that builds an
/// `LdapConfig` itself, do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LdapSettings {
    /// `ldap://host:389` or `ldaps://host:636`. Required.
    pub url: String,
    /// The naming context, e.g. `dc=example,dc=org`. Required.
    pub suffix: String,
    /// The preset: `openldap` (the default), `openldap-unique-member`,
    /// `posix`, `rfc2307bis` or `active-directory`.
    #[serde(default = "openldap")]
    pub dialect: Dialect,
    /// The DN to bind as; anonymous when unset.
    #[serde(default)]
    pub bind_dn: Option<String>,
    /// The bind password, `{ env = "VAR" }` or `{ file = "PATH" }`;
    /// required with `bind_dn`.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// Upgrade `ldap://` with StartTLS before binding (default false).
    #[serde(default)]
    pub starttls: bool,
    /// PEM file of the CA certificates to trust (relative to the settings
    /// file); the system's roots when unset.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Where accounts are created and searched (default from the
    /// dialect: `ou=people,SUFFIX`, `CN=Users,SUFFIX` on AD).
    #[serde(default)]
    pub accounts_base: Option<String>,
    /// Where groups live (default from the dialect: `ou=groups,SUFFIX`,
    /// `CN=Users,SUFFIX` on AD).
    #[serde(default)]
    pub groups_base: Option<String>,
    /// A member every group keeps, for schemas where a group needs one
    /// (groupOfNames). Unset: none.
    #[serde(default)]
    pub placeholder_member: Option<String>,
    /// The gidNumbers a posixGroup the engine creates takes, `[first,
    /// last]` (default for the `posix` and `rfc2307bis` dialects: `[10000,
    /// 59999]`; other dialects' groups have none).
    #[serde(default)]
    pub gid_numbers: Option<[u32; 2]>,
    /// Members per modify request (default 500).
    #[serde(default = "batch_size")]
    pub batch_size: usize,
    /// Entries per page when listing (default 1000).
    #[serde(default = "page_size")]
    pub page_size: usize,
    /// Operations in flight on the connection (default 32).
    #[serde(default = "max_in_flight")]
    pub max_in_flight: usize,
    /// More model-to-directory attribute names, e.g. `{ employee_id =
    /// "employeeNumber" }` (single-valued strings), beside the dialect's.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// The directory attribute that keeps each create's marker, the proof
    /// after a lost reply that prov made the account (e.g. `description`
    /// where nothing else writes it). Unset: no marker.
    #[serde(default)]
    pub marker_attribute: Option<String>,
    /// The suffix of the accesslog overlay's database (e.g.
    /// `cn=accesslog`), where `changes_since` reads changes and deletions
    /// on OpenLDAP. Unset: no `changes_since` (Active Directory reads its
    /// update sequence numbers and needs none).
    #[serde(default)]
    pub accesslog: Option<String>,
    /// Allow a password bind over `ldap://` without StartTLS, the password
    /// in the clear on the network (default false: refused). For a test
    /// server on the loopback.
    #[serde(default)]
    pub danger_allow_plaintext_bind: bool,
}

fn openldap() -> Dialect {
    Dialect::OpenLdap
}
fn batch_size() -> usize {
    500
}
fn page_size() -> usize {
    1000
}
fn max_in_flight() -> usize {
    32
}

impl LdapSettings {
    /// Settings for `url` and `suffix`, everything else at its default.
    pub fn new(url: impl Into<String>, suffix: impl Into<String>) -> Self {
        LdapSettings {
            url: url.into(),
            suffix: suffix.into(),
            dialect: openldap(),
            bind_dn: None,
            password: None,
            starttls: false,
            ca_file: None,
            accounts_base: None,
            groups_base: None,
            placeholder_member: None,
            gid_numbers: None,
            batch_size: batch_size(),
            page_size: page_size(),
            max_in_flight: max_in_flight(),
            attributes: BTreeMap::new(),
            marker_attribute: None,
            accesslog: None,
            danger_allow_plaintext_bind: false,
        }
    }

    /// The connector's config: the dialect's preset with these settings
    /// over it, the password read (from its variable or file; relative
    /// paths from `base`, the settings file's directory), and checked. An
    /// error names the settings key at fault (`password`, `url`, ...).
    pub fn into_config(self, base: &Path) -> prov_core::Result<LdapConfig> {
        let bad = |field: &str, msg: String| prov_core::Error::invalid_input(field, msg);
        let mut cfg = LdapConfig::new(self.dialect, self.url, &self.suffix);
        match (self.bind_dn, &self.password) {
            (Some(dn), Some(secret)) => {
                let password = secret.reveal(base).map_err(|e| bad("password", e))?;
                cfg = cfg.bind(dn, Password::new(password));
            }
            (Some(_), None) => {
                return Err(bad("password", "is required with bind_dn".to_owned()));
            }
            (None, Some(_)) => {
                return Err(bad(
                    "bind_dn",
                    "a password is set but no DN to bind as".to_owned(),
                ));
            }
            (None, None) => {}
        }
        let starttls = self.starttls;
        if starttls {
            cfg.connection.tls = Tls::StartTls;
        }
        cfg.connection.danger_allow_plaintext_bind = self.danger_allow_plaintext_bind;
        cfg.connection.ca_file = self.ca_file.map(|f| base.join(f));
        cfg.connection.max_in_flight = self.max_in_flight;
        if let Some(b) = self.accounts_base {
            cfg.accounts.base = b;
        }
        if let Some(b) = self.groups_base {
            cfg.groups.base = b;
        }
        cfg.groups.placeholder_member = self.placeholder_member;
        if let Some([first, last]) = self.gid_numbers {
            cfg.groups.gid_numbers = Some((first, last));
        }
        cfg.groups.batch_size = self.batch_size;
        cfg.page_size = self.page_size;
        cfg.accounts.marker_attribute = self.marker_attribute;
        if let Some(base) = self.accesslog {
            if self.dialect == Dialect::ActiveDirectory {
                return Err(bad(
                    "accesslog",
                    "is OpenLDAP's; Active Directory's changes come from its update sequence \
                     numbers"
                        .to_owned(),
                ));
            }
            cfg.changes = crate::config::ChangeLog::AccessLog { base };
        }
        for (model, ldap) in self.attributes {
            cfg.accounts
                .attributes
                .insert(model, AttributeMap::string(ldap));
        }
        cfg.validate().map_err(|e| {
            // The config's field names, as the settings spell them.
            let key = match e.field() {
                Some("connection.url") => "url",
                Some("connection.tls") if starttls => "starttls",
                Some("connection.tls") => "url",
                Some("connection.bind_dn") => "bind_dn",
                Some("connection.max_in_flight") => "max_in_flight",
                Some("accounts.base") => "accounts_base",
                Some("groups.base") => "groups_base",
                Some("groups.gid_numbers") => "gid_numbers",
                Some("accounts.marker_attribute") => "marker_attribute",
                Some("groups.batch_size") => "batch_size",
                Some("changes") => "accesslog",
                Some(other) => other,
                None => "url",
            }
            .to_owned();
            bad(&key, e.message().to_owned())
        })?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::LdapSettings;
    use crate::config::{Dialect, Tls};
    use std::path::Path;

    fn parse(json: &str) -> Result<LdapSettings, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = parse(r#"{"url":"ldaps://h","suffix":"dc=x"}"#).unwrap();
        let cfg = s.into_config(Path::new("/etc/prov")).unwrap();
        assert_eq!(cfg.dialect, Dialect::OpenLdap);
        assert_eq!(cfg.groups.batch_size, 500);
        assert_eq!(cfg.page_size, 1000);
        assert_eq!(cfg.connection.max_in_flight, 32);
        assert_eq!(cfg.connection.tls, Tls::FromUrl);
        assert_eq!(cfg.accounts.base, "ou=people,dc=x");
        assert!(cfg.connection.bind_dn.is_none());
    }

    #[test]
    fn keys_reach_the_config_and_mistakes_name_their_key() {
        let s = parse(
            r#"{"url":"ldap://h","suffix":"DC=corp","dialect":"active-directory","starttls":true,
                "ca_file":"ca.pem","page_size":50,"attributes":{"employee_id":"employeeNumber"}}"#,
        )
        .unwrap();
        let cfg = s.into_config(Path::new("/etc/prov")).unwrap();
        assert_eq!(cfg.dialect, Dialect::ActiveDirectory);
        assert_eq!(cfg.accounts.base, "CN=Users,DC=corp");
        assert_eq!(cfg.connection.tls, Tls::StartTls);
        assert_eq!(
            cfg.connection.ca_file.as_deref(),
            Some(Path::new("/etc/prov/ca.pem"))
        );
        assert_eq!(cfg.page_size, 50);
        assert_eq!(
            cfg.accounts.attributes["employee_id"].ldap,
            "employeeNumber"
        );

        let e = parse(r#"{"url":"ldap://h","suffix":"dc=x","dialect":"openldap2"}"#).unwrap_err();
        assert!(
            e.contains("openldap2") && e.contains("active-directory"),
            "{e}"
        );
        let e = parse(r#"{"url":"ldap://h","suffix":"dc=x","urll":"x"}"#).unwrap_err();
        assert!(e.contains("unknown field `urll`"), "{e}");
        let e = parse(r#"{"url":"ldap://h","suffix":"dc=x","password":"hunter2"}"#).unwrap_err();
        assert!(
            e.contains("{ env = \"VAR\" }") && !e.contains("hunter2"),
            "{e}"
        );

        let bind = |extra: &str| {
            parse(&format!(
                r#"{{"url":"ldap://h","suffix":"dc=x","bind_dn":"cn=a,dc=x",
                    "password":{{"danger_inline":"pw"}}{extra}}}"#
            ))
            .unwrap()
            .into_config(Path::new("."))
        };
        let e = bind("").unwrap_err();
        assert_eq!(e.field(), Some("url"), "{e}");
        assert!(e.message().contains("danger_allow_plaintext_bind"), "{e}");
        bind(r#","starttls":true"#).unwrap();
        bind(r#","danger_allow_plaintext_bind":true"#).unwrap();
        let e = bind(r#","starttls":true,"page_size":0"#).unwrap_err();
        assert_eq!(e.field(), Some("page_size"), "{e}");
        let e = bind(r#","starttls":true,"batch_size":0"#).unwrap_err();
        assert_eq!(e.field(), Some("batch_size"), "{e}");
        // The change log: OpenLDAP's accesslog database, AD's USNs by default.
        let cfg = bind(r#","starttls":true,"accesslog":"cn=accesslog""#).unwrap();
        assert_eq!(
            cfg.changes,
            crate::config::ChangeLog::AccessLog {
                base: "cn=accesslog".to_owned()
            }
        );
        assert_eq!(
            bind(r#","starttls":true"#).unwrap().changes,
            crate::config::ChangeLog::None
        );
        let e = bind(r#","starttls":true,"accesslog":"not a dn""#).unwrap_err();
        assert_eq!(e.field(), Some("accesslog"), "{e}");
        let ad = parse(r#"{"url":"ldaps://h","suffix":"DC=x","dialect":"active-directory"}"#)
            .unwrap()
            .into_config(Path::new("."))
            .unwrap();
        assert_eq!(ad.changes, crate::config::ChangeLog::Usn);
        let e = parse(
            r#"{"url":"ldaps://h","suffix":"DC=x","dialect":"active-directory","accesslog":"cn=log"}"#,
        )
        .unwrap()
        .into_config(Path::new("."))
        .unwrap_err();
        assert_eq!(e.field(), Some("accesslog"), "{e}");
        let e = parse(r#"{"url":"ldap://h","suffix":"dc=x","bind_dn":"cn=a"}"#)
            .unwrap()
            .into_config(Path::new("."))
            .unwrap_err();
        assert_eq!(e.field(), Some("password"), "{e}");
        let e = parse(r#"{"url":"http://h","suffix":"dc=x"}"#)
            .unwrap()
            .into_config(Path::new("."))
            .unwrap_err();
        assert_eq!(e.field(), Some("url"), "{e}");
    }
}
