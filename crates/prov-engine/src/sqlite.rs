//! `SqliteStore`: the embedded default store, one SQLite file in WAL mode.

use std::path::Path;
use std::str::FromStr;

use async_trait::async_trait;
use prov_core::{AccountId, Error, ErrorKind, IdentityId, Result, TargetId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::audit::{AuditEvent, AuditRecord};
use crate::leases::LeaseRecord;
use crate::planner::{Link, LinkOrigin};
use crate::store::{OutboxEntry, Store};

/// Schema migrations, applied in order; the file records how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: the ownership ledger and the audit log.
    "CREATE TABLE prov_links (
        target   TEXT NOT NULL,
        account  TEXT NOT NULL,
        identity TEXT NOT NULL,
        origin   TEXT NOT NULL CHECK (origin IN ('created', 'linked')),
        PRIMARY KEY (target, account)
    );
    CREATE INDEX prov_links_by_identity ON prov_links (identity);
    CREATE TABLE prov_audit (
        seq    INTEGER PRIMARY KEY,
        record TEXT NOT NULL,
        hash   TEXT NOT NULL
    );",
    // 2: the outbox.
    "CREATE TABLE prov_outbox (
        op    TEXT PRIMARY KEY,
        entry TEXT NOT NULL
    );",
    // 3: leases.
    "CREATE TABLE prov_leases (
        id     TEXT PRIMARY KEY,
        record TEXT NOT NULL
    );",
];

