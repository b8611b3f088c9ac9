//! What the SQL stores share: the schema, error mapping, and one
//! implementation of `Store` generated for each pool type. SQLite and
//! PostgreSQL both take `$1`-style parameters, so the SQL is the same; they
//! differ only in how they serialise writers (see the store types).

use prov_core::{Error, ErrorKind};

/// Schema migrations, applied in order; `prov_schema` records how many ran.
pub(crate) const MIGRATIONS: &[&str] = &[
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

/// A database error as a `prov_core::Error`: an unreachable database is
/// `Unavailable` (the engine stops rather than guesses), the rest `Unexpected`.
pub(crate) fn db_error(store: &str, context: &str, e: sqlx::Error) -> Error {
    let kind = match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => ErrorKind::Unavailable,
        _ => ErrorKind::Unexpected,
    };
    Error::new(kind, format!("{store} store: {context}: {e}"))
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    store: &str,
    what: &str,
    text: &str,
) -> prov_core::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        Error::new(
            ErrorKind::Unexpected,
            format!("{store} store: {what} is unreadable: {e}"),
        )
    })
}

pub(crate) fn encode<T: serde::Serialize>(
    store: &str,
    what: &str,
    value: &T,
) -> prov_core::Result<String> {
    serde_json::to_string(value).map_err(|e| {
        Error::new(
            ErrorKind::Unexpected,
            format!("{store} store: cannot encode {what}: {e}"),
        )
    })
}

