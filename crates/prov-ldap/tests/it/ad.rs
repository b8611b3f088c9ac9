//! The Active Directory dialect against slapd with an AD look-alike schema
//! (prov_testkit::slapd, `ad_like`): `user` objects named by `cn` under
//! `CN=Users`, `sAMAccountName` logins, `userAccountControl` disabling,
//! `group` with `member` and `memberOf`. Not an AD: the filter on
//! `objectCategory` (an AD special) is replaced by `(objectClass=user)`
//! and the groups' by `(objectClass=group)` (no isCriticalSystemObject),
//! and AD's own behaviours (ranged `member` retrieval, `unicodePwd`) are
//! covered by unit tests of recorded replies, not here.

use prov_core::{
    AttributeDelta, Attributes, Connector, CreateAccount, EntitlementId, MembershipChange,
    UpdateAccount, Value,
};
use prov_ldap::{Dialect, LdapConfig, LdapConnector, Password};
use prov_testkit::conformance::{Namespace, run_all};
use prov_testkit::slapd::{Slapd, SlapdOptions};

fn ad_server() -> Slapd {
    let mut o = SlapdOptions::default();
    o.ad_like = true;
    o.access_log = true;
    o.suffix = "DC=corp,DC=example".to_owned();
    let server = Slapd::start_with(&o).unwrap_or_else(|e| panic!("{e}"));
    server
        .tool(
            "ldapadd",
            &[],
            &format!(
                "dn: CN=Staff,{u}\nobjectClass: group\ncn: Staff\n\n",
                u = server.ad_users()
            ),
        )
        .unwrap();
    server
}

fn ad_connector(server: &Slapd) -> LdapConnector {
    let mut cfg = LdapConfig::new(Dialect::ActiveDirectory, server.url.clone(), &server.suffix)
        .bind(
            server.admin_dn.clone(),
            Password::new(server.admin_password.clone()),
        );
    cfg.accounts.filter = "(objectClass=user)".to_owned();
    // The look-alike schema has no isCriticalSystemObject or adminCount.
    cfg.groups.filter = "(objectClass=group)".to_owned();
    cfg.groups.batch_size = 16;
    // The look-alike has no unicodePwd.
    cfg.accounts.enabled_needs = None;
    // No update sequence numbers in slapd: its change log instead.
    cfg.changes = prov_ldap::ChangeLog::AccessLog {
        base: Slapd::ACCESS_LOG.to_owned(),
    };
    cfg.connection.danger_allow_plaintext_bind = true;
    LdapConnector::new(cfg).unwrap()
}

fn uac(server: &Slapd, dn: &str) -> String {
    crate::common::attribute(server, dn, "userAccountControl")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_passes_on_the_ad_dialect() {
    let server = ad_server();
    let conn = ad_connector(&server);
    let opts = crate::suite::options(false);
    let report = run_all(&conn, &Namespace::new("ad"), &opts).await;
    println!("{report}");
    assert!(report.is_success(), "{report}");
    assert_eq!(
        report.outcome("entitlements_are_created_and_deleted"),
        Some(&prov_testkit::conformance::Outcome::Passed),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ad_accounts_use_sam_account_name_and_user_account_control() {
    let server = ad_server();
    let conn = ad_connector(&server);
    let mut attrs = Attributes::new();
    attrs.insert("family_name".to_owned(), Value::from("Hopper"));
    attrs.insert("upn".to_owned(), Value::from("ghopper@corp.example"));
    let made = conn
        .create_account(CreateAccount::new("ghopper", attrs))
        .await
        .unwrap();
    // Named by cn under CN=Users, the login in sAMAccountName, enabled as a normal account.
    assert_eq!(made.id.as_str(), "cn=ghopper,cn=Users,dc=corp,dc=example");
    assert_eq!(uac(&server, made.id.as_str()), "512");
    let got = conn.get_account(&made.id).await.unwrap();
    assert_eq!(got.login, "ghopper");
    assert_eq!(
        got.attributes.get("upn"),
        Some(&Value::from("ghopper@corp.example"))
    );
    // Disable sets bit 0x2 and keeps the others; enable clears it.
    conn.set_enabled(&made.id, false).await.unwrap();
    assert_eq!(uac(&server, made.id.as_str()), "514");
    assert!(!conn.get_account(&made.id).await.unwrap().enabled);
    conn.set_enabled(&made.id, false).await.unwrap();
    assert_eq!(uac(&server, made.id.as_str()), "514");
    conn.set_enabled(&made.id, true).await.unwrap();
    assert_eq!(uac(&server, made.id.as_str()), "512");
    // A new login is a new sAMAccountName; the cn, which was the login,
    // and the userPrincipalName follow it (they stayed on the old name).
    let id = conn
        .update_account(UpdateAccount::new(
            made.id.clone(),
            AttributeDelta::default().rename("grace.hopper"),
        ))
        .await
        .unwrap();
    assert_eq!(id.as_str(), "cn=grace.hopper,cn=Users,dc=corp,dc=example");
    let renamed = conn.get_account(&id).await.unwrap();
    assert_eq!(renamed.login, "grace.hopper");
    assert_eq!(
        renamed.attributes.get("upn"),
        Some(&Value::from("grace.hopper@corp.example"))
    );
    // Created disabled: 514 from the start.
    let mut req = CreateAccount::new("leaver", {
        let mut a = Attributes::new();
        a.insert("family_name".to_owned(), Value::from("Gone"));
        a
    });
    req.enabled = false;
    let gone = conn.create_account(req).await.unwrap();
    assert_eq!(uac(&server, gone.id.as_str()), "514");
    // Groups by member DN, read back through memberOf.
    let staff = EntitlementId::new("Staff");
    let out = conn
        .grant(MembershipChange::new(
            staff.clone(),
            vec![id.clone(), gone.id.clone()],
        ))
        .await
        .unwrap();
    assert!(out.is_ok(), "{:?}", out.failures);
    assert!(
        conn.get_account(&id)
            .await
            .unwrap()
            .entitlements
            .contains(&staff)
    );
}
