//! The conformance suite against slapd, per dialect.

use prov_core::{Attributes, Value};
use prov_ldap::Dialect;
use prov_testkit::conformance::{Namespace, SuiteOptions, run_all};
use std::sync::Arc;

use crate::common::{add_groups, connector, slapd};

fn options() -> SuiteOptions {
    let mut opts = SuiteOptions::default();
    opts.attributes = Arc::new(|login: &str| {
        let mut a = Attributes::new();
        a.insert(
            "display_name".to_owned(),
            Value::from(format!("Test {login}")),
        );
        a.insert("title".to_owned(), Value::from("Tester"));
        a.insert("family_name".to_owned(), Value::from("Tester"));
        a
    });
    opts.max_batch_accounts = 40;
    opts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_passes_on_openldap_group_of_names() {
    let server = slapd();
    add_groups(&server, "groupOfNames", "member", &["staff"]);
    let mut cfg = crate::common::config(&server, Dialect::OpenLdap);
    cfg.groups.batch_size = 16;
    let conn = prov_ldap::LdapConnector::new(cfg).unwrap();
    let report = run_all(&conn, &Namespace::new("gon"), &options()).await;
    println!("{report}");
    assert!(report.is_success(), "{report}");
    let _ = connector;
}
