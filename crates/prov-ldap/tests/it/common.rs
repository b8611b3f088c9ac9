use prov_ldap::{Dialect, LdapConfig, LdapConnector, Password};
use prov_testkit::slapd::{Slapd, SlapdOptions};

pub(crate) fn slapd() -> Slapd {
    Slapd::start_with(&SlapdOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn config(server: &Slapd, dialect: Dialect) -> LdapConfig {
    let mut cfg = LdapConfig::new(dialect, server.url.clone(), &server.suffix).bind(
        server.admin_dn.clone(),
        Password::new(server.admin_password.clone()),
    );
    cfg.groups.placeholder_member = Some(server.nobody());
    cfg
}

pub(crate) fn connector(server: &Slapd, dialect: Dialect) -> LdapConnector {
    LdapConnector::new(config(server, dialect)).unwrap()
}

/// Adds groups (with the placeholder member) through ldapadd.
pub(crate) fn add_groups(server: &Slapd, class: &str, attr: &str, names: &[&str]) {
    let mut ldif = String::new();
    for n in names {
        let member = if attr == "memberUid" {
            "nobody".to_owned()
        } else {
            server.nobody()
        };
        let extra = if class.contains("posixGroup") {
            "gidNumber: 5000\n"
        } else {
            ""
        };
        ldif.push_str(&format!(
            "dn: cn={n},{}\nobjectClass: {class}\ncn: {n}\n{attr}: {member}\n{extra}\n",
            server.groups()
        ));
    }
    server.tool("ldapadd", &[], &ldif).unwrap();
}
