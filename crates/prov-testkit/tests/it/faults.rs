use std::time::Duration;

use prov_core::{Attributes, Connector, CreateAccount, ErrorKind, ListRequest, Operation};
use prov_testkit::{FaultConfig, FaultyConnector, MemoryConnector};

async fn outcomes(seed: u64) -> Vec<Option<ErrorKind>> {
    let f = FaultyConnector::new(
        MemoryConnector::new(),
        FaultConfig::seeded(seed).retryable(0.3).permanent(0.1),
    );
    let mut out = Vec::new();
    for _ in 0..200 {
        out.push(f.check().await.err().map(|e| e.kind()));
    }
    out
}

#[tokio::test]
async fn the_same_seed_gives_the_same_faults() {
    let a = outcomes(7).await;
    assert_eq!(a, outcomes(7).await);
    assert_ne!(a, outcomes(8).await);
    let retryable = a
        .iter()
        .filter(|k| k.is_some_and(ErrorKind::is_retryable))
        .count();
    let permanent = a
        .iter()
        .filter(|k| **k == Some(ErrorKind::Unexpected))
        .count();
    assert!((30..90).contains(&retryable), "{retryable} of 200 at 30%");
    assert!((5..40).contains(&permanent), "{permanent} of 200 at 10%");
}

#[tokio::test]
async fn a_rate_limit_storm_answers_429_with_retry_after() {
    let f = FaultyConnector::new(
        MemoryConnector::new(),
        FaultConfig::seeded(1).rate_limit_storm(1.0, Duration::from_secs(2)),
    );
    let e = f.list_accounts(ListRequest::first()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
    assert_eq!(e.operation(), Some(Operation::ListAccounts));
    assert_eq!(f.stats().rate_limited, 1);
    assert_eq!(
        f.inner().stats().calls,
        0,
        "the call never reached the target"
    );
}

#[tokio::test]
async fn a_lost_reply_took_effect_but_reports_a_timeout() {
    let f = FaultyConnector::new(
        MemoryConnector::new(),
        FaultConfig::seeded(3).lost_replies(1.0),
    );
    let e = f
        .create_account(CreateAccount::new("ada", Attributes::new()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(
        f.inner().accounts().len(),
        1,
        "the account was made all the same"
    );
    // Repeating the create now answers AlreadyExists, as a real target would.
    let again = FaultyConnector::new(f.inner().clone(), FaultConfig::seeded(3));
    let e = again
        .create_account(CreateAccount::new("ada", Attributes::new()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
}

#[tokio::test(start_paused = true)]
async fn latency_is_injected_on_the_tokio_clock() {
    let f = FaultyConnector::new(
        MemoryConnector::new(),
        FaultConfig::seeded(1).latency(Duration::from_millis(50), Duration::from_millis(50)),
    );
    let start = tokio::time::Instant::now();
    f.check().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(50));
}
