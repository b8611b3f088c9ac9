//! The conformance suite against slapd, per dialect.

use prov_core::{Attributes, Value};
use prov_ldap::{Dialect, LdapConnector};
use prov_testkit::conformance::{Namespace, SuiteOptions, run_all};
use std::sync::Arc;

use crate::common::{add_groups, config};

pub(crate) fn options(posix: bool) -> SuiteOptions {
    let mut opts = SuiteOptions::default();
    opts.attributes = Arc::new(move |login: &str| {
        let mut a = Attributes::new();
        a.insert(
            "display_name".to_owned(),
            Value::from(format!("Test {login}")),
        );
        a.insert("title".to_owned(), Value::from("Tester"));
        a.insert("family_name".to_owned(), Value::from("Tester"));
        if posix {
            a.insert("uid_number".to_owned(), Value::Int(10_000));
            a.insert("gid_number".to_owned(), Value::Int(5_000));
            a.insert(
                "home_directory".to_owned(),
                Value::from(format!("/home/{login}")),
            );
        }
        a
    });
    // Batches of 16: the batch case makes 18 accounts and needs two requests.
    opts.max_batch_accounts = 40;
    opts
}

async fn suite(dialect: Dialect, classes: &[&str], attr: &str, posix: bool) {
    let mut o = prov_testkit::slapd::SlapdOptions::default();
    o.rfc2307bis = dialect == Dialect::Rfc2307bis;
    o.access_log = true;
    let server = prov_testkit::slapd::Slapd::start_with(&o).unwrap();
    add_groups(&server, classes, attr, &["staff"]);
    let mut cfg = config(&server, dialect);
    cfg.groups.batch_size = 16;
    cfg.changes = prov_ldap::ChangeLog::AccessLog {
        base: prov_testkit::slapd::Slapd::ACCESS_LOG.to_owned(),
    };
    // Creates keep their marker in `description` (nothing else writes it here).
    cfg.accounts.marker_attribute = Some("description".to_owned());
    if attr == "memberUid" {
        cfg.groups.placeholder_member = Some("nobody".to_owned());
    }
    let conn = LdapConnector::new(cfg).unwrap();
    let report = run_all(&conn, &Namespace::new("s"), &options(posix)).await;
    println!("{dialect:?}\n{report}");
    assert!(report.is_success(), "{dialect:?}\n{report}");
    assert_eq!(report.to_string().matches("PASS").count(), 14, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_passes_on_openldap_group_of_names_with_member_of() {
    suite(Dialect::OpenLdap, &["groupOfNames"], "member", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_passes_on_group_of_unique_names_without_member_of() {
    suite(
        Dialect::OpenLdapUniqueMember,
        &["groupOfUniqueNames"],
        "uniqueMember",
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_passes_on_posix_groups_with_member_uid() {
    suite(Dialect::Posix, &["posixGroup"], "memberUid", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_passes_on_rfc2307bis_groups_of_names() {
    // posixGroup (auxiliary) and groupOfNames in one entry, member DNs, memberOf.
    suite(
        Dialect::Rfc2307bis,
        &["groupOfNames", "posixGroup"],
        "member",
        true,
    )
    .await;
}