/// The store in one SQLite file: nothing to install or start.
///
/// WAL journal and `synchronous = FULL`: a write that returned survives a
/// crash of the process or the machine. One connection serialises writers,
/// which also keeps the audit chain in order.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn db_error(context: &str, e: sqlx::Error) -> Error {
    let kind = match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => ErrorKind::Unavailable,
        _ => ErrorKind::Unexpected,
    };
    Error::new(kind, format!("sqlite store: {context}: {e}"))
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `path` and brings its schema up to date.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true);
        Self::with_options(options, &path.display().to_string()).await
    }

    /// A private in-memory database (for tests that want the SQL path without a file).
    pub async fn in_memory() -> Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(|e| db_error("in-memory options", e))?;
        Self::with_options(options, ":memory:").await
    }

    async fn with_options(options: SqliteConnectOptions, name: &str) -> Result<Self> {
        // One connection, never recycled: a private in-memory database lives
        // and dies with its connection.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|e| db_error(&format!("cannot open {name}"), e))?;
        let store = SqliteStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_error("migrate", e))?;
        sqlx::query("CREATE TABLE IF NOT EXISTS prov_schema (version INTEGER NOT NULL)")
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error("migrate", e))?;
        let current: Option<(i64,)> = sqlx::query_as("SELECT version FROM prov_schema")
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db_error("migrate", e))?;
        let current = usize::try_from(current.map_or(0, |v| v.0)).unwrap_or(0);
        if current > MIGRATIONS.len() {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "sqlite store: schema version {current} is newer than this prov ({}); upgrade prov",
                    MIGRATIONS.len()
                ),
            ));
        }
        for sql in MIGRATIONS.iter().skip(current) {
            sqlx::raw_sql(*sql)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error("migrate", e))?;
        }
        let version = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
        sqlx::query("DELETE FROM prov_schema")
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error("migrate", e))?;
        sqlx::query("INSERT INTO prov_schema (version) VALUES (?)")
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error("migrate", e))?;
        tx.commit().await.map_err(|e| db_error("migrate", e))
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn links(&self) -> Result<Vec<Link>> {
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT target, account, identity, origin FROM prov_links ORDER BY target, account",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_error("read links", e))?;
        rows.into_iter()
            .map(|(t, a, i, o)| {
                let origin = LinkOrigin::parse(&o).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Unexpected,
                        format!("sqlite store: link {t}/{a} has unknown origin `{o}`"),
                    )
                })?;
                Ok(Link::new(
                    TargetId::new(t),
                    AccountId::new(a),
                    IdentityId::new(i),
                    origin,
                ))
            })
            .collect()
    }

    async fn put_link(&self, link: &Link) -> Result<()> {
        sqlx::query(
            "INSERT INTO prov_links (target, account, identity, origin) VALUES (?, ?, ?, ?)
             ON CONFLICT (target, account) DO UPDATE SET identity = excluded.identity, origin = excluded.origin",
        )
        .bind(link.target.as_str())
        .bind(link.account.as_str())
        .bind(link.identity.as_str())
        .bind(link.origin.as_str())
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("write link", e))?;
        Ok(())
    }

    async fn remove_link(&self, target: &TargetId, account: &AccountId) -> Result<()> {
        sqlx::query("DELETE FROM prov_links WHERE target = ? AND account = ?")
            .bind(target.as_str())
            .bind(account.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("remove link", e))?;
        Ok(())
    }

    async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditRecord>> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_error("append audit", e))?;
        let last: Option<(String,)> =
            sqlx::query_as("SELECT record FROM prov_audit ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| db_error("append audit", e))?;
        let mut prev: Option<AuditRecord> = match last {
            Some((text,)) => Some(serde_json::from_str(&text).map_err(|e| {
                Error::new(
                    ErrorKind::Unexpected,
                    format!("sqlite store: the last audit record is unreadable: {e}"),
                )
            })?),
            None => None,
        };
        let mut sealed = Vec::with_capacity(events.len());
        for event in events {
            let record = AuditRecord::seal(prev.as_ref(), event);
            let text = serde_json::to_string(&record).map_err(|e| {
                Error::new(
                    ErrorKind::Unexpected,
                    format!("sqlite store: cannot encode an audit record: {e}"),
                )
            })?;
            sqlx::query("INSERT INTO prov_audit (seq, record, hash) VALUES (?, ?, ?)")
                .bind(i64::try_from(record.seq).unwrap_or(i64::MAX))
                .bind(text)
                .bind(&record.hash)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error("append audit", e))?;
            sealed.push(record.clone());
            prev = Some(record);
        }
        tx.commit().await.map_err(|e| db_error("append audit", e))?;
        Ok(sealed)
    }

    async fn audit_log(&self) -> Result<Vec<AuditRecord>> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT record FROM prov_audit ORDER BY seq")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("read audit", e))?;
        rows.into_iter()
            .enumerate()
            .map(|(i, (text,))| {
                serde_json::from_str(&text).map_err(|e| {
                    Error::new(
                        ErrorKind::Unexpected,
                        format!("sqlite store: audit record {} is unreadable: {e}", i + 1),
                    )
                })
            })
            .collect()
    }

    async fn outbox_begin(&self, entries: &[OutboxEntry]) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(|e| db_error("outbox", e))?;
        for e in entries {
            let text = serde_json::to_string(e).map_err(|err| {
                Error::new(
                    ErrorKind::Unexpected,
                    format!("sqlite store: cannot encode an outbox entry: {err}"),
                )
            })?;
            sqlx::query(
                "INSERT INTO prov_outbox (op, entry) VALUES (?, ?)
                 ON CONFLICT (op) DO UPDATE SET entry = excluded.entry",
            )
            .bind(&e.op.id)
            .bind(text)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error("outbox", e))?;
        }
        tx.commit().await.map_err(|e| db_error("outbox", e))
    }

    async fn outbox_finish(&self, op_ids: &[String]) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(|e| db_error("outbox", e))?;
        for id in op_ids {
            sqlx::query("DELETE FROM prov_outbox WHERE op = ?")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error("outbox", e))?;
        }
        tx.commit().await.map_err(|e| db_error("outbox", e))
    }

    async fn outbox_open(&self) -> Result<Vec<OutboxEntry>> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT entry FROM prov_outbox ORDER BY op")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("outbox", e))?;
        rows.into_iter()
            .map(|(text,)| {
                serde_json::from_str(&text).map_err(|e| {
                    Error::new(
                        ErrorKind::Unexpected,
                        format!("sqlite store: an outbox entry is unreadable: {e}"),
                    )
                })
            })
            .collect()
    }

    async fn put_lease(&self, lease: &LeaseRecord) -> Result<()> {
        let text = serde_json::to_string(lease).map_err(|e| {
            Error::new(
                ErrorKind::Unexpected,
                format!("sqlite store: cannot encode a lease: {e}"),
            )
        })?;
        sqlx::query("INSERT INTO prov_leases (id, record) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET record = excluded.record")
            .bind(&lease.id)
            .bind(text)
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("write lease", e))?;
        Ok(())
    }

    async fn leases(&self) -> Result<Vec<LeaseRecord>> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT record FROM prov_leases ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("read leases", e))?;
        rows.into_iter()
            .map(|(text,)| {
                serde_json::from_str(&text).map_err(|e| {
                    Error::new(
                        ErrorKind::Unexpected,
                        format!("sqlite store: a lease is unreadable: {e}"),
                    )
                })
            })
            .collect()
    }
}
