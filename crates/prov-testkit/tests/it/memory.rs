use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use prov_core::{
    AccountId, Attributes, Connector, ConnectorExt, CreateAccount, EntitlementId, ErrorKind,
    MembershipChange, RateLimit,
};
use prov_testkit::conformance::{self, Namespace, Outcome, SuiteOptions};
use prov_testkit::{ManualClock, MemoryConnector, MemoryLimits};

fn limits(max_batch: usize, page: usize) -> MemoryLimits {
    let mut l = MemoryLimits::default();
    l.max_batch = max_batch;
    l.max_page_size = page;
    l
}

#[tokio::test]
async fn the_reference_connector_passes_the_whole_suite() {
    for (batch, page, fold) in [(100, 100, true), (3, 2, false), (1, 1, true)] {
        let mut limits = limits(batch, page);
        limits.login_case_insensitive = fold;
        let target = MemoryConnector::with_limits(limits).with_entitlements(["staff", "admins"]);
        let report =
            conformance::run_all(&target, &Namespace::new("ref"), &SuiteOptions::default()).await;
        println!("{report}");
        assert!(report.is_success(), "batch {batch}, page {page}:\n{report}");
        assert_eq!(report.failed(), 0);
        // Every operation is supported, so only the "unsupported" case skips.
        assert_eq!(report.skipped(), 1, "{report}");
        assert!(
            report
                .to_string()
                .ends_with("14 passed, 0 failed, 1 skipped"),
            "{report}"
        );
        assert!(target.accounts().is_empty(), "the suite cleans up");
    }
}

#[tokio::test]
async fn a_batch_larger_than_the_limit_is_split() {
    let target = MemoryConnector::with_limits(limits(100, 100)).with_entitlements(["g"]);
    let mut ids = Vec::new();
    for i in 0..250 {
        let a = target
            .create_account(CreateAccount::new(format!("u{i}"), Attributes::new()))
            .await
            .unwrap();
        ids.push(a.id);
    }
    let before = target.stats().membership_requests;
    let out = target
        .grant(MembershipChange::new(EntitlementId::new("g"), ids.clone()))
        .await
        .unwrap();
    assert!(out.is_ok());
    assert_eq!(target.stats().membership_requests - before, 3);
    assert_eq!(
        target
            .list_all_members(&EntitlementId::new("g"))
            .await
            .unwrap()
            .len(),
        250
    );
}

#[tokio::test]
async fn the_rate_limit_answers_with_the_time_left_in_the_window() {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    ));
    let mut l = limits(10, 10);
    l.rate_limit = Some(RateLimit::new(2, Duration::from_secs(1)));
    let target = MemoryConnector::with_limits(l).with_clock(clock.clone());
    target.check().await.unwrap();
    clock.advance(Duration::from_millis(300));
    target.check().await.unwrap();
    let err = target.check().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_millis(700)));
    clock.advance(Duration::from_millis(700));
    target.check().await.unwrap();
    assert_eq!(target.stats().rate_limited, 1);
    assert_eq!(
        target.capabilities().rate_limit,
        Some(RateLimit::new(2, Duration::from_secs(1)))
    );
}

#[tokio::test]
async fn the_file_backed_target_outlives_the_connector() {
    let dir = std::env::temp_dir().join(format!("prov-testkit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("target.json");
    let _ = std::fs::remove_file(&path);
    let id: AccountId;
    {
        let t = MemoryConnector::file_backed(&path, MemoryLimits::default())
            .unwrap()
            .with_entitlements(["g"]);
        id = t
            .create_account(CreateAccount::new("ada", Attributes::new()))
            .await
            .unwrap()
            .id;
        t.grant(MembershipChange::new(
            EntitlementId::new("g"),
            vec![id.clone()],
        ))
        .await
        .unwrap();
        t.set_enabled(&id, false).await.unwrap();
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o600,
            "a target's state names people and their access"
        );
    }
    let again = MemoryConnector::file_backed(&path, MemoryLimits::default()).unwrap();
    let acct = again.get_account(&id).await.unwrap();
    assert_eq!(acct.login, "ada");
    assert!(!acct.enabled);
    assert!(acct.entitlements.contains(&EntitlementId::new("g")));
    // New ids do not collide with old ones after a reload.
    let b = again
        .create_account(CreateAccount::new("bob", Attributes::new()))
        .await
        .unwrap();
    assert_ne!(b.id, id);
    // The suite passes against the file-backed target too.
    let report =
        conformance::run_all(&again, &Namespace::new("file"), &SuiteOptions::default()).await;
    assert!(report.is_success(), "{report}");
    // A corrupt file is a clear error, not a panic or an empty target.
    std::fs::write(&path, b"{not json").unwrap();
    let err = MemoryConnector::file_backed(&path, MemoryLimits::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("target.json"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_read_only_connector_skips_write_cases_and_answers_unsupported() {
    #[derive(Debug)]
    struct ReadOnly(MemoryConnector);
    #[prov_core::async_trait]
    impl Connector for ReadOnly {
        fn capabilities(&self) -> prov_core::Capabilities {
            prov_core::Capabilities::default()
        }
        async fn list_accounts(
            &self,
            req: prov_core::ListRequest,
        ) -> prov_core::Result<prov_core::Page<prov_core::Account>> {
            self.0.list_accounts(req).await
        }
        async fn get_account(&self, id: &AccountId) -> prov_core::Result<prov_core::Account> {
            self.0.get_account(id).await
        }
    }
    let report = conformance::run_all(
        &ReadOnly(MemoryConnector::new()),
        &Namespace::new("ro"),
        &SuiteOptions::default(),
    )
    .await;
    assert!(report.is_success(), "{report}");
    assert_eq!(
        report.outcome("unsupported_operations_say_so"),
        Some(&Outcome::Passed)
    );
    assert!(
        matches!(report.outcome("create_get_delete"), Some(Outcome::Skipped(why)) if why.contains("create"))
    );
    assert_eq!(report.passed(), 2, "{report}");
}

#[tokio::test]
async fn logins_stay_indexed_through_renames_deletes_and_a_reload() {
    let dir = std::env::temp_dir().join(format!("prov-mem-logins-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.json");
    let t = MemoryConnector::file_backed(&path, MemoryLimits::default()).unwrap();
    let a = t
        .create_account(CreateAccount::new("ada", Attributes::new()))
        .await
        .unwrap();
    let taken = t
        .create_account(CreateAccount::new("ada", Attributes::new()))
        .await
        .unwrap_err();
    assert_eq!(taken.kind(), ErrorKind::AlreadyExists);
    // A rename frees the old login and takes the new one.
    t.update_account(prov_core::UpdateAccount::new(
        a.id.clone(),
        prov_core::AttributeDelta::default().rename("ada.l"),
    ))
    .await
    .unwrap();
    assert_eq!(t.accounts_with_login("ada.l").await.unwrap().len(), 1);
    assert!(t.accounts_with_login("ada").await.unwrap().is_empty());
    let b = t
        .create_account(CreateAccount::new("ada", Attributes::new()))
        .await
        .unwrap();
    // A reload rebuilds the index from the saved accounts.
    let again = MemoryConnector::file_backed(&path, MemoryLimits::default()).unwrap();
    let err = again
        .create_account(CreateAccount::new("ada.l", Attributes::new()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    // A delete frees its login.
    again.delete_account(&b.id).await.unwrap();
    assert!(again.accounts_with_login("ada").await.unwrap().is_empty());
    again
        .create_account(CreateAccount::new("ada", Attributes::new()))
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
