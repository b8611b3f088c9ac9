//! `PostgresStore`: a store several engine processes share.

use async_trait::async_trait;
use prov_core::{AccountId, Error, ErrorKind, IdentityId, Result, TargetId};
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::audit::{AuditEvent, AuditRecord};
use crate::leases::LeaseRecord;
use crate::planner::{Link, LinkOrigin};
use crate::store::{OutboxEntry, Store};

/// Schema migrations, applied in order under an advisory lock, so that
/// processes starting together do not race.
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
        seq    BIGINT PRIMARY KEY,
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

/// Key of the advisory lock that serialises migrations ("prov" in ASCII).
const MIGRATION_LOCK: i64 = 0x7072_6f76;

/// The store in PostgreSQL: several engine processes can share it.
///
/// Audit appends take a table lock for the length of their transaction, so
/// records from every process form one chain.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

fn db_error(context: &str, e: sqlx::Error) -> Error {
    let kind = match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => ErrorKind::Unavailable,
        _ => ErrorKind::Unexpected,
    };
    Error::new(kind, format!("postgres store: {context}: {e}"))
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db`) and brings the
    /// schema up to date. The URL's password, if any, is never printed.
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(url)
            .await
            .map_err(|e| db_error("cannot connect", e))?;
        let store = PostgresStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_error("migrate", e))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error("migrate", e))?;
        sqlx::query("CREATE TABLE IF NOT EXISTS prov_schema (version BIGINT NOT NULL)")
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
                    "postgres store: schema version {current} is newer than this prov ({}); upgrade prov",
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
        sqlx::query("DELETE FROM prov_schema")
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error("migrate", e))?;
        sqlx::query("INSERT INTO prov_schema (version) VALUES ($1)")
            .bind(i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error("migrate", e))?;
        tx.commit().await.map_err(|e| db_error("migrate", e))
    }
}

#[async_trait]
impl Store for PostgresStore {
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
                        format!("postgres store: link {t}/{a} has unknown origin `{o}`"),
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
            "INSERT INTO prov_links (target, account, identity, origin) VALUES ($1, $2, $3, $4)
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
        sqlx::query("DELETE FROM prov_links WHERE target = $1 AND account = $2")
            .bind(target.as_str())
            .bind(account.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("remove link", e))?;
        Ok(())
    }

    async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditRecord>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_error("append audit", e))?;
        // Appends from every process queue here; readers are not blocked.
        sqlx::query("LOCK TABLE prov_audit IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
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
                    format!("postgres store: the last audit record is unreadable: {e}"),
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
                    format!("postgres store: cannot encode an audit record: {e}"),
                )
            })?;
            sqlx::query("INSERT INTO prov_audit (seq, record, hash) VALUES ($1, $2, $3)")
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
                        format!("postgres store: audit record {} is unreadable: {e}", i + 1),
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
                    format!("postgres store: cannot encode an outbox entry: {err}"),
                )
            })?;
            sqlx::query(
                "INSERT INTO prov_outbox (op, entry) VALUES ($1, $2)
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
            sqlx::query("DELETE FROM prov_outbox WHERE op = $1")
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
                        format!("postgres store: an outbox entry is unreadable: {e}"),
                    )
                })
            })
            .collect()
    }

    async fn put_lease(&self, lease: &LeaseRecord) -> Result<()> {
        let text = serde_json::to_string(lease).map_err(|e| {
            Error::new(
                ErrorKind::Unexpected,
                format!("postgres store: cannot encode a lease: {e}"),
            )
        })?;
        sqlx::query("INSERT INTO prov_leases (id, record) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET record = excluded.record")
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
                        format!("postgres store: a lease is unreadable: {e}"),
                    )
                })
            })
            .collect()
    }
}
