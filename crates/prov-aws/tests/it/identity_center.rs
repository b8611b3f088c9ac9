//! The Identity Center connector against moto.

use prov_aws::{IdentityCenterConfig, IdentityCenterConnector};
use prov_core::{Connector, Entitlement};
use prov_testkit::conformance::{Namespace, Outcome, SuiteOptions, run_all};

use crate::{moto, sdk};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto: run the README test command"]
async fn the_suite_against_moto() {
    let server = moto();
    let conf = sdk(&server).await;
    let conn =
        IdentityCenterConnector::with_sdk_config(&conf, IdentityCenterConfig::new("d-1234567890"))
            .unwrap();
    conn.check().await.unwrap();
    conn.create_entitlement(&Entitlement::group("staff"))
        .await
        .unwrap();
    let mut opts = SuiteOptions::default();
    opts.max_batch_accounts = 120;
    opts.attributes = std::sync::Arc::new(|login: &str| {
        let mut a = prov_core::Attributes::new();
        a.insert("display_name".to_owned(), format!("Test {login}").into());
        a.insert("given_name".to_owned(), "Test".into());
        a.insert("family_name".to_owned(), login.into());
        a.insert("title".to_owned(), "Tester".into());
        a
    });
    let report = run_all(&conn, &Namespace::new("ic"), &opts).await;
    println!("{report}");
    // moto answers UpdateUser with HTTP 500 (PEERS.md): the update and
    // rename cases are for the in-process fake.
    for (name, outcome) in &report.cases {
        match (*name, outcome) {
            (
                "update_is_a_delta" | "rename_changes_the_login" | "missing_account_is_not_found",
                Outcome::Failed(f),
            ) if f.to_string().contains("update_account") => {
                assert!(
                    f.to_string().contains("500") || f.to_string().contains("unavailable"),
                    "{f}"
                );
            }
            (_, Outcome::Failed(f)) => panic!("{name}: {f}\n{report}"),
            _ => {}
        }
    }
}
