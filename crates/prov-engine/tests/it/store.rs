//! The same behaviour from every store: memory and SQLite (PostgreSQL follows).

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use prov_core::{AccountId, EntitlementId, IdentityId, TargetId};
use prov_engine::audit::{self, AuditEvent};
use prov_engine::{
    Completion, EntitlementRecord, GrantChange, GrantRecord, LedgerChange, Link, LinkOrigin,
    MemoryStore, OutboxEntry, SqliteStore, Store,
};

fn link(t: &str, a: &str, i: &str, o: LinkOrigin) -> Link {
    Link::new(TargetId::new(t), AccountId::new(a), IdentityId::new(i), o)
}

fn event(n: u32) -> AuditEvent {
    let t = Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap()
        + chrono::Duration::seconds(i64::from(n));
    let mut e = AuditEvent::new(
        t,
        "test",
        format!("grant g{n}"),
        format!("rule r{n}"),
        "done",
    );
    e.identity = Some(IdentityId::new(format!("e{n}")));
    e.target = Some(TargetId::new("ldap"));
    e
}

async fn behaves(store: Arc<dyn Store>) {
    // Links: put, replace, list sorted, remove (twice is fine).
    store
        .put_link(&link("ldap", "b", "e2", LinkOrigin::Linked))
        .await
        .unwrap();
    store
        .put_link(&link("ldap", "a", "e1", LinkOrigin::Created))
        .await
        .unwrap();
    store
        .put_link(&link("aws", "z", "e1", LinkOrigin::Created))
        .await
        .unwrap();
    store
        .put_link(&link("ldap", "b", "e3", LinkOrigin::Created))
        .await
        .unwrap();
    let links = store.links().await.unwrap();
    assert_eq!(
        links,
        [
            link("aws", "z", "e1", LinkOrigin::Created),
            link("ldap", "a", "e1", LinkOrigin::Created),
            link("ldap", "b", "e3", LinkOrigin::Created)
        ]
    );
    store
        .remove_link(&TargetId::new("ldap"), &AccountId::new("a"))
        .await
        .unwrap();
    store
        .remove_link(&TargetId::new("ldap"), &AccountId::new("a"))
        .await
        .unwrap();
    assert_eq!(store.links().await.unwrap().len(), 2);

    // Audit: appends from many tasks at once still make one valid chain.
    let mut tasks = Vec::new();
    for n in 0..8u32 {
        let s = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            s.append_audit(vec![event(n * 2), event(n * 2 + 1)]).await
        }));
    }
    for t in tasks {
        let sealed = t.await.unwrap().unwrap();
        assert_eq!(sealed.len(), 2);
        assert_eq!(
            sealed[1].seq,
            sealed[0].seq + 1,
            "a batch is appended whole"
        );
    }
    let log = store.audit_log().await.unwrap();
    assert_eq!(log.len(), 16);
    audit::verify(&log).unwrap();
    assert!(store.append_audit(vec![]).await.unwrap().is_empty());

    // Leases: put, replace, list by id.
    let lease = |id: &str, state: &str| -> prov_engine::leases::LeaseRecord {
        serde_json::from_value(serde_json::json!({
            "id": id,
            "request": {"identity": "e1", "role": "oncall", "duration": {"secs": 3600, "nanos": 0}, "start": null,
                        "wait": {"secs": 60, "nanos": 0}, "requested_by": "e1", "reason": "test"},
            "state": state,
            "requested_at": "2026-11-22T09:00:00Z",
            "decide_by": "2026-11-22T09:01:00Z"
        }))
        .unwrap()
    };
    store.put_lease(&lease("l2", "requested")).await.unwrap();
    store.put_lease(&lease("l1", "requested")).await.unwrap();
    store.put_lease(&lease("l2", "rejected")).await.unwrap();
    let leases = store.leases().await.unwrap();
    assert_eq!(
        leases.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(),
        ["l1", "l2"]
    );
    assert_eq!(leases[1].state, prov_engine::leases::LeaseState::Rejected);

    assert_eq!(
        store.lease("l2").await.unwrap().map(|l| l.state),
        Some(prov_engine::leases::LeaseState::Rejected)
    );
    assert!(store.lease("nope").await.unwrap().is_none());
    assert_eq!(
        store.leases_of(&IdentityId::new("e1")).await.unwrap().len(),
        2
    );
    assert!(
        store
            .leases_of(&IdentityId::new("e2"))
            .await
            .unwrap()
            .is_empty()
    );

    // Leaver records: the first moment of leaving stands.
    use prov_engine::leavers::{Departure, LeaverRecord};
    let at = |h| chrono::Utc.with_ymd_and_hms(2026, 11, 22, h, 0, 0).unwrap();
    let gone = |id: &str, h, why| LeaverRecord::new(IdentityId::new(id), at(h), why, "tester");
    store
        .put_leaver(&gone("e9", 9, Departure::Event))
        .await
        .unwrap();
    store
        .put_leaver(&gone("e9", 10, Departure::Absent))
        .await
        .unwrap();
    store
        .put_leaver(&gone("e8", 11, Departure::Absent))
        .await
        .unwrap();
    let all = store.leavers().await.unwrap();
    assert_eq!(
        all,
        [
            gone("e8", 11, Departure::Absent),
            gone("e9", 9, Departure::Event)
        ]
    );
    assert_eq!(
        store.leaver(&IdentityId::new("e9")).await.unwrap(),
        Some(gone("e9", 9, Departure::Event))
    );
    assert!(store.remove_leaver(&IdentityId::new("e8")).await.unwrap());
    assert!(!store.remove_leaver(&IdentityId::new("e8")).await.unwrap());
    assert!(
        store
            .leaver(&IdentityId::new("e8"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.remove_leaver(&IdentityId::new("e9")).await.unwrap());

    // Per-identity and per-account lookups.
    let of_e1 = store.links_of(&IdentityId::new("e1")).await.unwrap();
    assert_eq!(of_e1, [link("aws", "z", "e1", LinkOrigin::Created)]);
    assert_eq!(
        store
            .link(&TargetId::new("ldap"), &AccountId::new("b"))
            .await
            .unwrap(),
        Some(link("ldap", "b", "e3", LinkOrigin::Created))
    );
    assert!(
        store
            .link(&TargetId::new("ldap"), &AccountId::new("zz"))
            .await
            .unwrap()
            .is_none()
    );

    // An origin is never downgraded: correlation linking an account the
    // engine created keeps it `created`.
    store
        .put_link(&link("ldap", "b", "e3", LinkOrigin::Linked))
        .await
        .unwrap();
    assert_eq!(
        store
            .link(&TargetId::new("ldap"), &AccountId::new("b"))
            .await
            .unwrap()
            .map(|l| l.origin),
        Some(LinkOrigin::Created)
    );

    // Ranged audit reads and the head.
    let head = store.audit_head().await.unwrap().unwrap();
    assert_eq!(head.seq, 16);
    let range = store.audit_range(5, 3).await.unwrap();
    assert_eq!(range.iter().map(|r| r.seq).collect::<Vec<_>>(), [5, 6, 7]);
    assert!(store.audit_range(17, 10).await.unwrap().is_empty());

    // The outbox: entries are per run, so two runs of one operation never
    // share one; a completion closes its entry, writes its link and its
    // record together.
    assert!(store.outbox_open().await.unwrap().is_empty());
    let op = |n: &str| -> prov_engine::PlannedOp {
        serde_json::from_value(serde_json::json!({
            "id": n, "target": "ldap", "identity": "e9", "op": "create",
            "login": format!("user-{n}"), "attributes": {}, "enabled": true, "reasons": ["rule r"]
        }))
        .unwrap()
    };
    let at = Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap();
    store
        .outbox_begin(&[
            OutboxEntry::new("r1", "host:1", op("op1"), at),
            OutboxEntry::new("r1", "host:1", op("op2"), at),
        ])
        .await
        .unwrap();
    store
        .outbox_begin(&[OutboxEntry::new("r2", "host:2", op("op1"), at)])
        .await
        .unwrap();
    let open = store.outbox_open().await.unwrap();
    assert_eq!(open.len(), 3, "{open:?}");
    assert!(open.iter().any(|e| e.run == "r2" && e.owner == "host:2"));
    assert_eq!(open[0].op, op("op1"));
    let sealed = store
        .complete(vec![
            Completion::new("r1", "op1", event(50)).with_ledger(LedgerChange::Put(link(
                "ldap",
                "new",
                "e9",
                LinkOrigin::Created,
            ))),
            Completion::new("r1", "op2", event(51)).with_ledger(LedgerChange::Move {
                target: TargetId::new("ldap"),
                from: AccountId::new("b"),
                to: AccountId::new("b2"),
            }),
        ])
        .await
        .unwrap();
    assert_eq!(sealed.iter().map(|r| r.seq).collect::<Vec<_>>(), [17, 18]);
    let open = store.outbox_open().await.unwrap();
    assert_eq!(
        open.iter()
            .map(|e| (e.run.as_str(), e.op.id.as_str()))
            .collect::<Vec<_>>(),
        [("r2", "op1")]
    );
    assert_eq!(
        store
            .link(&TargetId::new("ldap"), &AccountId::new("new"))
            .await
            .unwrap()
            .map(|l| l.origin),
        Some(LinkOrigin::Created)
    );
    assert!(
        store
            .link(&TargetId::new("ldap"), &AccountId::new("b"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .link(&TargetId::new("ldap"), &AccountId::new("b2"))
            .await
            .unwrap(),
        Some(link("ldap", "b2", "e3", LinkOrigin::Created))
    );
    store
        .complete(vec![Completion::new("r2", "op1", event(52)).with_ledger(
            LedgerChange::Remove {
                target: TargetId::new("ldap"),
                account: AccountId::new("new"),
            },
        )])
        .await
        .unwrap();
    assert!(store.outbox_open().await.unwrap().is_empty());
    let log = store.audit_log().await.unwrap();
    assert_eq!(log.len(), 19);
    audit::verify(&log).unwrap();
    // Put back what the reopen test expects.
    store
        .put_link(&link("ldap", "b", "e3", LinkOrigin::Created))
        .await
        .unwrap();
    store
        .remove_link(&TargetId::new("ldap"), &AccountId::new("b2"))
        .await
        .unwrap();
    grants_behave(store.as_ref()).await;
    entitlements_behave(store.as_ref()).await;
    tokens_behave(store.as_ref()).await;
}

/// Change tokens: none at first, the last one put wins, per target.
async fn tokens_behave(store: &dyn Store) {
    let (ldap, scim) = (TargetId::new("ldap"), TargetId::new("scim"));
    assert_eq!(store.change_token(&ldap).await.unwrap(), None);
    store.put_change_token(&ldap, "log:1").await.unwrap();
    store.put_change_token(&ldap, "log:2").await.unwrap();
    store.put_change_token(&scim, "usn:7@dc1").await.unwrap();
    assert_eq!(
        store.change_token(&ldap).await.unwrap().as_deref(),
        Some("log:2")
    );
    assert_eq!(
        store.change_token(&scim).await.unwrap().as_deref(),
        Some("usn:7@dc1")
    );
}

/// The entitlement ledger: a create recorded with its completion (the
/// first record stands), sorted by target and id, forgotten once retired
/// (twice is fine).
async fn entitlements_behave(store: &dyn Store) {
    let made = |t: &str, e: &str, n: u32| {
        Completion::new("r4", format!("c-{t}-{e}-{n}"), event(n)).with_ledger(
            LedgerChange::Created(EntitlementRecord::new(
                TargetId::new(t),
                EntitlementId::new(e),
                event(n).time,
            )),
        )
    };
    let retired = |t: &str, e: &str, n: u32| {
        Completion::new("r4", format!("d-{t}-{e}-{n}"), event(n)).with_ledger(
            LedgerChange::Retired {
                target: TargetId::new(t),
                entitlement: EntitlementId::new(e),
            },
        )
    };
    assert!(store.created_entitlements().await.unwrap().is_empty());
    store
        .complete(vec![
            made("ldap", "sales", 70),
            made("aws", "admins", 71),
            made("ldap", "Eng", 72),
            made("ldap", "sales", 73),
        ])
        .await
        .unwrap();
    let ledger = |recs: Vec<EntitlementRecord>| {
        recs.into_iter()
            .map(|r| (format!("{}/{}", r.target, r.entitlement), r.created_at))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ledger(store.created_entitlements().await.unwrap()),
        [
            ("aws/admins".to_owned(), event(71).time),
            ("ldap/Eng".to_owned(), event(72).time),
            ("ldap/sales".to_owned(), event(70).time),
        ]
    );
    store
        .complete(vec![
            retired("ldap", "sales", 74),
            retired("ldap", "sales", 75),
            retired("ldap", "nope", 76),
        ])
        .await
        .unwrap();
    assert_eq!(
        ledger(store.created_entitlements().await.unwrap()),
        [
            ("aws/admins".to_owned(), event(71).time),
            ("ldap/Eng".to_owned(), event(72).time),
        ]
    );
}

/// The grant ledger: a grant's time recorded with its completion, a revoke
/// forgets it, a rename moves it, a delete drops the account's records.
async fn grants_behave(store: &dyn Store) {
    let ldap = TargetId::new("ldap");
    let granted = |a: &str, e: &str, n: u32| {
        Completion::new("r3", format!("g-{a}-{e}"), event(n)).with_grant(GrantChange::Granted(
            GrantRecord::new(
                ldap.clone(),
                AccountId::new(a),
                EntitlementId::new(e),
                event(n).time,
            ),
        ))
    };
    store
        .complete(vec![
            granted("x", "eng", 60),
            granted("x", "sales", 61),
            granted("y", "eng", 62),
        ])
        .await
        .unwrap();
    let of = |a: &'static str| {
        let ldap = ldap.clone();
        async move {
            store
                .grants_of(&ldap, &AccountId::new(a))
                .await
                .unwrap()
                .into_iter()
                .map(|g| (g.entitlement.as_str().to_owned(), g.granted_at))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        of("x").await,
        [
            ("eng".to_owned(), event(60).time),
            ("sales".to_owned(), event(61).time)
        ]
    );
    store
        .complete(vec![
            Completion::new("r3", "revoke", event(63)).with_grant(GrantChange::Revoked {
                target: ldap.clone(),
                account: AccountId::new("x"),
                entitlement: EntitlementId::new("sales"),
            }),
            Completion::new("r3", "rename", event(64)).with_ledger(LedgerChange::Move {
                target: ldap.clone(),
                from: AccountId::new("x"),
                to: AccountId::new("x2"),
            }),
            Completion::new("r3", "delete", event(65)).with_ledger(LedgerChange::Remove {
                target: ldap.clone(),
                account: AccountId::new("y"),
            }),
        ])
        .await
        .unwrap();
    assert_eq!(of("x").await, []);
    assert_eq!(of("x2").await, [("eng".to_owned(), event(60).time)]);
    assert_eq!(of("y").await, []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_store_behaves() {
    behaves(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_store_behaves_and_survives_a_reopen() {
    let dir = std::env::temp_dir().join(format!("prov-engine-sqlite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("prov.db");
    let _ = std::fs::remove_file(&path);
    behaves(Arc::new(SqliteStore::open(&path).await.unwrap())).await;
    // Reopened (the schema is already there), everything is still in place.
    let again = SqliteStore::open(&path).await.unwrap();
    assert_eq!(again.links().await.unwrap().len(), 2);
    let log = again.audit_log().await.unwrap();
    assert_eq!(log.len(), 32);
    audit::verify(&log).unwrap();
    assert_eq!(again.created_entitlements().await.unwrap().len(), 2);
    assert_eq!(
        again
            .grants_of(&TargetId::new("ldap"), &AccountId::new("x2"))
            .await
            .unwrap()
            .len(),
        1
    );
    // The chain continues across the reopen.
    let next = again.append_audit(vec![event(99)]).await.unwrap();
    assert_eq!(next[0].seq, 33);
    assert_eq!(next[0].prev, log[31].hash);
    drop(again);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_sqlite_store_in_memory_behaves() {
    behaves(Arc::new(SqliteStore::in_memory().await.unwrap())).await;
}

#[tokio::test]
async fn an_unreadable_store_file_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("prov-engine-sqlite-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("not-a-db");
    std::fs::write(
        &path,
        b"this is not a database, and it is long enough to have a header",
    )
    .unwrap();
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert!(err.to_string().contains("sqlite store"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A fresh database on the test server, so runs never see each other's data.
#[cfg(feature = "postgres")]
async fn fresh_postgres() -> String {
    let url = std::env::var("PROV_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("PROV_TEST_POSTGRES_URL is not set: run ./scripts/test.sh, which starts a private PostgreSQL and sets it")
    });
    let admin = sqlx::PgPool::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {url}: {e}"));
    let name = format!(
        "prov_test_{}_{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or(0).unsigned_abs()
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// Issue 17 item 3: the store reaches PostgreSQL over TLS with the
/// server's certificate and name checked (verify-full), and a CA that did
/// not sign it is a Config error, not an outage to retry.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run ./scripts/test.sh, which starts one"]
async fn the_postgres_store_verifies_the_server_over_tls() {
    use prov_engine::PostgresStore;
    let tls = std::env::var("PROV_TEST_POSTGRES_TLS_URL")
        .unwrap_or_else(|_| panic!("PROV_TEST_POSTGRES_TLS_URL is not set: run ./scripts/test.sh"));
    let plain = fresh_postgres().await;
    let name = plain.rsplit('/').next().unwrap();
    let url = tls.replacen("/postgres?", &format!("/{name}?"), 1);
    assert!(url.contains("sslmode=verify-full"), "{url}");
    let store = PostgresStore::connect(&url).await.unwrap();
    store
        .put_change_token(&TargetId::new("ldap"), "log:1")
        .await
        .unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let (ssl,): (bool,) =
        sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(ssl, "the connection is TLS");
    // Another CA.
    let dir = std::env::temp_dir().join(format!("prov-pg-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let made = std::process::Command::new("openssl")
        .current_dir(&dir)
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=another CA",
            "-keyout",
            "other.key",
            "-out",
            "other.pem",
        ])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let ca = std::env::var("PROV_TEST_POSTGRES_CA").unwrap();
    let wrong = url.replace(&ca, &dir.join("other.pem").display().to_string());
    let e = PostgresStore::connect(&wrong).await.unwrap_err();
    assert_eq!(e.kind(), prov_core::ErrorKind::Config, "{e}");
    assert!(!e.is_retryable(), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run ./scripts/test.sh, which starts one"]
async fn the_postgres_store_behaves_and_is_shared_by_processes() {
    use prov_engine::PostgresStore;
    let url = fresh_postgres().await;
    behaves(Arc::new(PostgresStore::connect(&url).await.unwrap())).await;
    // Two engines, each with its own connections (as two processes would
    // have), starting together and appending at once: one valid chain.
    let (a, b) = tokio::join!(PostgresStore::connect(&url), PostgresStore::connect(&url));
    let (a, b): (Arc<dyn Store>, Arc<dyn Store>) = (Arc::new(a.unwrap()), Arc::new(b.unwrap()));
    let mut tasks = Vec::new();
    for n in 0..20u32 {
        let s = if n % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        tasks.push(tokio::spawn(async move {
            s.append_audit(vec![event(100 + n)]).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let log = a.audit_log().await.unwrap();
    assert_eq!(log.len(), 52);
    audit::verify(&log).unwrap();
    assert_eq!(b.links().await.unwrap(), a.links().await.unwrap());
}

/// A store file written by the previous prov (schema 3: outbox keyed by
/// operation alone, leases without an identity column) opens with its
/// unfinished operations and leases intact.
#[tokio::test]
async fn a_schema_3_sqlite_file_keeps_its_open_operations_and_leases_on_upgrade() {
    let dir = std::env::temp_dir().join(format!("prov-engine-sqlite-v3-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("prov.db");
    {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}?mode=rwc", path.display()))
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE prov_links (target TEXT NOT NULL, account TEXT NOT NULL, identity TEXT NOT NULL,
                 origin TEXT NOT NULL CHECK (origin IN ('created', 'linked')), PRIMARY KEY (target, account));
             CREATE INDEX prov_links_by_identity ON prov_links (identity);
             CREATE TABLE prov_audit (seq BIGINT PRIMARY KEY, record TEXT NOT NULL, hash TEXT NOT NULL);
             CREATE TABLE prov_outbox (op TEXT PRIMARY KEY, entry TEXT NOT NULL);
             CREATE TABLE prov_leases (id TEXT PRIMARY KEY, record TEXT NOT NULL);
             CREATE TABLE prov_schema (version BIGINT NOT NULL);
             INSERT INTO prov_schema (version) VALUES (3);",
        )
        .execute(&pool)
        .await
        .unwrap();
        let old_entry = serde_json::json!({
            "op": {"id": "op7", "target": "ldap", "identity": "e1", "op": "create",
                   "login": "ada", "attributes": {}, "enabled": true, "reasons": ["rule r"]},
            "begun": "2026-11-22T09:00:00Z"
        });
        sqlx::query("INSERT INTO prov_outbox (op, entry) VALUES ($1, $2)")
            .bind("op7")
            .bind(old_entry.to_string())
            .execute(&pool)
            .await
            .unwrap();
        let lease = serde_json::json!({
            "id": "l1",
            "request": {"identity": "e1", "role": "oncall", "duration": {"secs": 3600, "nanos": 0}, "start": null,
                        "wait": {"secs": 60, "nanos": 0}, "requested_by": "e2", "reason": "test"},
            "state": "requested",
            "requested_at": "2026-11-22T09:00:00Z",
            "decide_by": "2026-11-22T09:01:00Z"
        });
        sqlx::query("INSERT INTO prov_leases (id, record) VALUES ($1, $2)")
            .bind("l1")
            .bind(lease.to_string())
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    let store = SqliteStore::open(&path).await.unwrap();
    let open = store.outbox_open().await.unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].run, "before-upgrade");
    assert_eq!(open[0].op.id, "op7");
    assert_eq!(
        open[0].begun,
        Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap()
    );
    assert_eq!(
        store.leases_of(&IdentityId::new("e1")).await.unwrap().len(),
        1
    );
    assert!(
        store
            .leases_of(&IdentityId::new("e2"))
            .await
            .unwrap()
            .is_empty()
    );
    // It closes like any entry.
    store
        .complete(vec![Completion::new("before-upgrade", "op7", event(1))])
        .await
        .unwrap();
    assert!(store.outbox_open().await.unwrap().is_empty());
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_sqlite_store_seals_with_the_audit_key_once_configured() {
    let key = audit::AuditKey::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap();
    let store = SqliteStore::in_memory().await.unwrap();
    store.append_audit(vec![event(1)]).await.unwrap();
    // The key is configured later: the log goes on keyed.
    let store = store.with_audit_key(key.clone());
    store.append_audit(vec![event(2), event(3)]).await.unwrap();
    let log = store.audit_log().await.unwrap();
    assert_eq!(
        log.iter().map(|r| r.keyed).collect::<Vec<_>>(),
        [false, true, true]
    );
    let v = audit::verify_with(&log, Some(&key), None).unwrap();
    assert_eq!((v.records, v.keyed), (3, 2));
}

mod claims {
    use super::*;
    use prov_core::Connector;
    use prov_engine::{Claim, Engine, EngineError, OutboxEntry};
    use prov_testkit::{ManualClock, MemoryConnector};

    fn host() -> String {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default()
    }

    async fn engine(store: Arc<dyn Store>, wait_ms: u64) -> Engine {
        let mut conns: std::collections::BTreeMap<TargetId, Arc<dyn Connector>> =
            std::collections::BTreeMap::new();
        conns.insert(
            TargetId::new("ldap"),
            Arc::new(MemoryConnector::new().with_entitlements(["staff", "eng", "sales"])),
        );
        conns.insert(
            TargetId::new("github"),
            Arc::new(MemoryConnector::new().with_entitlements(["org:eng"])),
        );
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap(),
        ));
        Engine::new(crate::planner::policy(), conns, store)
            .with_clock(clock)
            .with_lock_wait(std::time::Duration::from_millis(wait_ms))
    }

    #[tokio::test]
    async fn a_target_another_live_run_holds_is_refused_naming_it_and_its_entries_are_left_alone() {
        let dir = std::env::temp_dir().join(format!("prov-claims-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.join("prov.db")).await.unwrap());
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap();
        // Another live process (this one's parent, which surely runs) holds ldap.
        let parent = std::os::unix::process::parent_id();
        let other = Claim::new(
            "run-other",
            format!("{}:{parent}", host()),
            at + chrono::TimeDelta::minutes(1),
        );
        assert!(
            store
                .claim(&other, &[TargetId::new("ldap")], at, &[])
                .await
                .unwrap()
                .is_none()
        );
        // ...with an operation in flight.
        let op: prov_engine::PlannedOp = serde_json::from_value(serde_json::json!({
            "id": "inflight", "target": "ldap", "identity": "e1", "op": "create",
            "login": "ada.lovelace", "attributes": {}, "enabled": true, "reasons": ["r"]
        }))
        .unwrap();
        store
            .outbox_begin(&[OutboxEntry::new("run-other", other.owner.clone(), op, at)])
            .await
            .unwrap();
        let e = engine(Arc::clone(&store), 300).await;
        let err = e.reconcile(&crate::planner::people()).await.unwrap_err();
        assert!(matches!(err, EngineError::Busy { .. }), "{err}");
        assert!(err.to_string().contains("run-other"), "{err}");
        // Planning (which recovers) leaves the live run's entry alone.
        e.plan(&crate::planner::people()).await.unwrap();
        assert_eq!(
            store.outbox_open().await.unwrap().len(),
            1,
            "its own to finish"
        );
        // Once it releases, its leftovers are recovered and the run proceeds.
        store.release("run-other").await.unwrap();
        let (_, report) = e.reconcile(&crate::planner::people()).await.unwrap();
        assert!(report.is_success());
        assert!(store.outbox_open().await.unwrap().is_empty());
        assert!(
            store.claims().await.unwrap().is_empty(),
            "released after the run"
        );

        // A claim of a process on this host that is gone is taken over at once.
        let gone = Claim::new(
            "run-gone",
            format!("{}:4194303", host()),
            at + chrono::TimeDelta::hours(1),
        );
        assert!(
            store
                .claim(&gone, &[TargetId::new("github")], at, &[])
                .await
                .unwrap()
                .is_none()
        );
        let e = engine(Arc::clone(&store), 0).await;
        e.reconcile(&crate::planner::people()).await.unwrap();
        // One of another host is waited for (it cannot be seen).
        let far = Claim::new("run-far", "elsewhere:1", at + chrono::TimeDelta::hours(1));
        assert!(
            store
                .claim(&far, &[TargetId::new("github")], at, &[])
                .await
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            e.reconcile(&crate::planner::people()).await,
            Err(EngineError::Busy { .. })
        ));
        // ...until its claim lapses.
        let later = at + chrono::TimeDelta::hours(2);
        let mine = Claim::new("run-mine", "x:1", later);
        assert!(
            store
                .claim(&mine, &[TargetId::new("github")], later, &[])
                .await
                .unwrap()
                .is_none()
        );
        drop(e);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

mod turns {
    use super::*;
    use prov_core::{Connector, ConnectorExt};
    use prov_engine::{Engine, Event};
    use prov_testkit::{FaultConfig, FaultyConnector, ManualClock, MemoryConnector};

    /// An event for a joiner while a reconcile that also plans them runs,
    /// from two engines sharing one SQLite file: they take turns, and the
    /// joiner gets one account.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_event_during_a_reconcile_waits_its_turn() {
        let dir = std::env::temp_dir().join(format!("prov-turns-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ldap = MemoryConnector::new().with_entitlements(["staff", "eng", "sales"]);
        let github = MemoryConnector::new().with_entitlements(["org:eng"]);
        let engine = |store: Arc<dyn Store>| {
            let slow = |c: &MemoryConnector| -> Arc<dyn Connector> {
                // Latency makes the reconcile long enough for the event to overlap it.
                Arc::new(FaultyConnector::new(
                    c.clone(),
                    FaultConfig::seeded(1).latency(
                        std::time::Duration::from_millis(1),
                        std::time::Duration::from_millis(2),
                    ),
                ))
            };
            let mut conns: std::collections::BTreeMap<TargetId, Arc<dyn Connector>> =
                std::collections::BTreeMap::new();
            conns.insert(TargetId::new("ldap"), slow(&ldap));
            conns.insert(TargetId::new("github"), slow(&github));
            let clock = Arc::new(ManualClock::new(
                Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap(),
            ));
            Engine::new(crate::planner::policy(), conns, store).with_clock(clock)
        };
        let path = dir.join("prov.db");
        let a = engine(Arc::new(SqliteStore::open(&path).await.unwrap()));
        let b = engine(Arc::new(SqliteStore::open(&path).await.unwrap()));
        let crowd = crate::executor::crowd(60);
        let joiner = crowd[7].clone();
        let (full, event) = tokio::join!(a.reconcile(&crowd), async {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            b.handle(Event::Joiner(joiner.clone())).await
        });
        let (_, full) = full.unwrap();
        let (_, event) = event.unwrap();
        assert!(full.is_success() && event.is_success());
        let accounts = ldap.list_all_accounts().await.unwrap();
        assert_eq!(accounts.len(), 60, "one account each, the joiner's once");
        let store = SqliteStore::open(&path).await.unwrap();
        assert!(store.outbox_open().await.unwrap().is_empty());
        audit::verify(&store.audit_log().await.unwrap()).unwrap();
        drop((a, b, store));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[tokio::test]
async fn the_sqlite_file_and_its_wal_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("prov-engine-sqlite-mode-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("prov.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store.append_audit(vec![event(1)]).await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.join("prov.db-wal")), 0o600);
    drop(store);
    // An existing file made readable by others is narrowed on open.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _again = SqliteStore::open(&path).await.unwrap();
    assert_eq!(mode(&path), 0o600);
    std::fs::remove_dir_all(&dir).unwrap();
}
