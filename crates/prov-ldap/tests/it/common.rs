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
    // The test server listens on the loopback without TLS.
    cfg.connection.danger_allow_plaintext_bind = true;
    cfg
}

pub(crate) fn connector(server: &Slapd, dialect: Dialect) -> LdapConnector {
    LdapConnector::new(config(server, dialect)).unwrap()
}

/// Adds groups (with the placeholder member) through ldapadd.
pub(crate) fn add_groups(server: &Slapd, classes: &[&str], attr: &str, names: &[&str]) {
    server.add_groups(classes, attr, names).unwrap();
}

/// The first value of `attr` on the entry `dn`, read with ldapsearch ("" when absent).
pub(crate) fn attribute(server: &Slapd, dn: &str, attr: &str) -> String {
    let out = server
        .tool("ldapsearch", &["-LLL", "-b", dn, "-s", "base", attr], "")
        .unwrap();
    let prefix = format!("{attr}: ");
    out.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or("")
        .to_owned()
}