/// Generates `migrate` and `impl Store` for a store type with a `pool`
/// field. `$migrate_lock` and `$append_lock` are statements run first in the
/// migration and audit-append transactions (empty to run none).
macro_rules! sql_store {
    ($ty:ty, $name:literal, $migrate_lock:literal, $append_lock:literal) => {
        impl $ty {
            async fn migrate(&self) -> prov_core::Result<()> {
                use crate::sql::{MIGRATIONS, db_error};
                let err = |e| db_error($name, "migrate", e);
                let mut tx = self.pool.begin().await.map_err(err)?;
                if !$migrate_lock.is_empty() {
                    sqlx::query($migrate_lock).execute(&mut *tx).await.map_err(err)?;
                }
                sqlx::query("CREATE TABLE IF NOT EXISTS prov_schema (version BIGINT NOT NULL)").execute(&mut *tx).await.map_err(err)?;
                let current: Option<(i64,)> = sqlx::query_as("SELECT version FROM prov_schema").fetch_optional(&mut *tx).await.map_err(err)?;
                let current = usize::try_from(current.map_or(0, |v| v.0)).unwrap_or(0);
                if current > MIGRATIONS.len() {
                    return Err(prov_core::Error::new(
                        prov_core::ErrorKind::Config,
                        format!("{} store: schema version {current} is newer than this prov ({}); upgrade prov", $name, MIGRATIONS.len()),
                    ));
                }
                for sql in MIGRATIONS.iter().skip(current) {
                    sqlx::raw_sql(*sql).execute(&mut *tx).await.map_err(err)?;
                }
                sqlx::query("DELETE FROM prov_schema").execute(&mut *tx).await.map_err(err)?;
                sqlx::query("INSERT INTO prov_schema (version) VALUES ($1)")
                    .bind(i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX))
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                tx.commit().await.map_err(err)
            }
        }

        #[async_trait::async_trait]
        impl crate::store::Store for $ty {
            async fn links(&self) -> prov_core::Result<Vec<crate::planner::Link>> {
                use crate::planner::{Link, LinkOrigin};
                let rows: Vec<(String, String, String, String)> =
                    sqlx::query_as("SELECT target, account, identity, origin FROM prov_links ORDER BY target, account")
                        .fetch_all(&self.pool)
                        .await
                        .map_err(|e| crate::sql::db_error($name, "read links", e))?;
                rows.into_iter()
                    .map(|(t, a, i, o)| {
                        let origin = LinkOrigin::parse(&o).ok_or_else(|| {
                            prov_core::Error::new(prov_core::ErrorKind::Unexpected, format!("{} store: link {t}/{a} has unknown origin `{o}`", $name))
                        })?;
                        Ok(Link::new(prov_core::TargetId::new(t), prov_core::AccountId::new(a), prov_core::IdentityId::new(i), origin))
                    })
                    .collect()
            }

            async fn put_link(&self, link: &crate::planner::Link) -> prov_core::Result<()> {
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
                .map_err(|e| crate::sql::db_error($name, "write link", e))?;
                Ok(())
            }

            async fn remove_link(&self, target: &prov_core::TargetId, account: &prov_core::AccountId) -> prov_core::Result<()> {
                sqlx::query("DELETE FROM prov_links WHERE target = $1 AND account = $2")
                    .bind(target.as_str())
                    .bind(account.as_str())
                    .execute(&self.pool)
                    .await
                    .map_err(|e| crate::sql::db_error($name, "remove link", e))?;
                Ok(())
            }

            async fn append_audit(&self, events: Vec<crate::audit::AuditEvent>) -> prov_core::Result<Vec<crate::audit::AuditRecord>> {
                use crate::audit::AuditRecord;
                if events.is_empty() {
                    return Ok(Vec::new());
                }
                let err = |e| crate::sql::db_error($name, "append audit", e);
                let mut tx = self.pool.begin().await.map_err(err)?;
                if !$append_lock.is_empty() {
                    sqlx::query($append_lock).execute(&mut *tx).await.map_err(err)?;
                }
                let last: Option<(String,)> =
                    sqlx::query_as("SELECT record FROM prov_audit ORDER BY seq DESC LIMIT 1").fetch_optional(&mut *tx).await.map_err(err)?;
                let mut prev: Option<AuditRecord> = match last {
                    Some((text,)) => Some(crate::sql::decode($name, "the last audit record", &text)?),
                    None => None,
                };
                let mut sealed = Vec::with_capacity(events.len());
                for event in events {
                    let record = AuditRecord::seal(prev.as_ref(), event);
                    let text = crate::sql::encode($name, "an audit record", &record)?;
                    sqlx::query("INSERT INTO prov_audit (seq, record, hash) VALUES ($1, $2, $3)")
                        .bind(i64::try_from(record.seq).unwrap_or(i64::MAX))
                        .bind(text)
                        .bind(&record.hash)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    sealed.push(record.clone());
                    prev = Some(record);
                }
                tx.commit().await.map_err(err)?;
                Ok(sealed)
            }

            async fn audit_log(&self) -> prov_core::Result<Vec<crate::audit::AuditRecord>> {
                let rows: Vec<(String,)> = sqlx::query_as("SELECT record FROM prov_audit ORDER BY seq")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| crate::sql::db_error($name, "read audit", e))?;
                rows.iter().enumerate().map(|(i, (text,))| crate::sql::decode($name, &format!("audit record {}", i + 1), text)).collect()
            }

            async fn outbox_begin(&self, entries: &[crate::store::OutboxEntry]) -> prov_core::Result<()> {
                let err = |e| crate::sql::db_error($name, "outbox", e);
                let mut tx = self.pool.begin().await.map_err(err)?;
                for e in entries {
                    let text = crate::sql::encode($name, "an outbox entry", e)?;
                    sqlx::query("INSERT INTO prov_outbox (op, entry) VALUES ($1, $2) ON CONFLICT (op) DO UPDATE SET entry = excluded.entry")
                        .bind(&e.op.id)
                        .bind(text)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                }
                tx.commit().await.map_err(err)
            }

            async fn outbox_finish(&self, op_ids: &[String]) -> prov_core::Result<()> {
                let err = |e| crate::sql::db_error($name, "outbox", e);
                let mut tx = self.pool.begin().await.map_err(err)?;
                for id in op_ids {
                    sqlx::query("DELETE FROM prov_outbox WHERE op = $1").bind(id).execute(&mut *tx).await.map_err(err)?;
                }
                tx.commit().await.map_err(err)
            }

            async fn outbox_open(&self) -> prov_core::Result<Vec<crate::store::OutboxEntry>> {
                let rows: Vec<(String,)> = sqlx::query_as("SELECT entry FROM prov_outbox ORDER BY op")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| crate::sql::db_error($name, "outbox", e))?;
                rows.iter().map(|(text,)| crate::sql::decode($name, "an outbox entry", text)).collect()
            }

            async fn put_lease(&self, lease: &crate::leases::LeaseRecord) -> prov_core::Result<()> {
                let text = crate::sql::encode($name, "a lease", lease)?;
                sqlx::query("INSERT INTO prov_leases (id, record) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET record = excluded.record")
                    .bind(&lease.id)
                    .bind(text)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| crate::sql::db_error($name, "write lease", e))?;
                Ok(())
            }

            async fn leases(&self) -> prov_core::Result<Vec<crate::leases::LeaseRecord>> {
                let rows: Vec<(String,)> = sqlx::query_as("SELECT record FROM prov_leases ORDER BY id")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| crate::sql::db_error($name, "read leases", e))?;
                rows.iter().map(|(text,)| crate::sql::decode($name, "a lease", text)).collect()
            }
        }
    };
}

pub(crate) use sql_store;
