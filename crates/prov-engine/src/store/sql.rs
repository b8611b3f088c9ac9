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
    // 4: outbox entries keyed by run and operation (two runs planning the
    // same operation never share an entry), naming their owner; entries
    // left by an older prov keep their JSON and run `before-upgrade`.
    // Leases findable by identity (older rows have '' and are filtered after decoding).
    "CREATE TABLE prov_outbox4 (
        run   TEXT NOT NULL,
        op    TEXT NOT NULL,
        owner TEXT NOT NULL,
        begun TEXT NOT NULL,
        entry TEXT NOT NULL,
        PRIMARY KEY (run, op)
    );
    INSERT INTO prov_outbox4 (run, op, owner, begun, entry)
        SELECT 'before-upgrade', op, '', '', entry FROM prov_outbox;
    DROP TABLE prov_outbox;
    ALTER TABLE prov_outbox4 RENAME TO prov_outbox;
    ALTER TABLE prov_leases ADD COLUMN identity TEXT NOT NULL DEFAULT '';
    CREATE INDEX prov_leases_by_identity ON prov_leases (identity);",
    // 5: a lease's state as a column, so that decisions compare and set it.
    "ALTER TABLE prov_leases ADD COLUMN state TEXT NOT NULL DEFAULT '';
    UPDATE prov_leases SET state = 'requested' WHERE record LIKE '%\"state\":\"requested\"%';
    UPDATE prov_leases SET state = 'approved' WHERE record LIKE '%\"state\":\"approved\"%';
    UPDATE prov_leases SET state = 'rejected' WHERE record LIKE '%\"state\":\"rejected\"%';
    UPDATE prov_leases SET state = 'revoked' WHERE record LIKE '%\"state\":\"revoked\"%';",
    // 6: runs' claims on targets (one run at a time per target), with a
    // heartbeat: `until_ms` is when a claim lapses unless renewed.
    "CREATE TABLE prov_claims (
        target   TEXT PRIMARY KEY,
        run      TEXT NOT NULL,
        owner    TEXT NOT NULL,
        until_ms BIGINT NOT NULL
    );
    CREATE INDEX prov_claims_by_run ON prov_claims (run);",
    // 7: leavers the engine remembers (an event, first seen terminated or gone).
    "CREATE TABLE prov_leavers (
        identity TEXT PRIMARY KEY,
        record   TEXT NOT NULL
    );",
    // 8: the grant ledger: when the engine granted each entitlement it
    // still holds on an account (grants before this version have none).
    "CREATE TABLE prov_grants (
        target      TEXT NOT NULL,
        account     TEXT NOT NULL,
        entitlement TEXT NOT NULL,
        granted_ms  BIGINT NOT NULL,
        PRIMARY KEY (target, account, entitlement)
    );",
    // 9: the entitlement ledger: entitlements (groups) the engine created
    // and has not deleted; only these may it delete.
    "CREATE TABLE prov_entitlements (
        target      TEXT NOT NULL,
        entitlement TEXT NOT NULL,
        created_ms  BIGINT NOT NULL,
        PRIMARY KEY (target, entitlement)
    );",
    // 10: each target's change token, kept once the changes before it
    // were applied (Engine::sync).
    "CREATE TABLE prov_change_tokens (
        target TEXT PRIMARY KEY,
        token  TEXT NOT NULL
    );",
];

pub(crate) fn millis(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
}

/// A lease state as the `state` column holds it (as its JSON does).
pub(crate) fn lease_state(state: crate::leases::LeaseState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A database error as a `prov_core::Error`: an unreachable database is
/// `Unavailable` (the engine stops rather than guesses), the rest `Unexpected`.
/// Whether an I/O error is TLS refusing the server (its certificate not
/// trusted, its name not matching).
fn is_tls_failure(io: &std::io::Error) -> bool {
    #[cfg(feature = "postgres")]
    {
        io.get_ref().is_some_and(|e| e.is::<rustls::Error>())
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = io;
        false
    }
}

pub(crate) fn db_error(store: &str, context: &str, e: sqlx::Error) -> Error {
    let kind = match &e {
        sqlx::Error::Io(io) if is_tls_failure(io) => ErrorKind::Config,
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => ErrorKind::Unavailable,
        // A certificate not trusted, a name that does not match: trying
        // again does not help.
        sqlx::Error::Tls(_) => ErrorKind::Config,
        _ => ErrorKind::Unexpected,
    };
    Error::new(kind, format!("{store} store: {context}: {e}"))
}

/// An outbox row as an entry. Rows an older prov wrote (empty `begun`)
/// hold the whole entry as `{op, begun}`.
pub(crate) fn outbox_entry(
    store: &str,
    (run, op_id, owner, begun, entry): (String, String, String, String, String),
) -> prov_core::Result<crate::store::OutboxEntry> {
    #[derive(serde::Deserialize)]
    struct Old {
        op: crate::plan::PlannedOp,
        begun: chrono::DateTime<chrono::Utc>,
    }
    let what = format!("outbox entry {run}/{op_id}");
    if begun.is_empty() {
        let old: Old = decode(store, &what, &entry)?;
        return Ok(crate::store::OutboxEntry::new(
            run, owner, old.op, old.begun,
        ));
    }
    let op = decode(store, &what, &entry)?;
    let begun = chrono::DateTime::parse_from_rfc3339(&begun)
        .map_err(|e| {
            Error::new(
                ErrorKind::Unexpected,
                format!("{store} store: {what} has an unreadable time `{begun}`: {e}"),
            )
        })?
        .with_timezone(&chrono::Utc);
    Ok(crate::store::OutboxEntry::new(run, owner, op, begun))
}

/// Rows per multi-row statement: well inside SQLite's and PostgreSQL's
/// limits on bound parameters (5 a row).
pub(crate) const ROWS: usize = 1000;

pub(crate) fn seq(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
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
/// field over database `$db`. `$begin` starts every transaction (SQLite:
/// `BEGIN IMMEDIATE`, which takes the write lock at once, so that a
/// transaction of another process is waited for rather than failing
/// half-way with "database is locked"). `$migrate_lock` and `$append_lock` are
/// statements run first in the migration and audit-append transactions
/// (empty to run none).
macro_rules! sql_store {
    ($ty:ty, $db:ty, $name:literal, $begin:literal, $migrate_lock:literal, $append_lock:literal) => {
        impl $ty {
            /// Seals audit records with `key` (builder style; see
            /// [`AuditKey`](crate::audit::AuditKey)).
            pub fn with_audit_key(mut self, key: crate::audit::AuditKey) -> Self {
                self.audit_key = Some(key);
                self
            }

            async fn migrate(&self) -> prov_core::Result<()> {
                use crate::store::sql::{MIGRATIONS, db_error};
                let err = |e| db_error($name, "migrate", e);
                let mut tx = self.pool.begin_with($begin).await.map_err(err)?;
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

            fn link_rows(rows: Vec<(String, String, String, String)>) -> prov_core::Result<Vec<crate::ledger::Link>> {
                use crate::ledger::{Link, LinkOrigin};
                rows.into_iter()
                    .map(|(t, a, i, o)| {
                        let origin = LinkOrigin::parse(&o).ok_or_else(|| {
                            prov_core::Error::new(prov_core::ErrorKind::Unexpected, format!("{} store: link {t}/{a} has unknown origin `{o}`", $name))
                        })?;
                        Ok(Link::new(prov_core::TargetId::new(t), prov_core::AccountId::new(a), prov_core::IdentityId::new(i), origin))
                    })
                    .collect()
            }

            /// Records a link, never downgrading an origin (`created` wins).
            async fn put_link_in(conn: &mut <$db as sqlx::Database>::Connection, link: &crate::ledger::Link) -> Result<(), sqlx::Error> {
                sqlx::query(
                    "INSERT INTO prov_links (target, account, identity, origin) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (target, account) DO UPDATE SET identity = excluded.identity,
                       origin = CASE WHEN prov_links.origin = 'created' OR excluded.origin = 'created' THEN 'created' ELSE 'linked' END",
                )
                .bind(link.target.as_str())
                .bind(link.account.as_str())
                .bind(link.identity.as_str())
                .bind(link.origin.as_str())
                .execute(&mut *conn)
                .await?;
                Ok(())
            }

            /// Records many links in multi-row upserts; two for one account
            /// become one first (an upsert may not touch a row twice).
            async fn put_links_in(conn: &mut <$db as sqlx::Database>::Connection, links: Vec<crate::ledger::Link>) -> prov_core::Result<()> {
                if links.is_empty() {
                    return Ok(());
                }
                let mut merged: std::collections::BTreeMap<(prov_core::TargetId, prov_core::AccountId), crate::ledger::Link> = std::collections::BTreeMap::new();
                for link in links {
                    let key = (link.target.clone(), link.account.clone());
                    let mut link = link;
                    if let Some(old) = merged.get(&key) {
                        link.origin = old.origin.kept_with(link.origin);
                    }
                    merged.insert(key, link);
                }
                let all: Vec<crate::ledger::Link> = merged.into_values().collect();
                for chunk in all.chunks(crate::store::sql::ROWS) {
                    let mut q = sqlx::QueryBuilder::<$db>::new("INSERT INTO prov_links (target, account, identity, origin) ");
                    q.push_values(chunk, |mut b, l| {
                        b.push_bind(l.target.as_str().to_owned())
                            .push_bind(l.account.as_str().to_owned())
                            .push_bind(l.identity.as_str().to_owned())
                            .push_bind(l.origin.as_str());
                    });
                    q.push(
                        " ON CONFLICT (target, account) DO UPDATE SET identity = excluded.identity,
                          origin = CASE WHEN prov_links.origin = 'created' OR excluded.origin = 'created' THEN 'created' ELSE 'linked' END",
                    );
                    q.build().execute(&mut *conn).await.map_err(|e| crate::store::sql::db_error($name, "write links", e))?;
                }
                Ok(())
            }

            /// Records grant times in multi-row upserts (the later of two
            /// for one row wins).
            async fn put_grants_in(conn: &mut <$db as sqlx::Database>::Connection, grants: Vec<crate::ledger::GrantRecord>) -> prov_core::Result<()> {
                if grants.is_empty() {
                    return Ok(());
                }
                let mut merged: std::collections::BTreeMap<(prov_core::TargetId, prov_core::AccountId, prov_core::EntitlementId), i64> = std::collections::BTreeMap::new();
                for g in grants {
                    merged.insert((g.target, g.account, g.entitlement), crate::store::sql::millis(g.granted_at));
                }
                let all: Vec<_> = merged.into_iter().collect();
                for chunk in all.chunks(crate::store::sql::ROWS) {
                    let mut q = sqlx::QueryBuilder::<$db>::new("INSERT INTO prov_grants (target, account, entitlement, granted_ms) ");
                    q.push_values(chunk, |mut b, ((t, a, e), ms)| {
                        b.push_bind(t.as_str().to_owned())
                            .push_bind(a.as_str().to_owned())
                            .push_bind(e.as_str().to_owned())
                            .push_bind(*ms);
                    });
                    q.push(" ON CONFLICT (target, account, entitlement) DO UPDATE SET granted_ms = excluded.granted_ms");
                    q.build().execute(&mut *conn).await.map_err(|e| crate::store::sql::db_error($name, "write grants", e))?;
                }
                Ok(())
            }

            async fn ledger_in(conn: &mut <$db as sqlx::Database>::Connection, change: &crate::ledger::LedgerChange) -> prov_core::Result<()> {
                use crate::ledger::LedgerChange;
                let err = |e| crate::store::sql::db_error($name, "write link", e);
                match change {
                    LedgerChange::Put(link) => Self::put_link_in(conn, link).await.map_err(err),
                    LedgerChange::Remove { target, account } => {
                        for sql in [
                            "DELETE FROM prov_links WHERE target = $1 AND account = $2",
                            "DELETE FROM prov_grants WHERE target = $1 AND account = $2",
                        ] {
                            sqlx::query(sql)
                                .bind(target.as_str())
                                .bind(account.as_str())
                                .execute(&mut *conn)
                                .await
                                .map_err(err)?;
                        }
                        Ok(())
                    }
                    LedgerChange::Move { target, from, to } => {
                        let old: Option<(String, String, String, String)> = sqlx::query_as(
                            "DELETE FROM prov_links WHERE target = $1 AND account = $2 RETURNING target, account, identity, origin",
                        )
                        .bind(target.as_str())
                        .bind(from.as_str())
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(err)?;
                        if let Some(row) = old {
                            for mut link in Self::link_rows(vec![row])? {
                                link.account = to.clone();
                                Self::put_link_in(conn, &link).await.map_err(err)?;
                            }
                        }
                        sqlx::query("DELETE FROM prov_grants WHERE target = $1 AND account = $2")
                            .bind(target.as_str())
                            .bind(to.as_str())
                            .execute(&mut *conn)
                            .await
                            .map_err(err)?;
                        sqlx::query("UPDATE prov_grants SET account = $3 WHERE target = $1 AND account = $2")
                            .bind(target.as_str())
                            .bind(from.as_str())
                            .bind(to.as_str())
                            .execute(&mut *conn)
                            .await
                            .map_err(err)?;
                        Ok(())
                    }
                    LedgerChange::Created(record) => {
                        sqlx::query(
                            "INSERT INTO prov_entitlements (target, entitlement, created_ms) VALUES ($1, $2, $3)
                             ON CONFLICT (target, entitlement) DO NOTHING",
                        )
                        .bind(record.target.as_str())
                        .bind(record.entitlement.as_str())
                        .bind(crate::store::sql::millis(record.created_at))
                        .execute(&mut *conn)
                        .await
                        .map_err(err)?;
                        Ok(())
                    }
                    LedgerChange::Retired { target, entitlement } => {
                        sqlx::query("DELETE FROM prov_entitlements WHERE target = $1 AND entitlement = $2")
                            .bind(target.as_str())
                            .bind(entitlement.as_str())
                            .execute(&mut *conn)
                            .await
                            .map_err(err)?;
                        Ok(())
                    }
                }
            }

            /// Seals `events` after the chain's head and inserts them, in the caller's transaction.
            async fn seal_in(conn: &mut <$db as sqlx::Database>::Connection, events: Vec<crate::audit::AuditEvent>, key: Option<&crate::audit::AuditKey>) -> prov_core::Result<Vec<crate::audit::AuditRecord>> {
                use crate::audit::AuditRecord;
                let err = |e| crate::store::sql::db_error($name, "append audit", e);
                if events.is_empty() {
                    return Ok(Vec::new());
                }
                if !$append_lock.is_empty() {
                    sqlx::query($append_lock).execute(&mut *conn).await.map_err(err)?;
                }
                let last: Option<(String,)> =
                    sqlx::query_as("SELECT record FROM prov_audit ORDER BY seq DESC LIMIT 1").fetch_optional(&mut *conn).await.map_err(err)?;
                let mut prev: Option<AuditRecord> = match last {
                    Some((text,)) => Some(crate::store::sql::decode($name, "the last audit record", &text)?),
                    None => None,
                };
                let mut sealed = Vec::with_capacity(events.len());
                for event in events {
                    let record = AuditRecord::seal_with(prev.as_ref(), event, key);
                    sealed.push(record.clone());
                    prev = Some(record);
                }
                // Many rows a statement: per-statement overhead, not the
                // disk, bounds a grouped commit otherwise.
                for chunk in sealed.chunks(crate::store::sql::ROWS) {
                    let mut q = sqlx::QueryBuilder::<$db>::new("INSERT INTO prov_audit (seq, record, hash) ");
                    let mut rows = Vec::with_capacity(chunk.len());
                    for r in chunk {
                        rows.push((crate::store::sql::seq(r.seq), crate::store::sql::encode($name, "an audit record", r)?, r.hash.clone()));
                    }
                    q.push_values(rows, |mut b, (seq, text, hash)| {
                        b.push_bind(seq).push_bind(text).push_bind(hash);
                    });
                    q.build().execute(&mut *conn).await.map_err(err)?;
                }
                Ok(sealed)
            }

            fn audit_rows(rows: Vec<(String,)>) -> prov_core::Result<Vec<crate::audit::AuditRecord>> {
                rows.iter().map(|(text,)| crate::store::sql::decode($name, "an audit record", text)).collect()
            }

            fn lease_rows(rows: Vec<(String,)>) -> prov_core::Result<Vec<crate::leases::LeaseRecord>> {
                rows.iter().map(|(text,)| crate::store::sql::decode($name, "a lease", text)).collect()
            }
        }

        #[async_trait::async_trait]
        impl crate::store::Store for $ty {
            async fn links(&self) -> prov_core::Result<Vec<crate::ledger::Link>> {
                let rows = sqlx::query_as("SELECT target, account, identity, origin FROM prov_links ORDER BY target, account")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| crate::store::sql::db_error($name, "read links", e))?;
                Self::link_rows(rows)
            }

            async fn links_of(&self, identity: &prov_core::IdentityId) -> prov_core::Result<Vec<crate::ledger::Link>> {
                let rows = sqlx::query_as("SELECT target, account, identity, origin FROM prov_links WHERE identity = $1 ORDER BY target, account")
                    .bind(identity.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| crate::store::sql::db_error($name, "read links", e))?;
                Self::link_rows(rows)
            }

            async fn link(&self, target: &prov_core::TargetId, account: &prov_core::AccountId) -> prov_core::Result<Option<crate::ledger::Link>> {
                let rows = sqlx::query_as("SELECT target, account, identity, origin FROM prov_links WHERE target = $1 AND account = $2")
                    .bind(target.as_str())
                    .bind(account.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| crate::store::sql::db_error($name, "read link", e))?;
                Ok(Self::link_rows(rows)?.into_iter().next())
            }

            async fn put_link(&self, link: &crate::ledger::Link) -> prov_core::Result<()> {
                let mut conn = self.pool.acquire().await.map_err(|e| crate::store::sql::db_error($name, "write link", e))?;
                Self::put_link_in(&mut *conn, link).await.map_err(|e| crate::store::sql::db_error($name, "write link", e))
            }

            async fn remove_link(&self, target: &prov_core::TargetId, account: &prov_core::AccountId) -> prov_core::Result<()> {
                sqlx::query("DELETE FROM prov_links WHERE target = $1 AND account = $2")
                    .bind(target.as_str())
                    .bind(account.as_str())
                    .execute(&self.pool)
                    .await
                    .map_err(|e| crate::store::sql::db_error($name, "remove link", e))?;
                Ok(())
            }

            async fn grants_of(&self, target: &prov_core::TargetId, account: &prov_core::AccountId) -> prov_core::Result<Vec<crate::ledger::GrantRecord>> {
                let rows: Vec<(String, i64)> = sqlx::query_as("SELECT entitlement, granted_ms FROM prov_grants WHERE target = $1 AND account = $2 ORDER BY entitlement")
                    .bind(target.as_str())
                    .bind(account.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| crate::store::sql::db_error($name, "read grants", e))?;
                Ok(rows
                    .into_iter()
                    .map(|(e, ms)| crate::ledger::GrantRecord::new(target.clone(), account.clone(), prov_core::EntitlementId::new(e), crate::store::sql::from_millis(ms)))
                    .collect())
            }

            async fn created_entitlements(&self) -> prov_core::Result<Vec<crate::ledger::EntitlementRecord>> {
                let rows: Vec<(String, String, i64)> = sqlx::query_as("SELECT target, entitlement, created_ms FROM prov_entitlements")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| crate::store::sql::db_error($name, "read the entitlement ledger", e))?;
                let mut out: Vec<crate::ledger::EntitlementRecord> = rows
                    .into_iter()
                    .map(|(t, e, ms)| crate::ledger::EntitlementRecord::new(prov_core::TargetId::new(t), prov_core::EntitlementId::new(e), crate::store::sql::from_millis(ms)))
                    .collect();
                // Sorted here: the databases' collations differ.
                out.sort();
                Ok(out)
            }

            async fn append_audit(&self, events: Vec<crate::audit::AuditEvent>) -> prov_core::Result<Vec<crate::audit::AuditRecord>> {
                if events.is_empty() {
                    return Ok(Vec::new());
                }
                let err = |e| crate::store::sql::db_error($name, "append audit", e);
                let mut tx = self.pool.begin_with($begin).await.map_err(err)?;
                let sealed = Self::seal_in(&mut *tx, events, self.audit_key.as_ref()).await?;
                tx.commit().await.map_err(err)?;
                Ok(sealed)
            }

            async fn audit_range(&self, from: u64, limit: usize) -> prov_core::Result<Vec<crate::audit::AuditRecord>> {
                let rows = sqlx::query_as("SELECT record FROM prov_audit WHERE seq >= $1 ORDER BY seq LIMIT $2")
                    .bind(crate::store::sql::seq(from))
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| crate::store::sql::db_error($name, "read audit", e))?;
                Self::audit_rows(rows)
            }

            async fn audit_head(&self) -> prov_core::Result<Option<crate::audit::AuditRecord>> {
                let rows = sqlx::query_as("SELECT record FROM prov_audit ORDER BY seq DESC LIMIT 1")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| crate::store::sql::db_error($name, "read audit", e))?;
                Ok(Self::audit_rows(rows)?.into_iter().next())
            }

            async fn outbox_begin(&self, entries: &[crate::store::OutboxEntry]) -> prov_core::Result<()> {
                if entries.is_empty() {
                    return Ok(());
                }
                let err = |e| crate::store::sql::db_error($name, "outbox", e);
                let mut tx = self.pool.begin_with($begin).await.map_err(err)?;
                for chunk in entries.chunks(crate::store::sql::ROWS) {
                    let mut rows = Vec::with_capacity(chunk.len());
                    for e in chunk {
                        rows.push((
                            e.run.clone(),
                            e.op.id.clone(),
                            e.owner.clone(),
                            e.begun.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                            crate::store::sql::encode($name, "an outbox entry", &e.op)?,
                        ));
                    }
                    let mut q = sqlx::QueryBuilder::<$db>::new("INSERT INTO prov_outbox (run, op, owner, begun, entry) ");
                    q.push_values(rows, |mut b, (run, op, owner, begun, entry)| {
                        b.push_bind(run).push_bind(op).push_bind(owner).push_bind(begun).push_bind(entry);
                    });
                    q.push(" ON CONFLICT (run, op) DO UPDATE SET owner = excluded.owner, begun = excluded.begun, entry = excluded.entry");
                    q.build().execute(&mut *tx).await.map_err(err)?;
                }
                tx.commit().await.map_err(err)
            }

            async fn complete(&self, done: Vec<crate::store::Completion>) -> prov_core::Result<Vec<crate::audit::AuditRecord>> {
                if done.is_empty() {
                    return Ok(Vec::new());
                }
                let err = |e| crate::store::sql::db_error($name, "complete", e);
                let mut tx = self.pool.begin_with($begin).await.map_err(err)?;
                let mut events = Vec::with_capacity(done.len());
                let mut closed: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
                // Consecutive link puts (a group of creates) go in multi-row
                // upserts; removals and moves keep their order around them.
                let mut puts: Vec<crate::ledger::Link> = Vec::new();
                // Grant records likewise: consecutive grants in one upsert,
                // flushed before any change that could touch the same rows.
                let mut granted: Vec<crate::ledger::GrantRecord> = Vec::new();
                for c in done {
                    if c.if_open {
                        // Recovery: recorded only by whoever closes the entry.
                        let closed = sqlx::query("DELETE FROM prov_outbox WHERE run = $1 AND op = $2")
                            .bind(&c.run)
                            .bind(&c.op)
                            .execute(&mut *tx)
                            .await
                            .map_err(err)?
                            .rows_affected();
                        if closed == 0 {
                            continue;
                        }
                    }
                    match c.ledger {
                        Some(crate::ledger::LedgerChange::Put(link)) => puts.push(link),
                        Some(change) => {
                            Self::put_links_in(&mut *tx, std::mem::take(&mut puts)).await?;
                            Self::put_grants_in(&mut *tx, std::mem::take(&mut granted)).await?;
                            Self::ledger_in(&mut *tx, &change).await?;
                        }
                        None => {}
                    }
                    match c.grant {
                        Some(crate::ledger::GrantChange::Granted(g)) => granted.push(g),
                        Some(crate::ledger::GrantChange::Revoked { target, account, entitlement }) => {
                            Self::put_grants_in(&mut *tx, std::mem::take(&mut granted)).await?;
                            sqlx::query("DELETE FROM prov_grants WHERE target = $1 AND account = $2 AND entitlement = $3")
                                .bind(target.as_str())
                                .bind(account.as_str())
                                .bind(entitlement.as_str())
                                .execute(&mut *tx)
                                .await
                                .map_err(err)?;
                        }
                        None => {}
                    }
                    closed.entry(c.run).or_default().push(c.op);
                    events.push(c.event);
                }
                Self::put_links_in(&mut *tx, puts).await?;
                Self::put_grants_in(&mut *tx, granted).await?;
                for (run, ops) in closed {
                    for chunk in ops.chunks(crate::store::sql::ROWS) {
                        let mut q = sqlx::QueryBuilder::<$db>::new("DELETE FROM prov_outbox WHERE run = ");
                        q.push_bind(run.clone());
                        q.push(" AND op IN (");
                        let mut list = q.separated(", ");
                        for op in chunk {
                            list.push_bind(op.clone());
                        }
                        list.push_unseparated(")");
                        q.build().execute(&mut *tx).await.map_err(err)?;
                    }
                }
                let sealed = Self::seal_in(&mut *tx, events, self.audit_key.as_ref()).await?;
                tx.commit().await.map_err(err)?;
                Ok(sealed)
            }

            async fn outbox_open(&self) -> prov_core::Result<Vec<crate::store::OutboxEntry>> {
                let rows: Vec<(String, String, String, String, String)> =
                    sqlx::query_as("SELECT run, op, owner, begun, entry FROM prov_outbox ORDER BY begun, run, op")
                        .fetch_all(&self.pool)
                        .await
                        .map_err(|e| crate::store::sql::db_error($name, "outbox", e))?;
                rows.into_iter().map(|row| crate::store::sql::outbox_entry($name, row)).collect()
            }

            async fn claim(
                &self,
                claim: &crate::store::Claim,
                targets: &[prov_core::TargetId],
                now: chrono::DateTime<chrono::Utc>,
                dead: &[String],
            ) -> prov_core::Result<Option<crate::store::Holder>> {
                use crate::store::sql::{from_millis, millis};
                let err = |e| crate::store::sql::db_error($name, "claim targets", e);
                let mut tx = self.claims.begin_with($begin).await.map_err(err)?;
                for run in dead {
                    sqlx::query("DELETE FROM prov_claims WHERE run = $1").bind(run).execute(&mut *tx).await.map_err(err)?;
                }
                // Every target in one statement: a row is written only where
                // the target is free, this run's, or its claim lapsed.
                let mut q = sqlx::QueryBuilder::<$db>::new("INSERT INTO prov_claims (target, run, owner, until_ms) ");
                q.push_values(targets, |mut b, t| {
                    b.push_bind(t.as_str())
                        .push_bind(&claim.run)
                        .push_bind(&claim.owner)
                        .push_bind(millis(claim.until));
                });
                q.push(" ON CONFLICT (target) DO UPDATE SET run = excluded.run, owner = excluded.owner, until_ms = excluded.until_ms
                         WHERE prov_claims.run = excluded.run OR prov_claims.until_ms < ")
                    .push_bind(millis(now));
                let taken = if targets.is_empty() {
                    0
                } else {
                    q.build().execute(&mut *tx).await.map_err(err)?.rows_affected()
                };
                if usize::try_from(taken).ok() != Some(targets.len()) {
                    // One is held: name a holder that is not this run.
                    for t in targets {
                        let row: Option<(String, String, i64)> =
                            sqlx::query_as("SELECT run, owner, until_ms FROM prov_claims WHERE target = $1 AND run <> $2")
                                .bind(t.as_str())
                                .bind(&claim.run)
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err(err)?;
                        if let Some((run, owner, until)) = row {
                            tx.rollback().await.map_err(err)?;
                            return Ok(Some(crate::store::Holder {
                                target: t.clone(),
                                claim: crate::store::Claim::new(run, owner, from_millis(until)),
                            }));
                        }
                    }
                }
                tx.commit().await.map_err(err)?;
                Ok(None)
            }

            async fn renew(&self, claim: &crate::store::Claim) -> prov_core::Result<()> {
                sqlx::query("UPDATE prov_claims SET until_ms = $2 WHERE run = $1")
                    .bind(&claim.run)
                    .bind(crate::store::sql::millis(claim.until))
                    .execute(&self.claims)
                    .await
                    .map_err(|e| crate::store::sql::db_error($name, "renew claims", e))?;
                Ok(())
            }

            async fn release(&self, run: &str) -> prov_core::Result<()> {
                sqlx::query("DELETE FROM prov_claims WHERE run = $1")
                    .bind(run)
                    .execute(&self.claims)
                    .await
                    .map_err(|e| crate::store::sql::db_error($name, "release claims", e))?;
                Ok(())
            }

            async fn claims(&self) -> prov_core::Result<Vec<crate::store::Claim>> {
                let rows: Vec<(String, String, i64)> =
                    sqlx::query_as("SELECT run, owner, MAX(until_ms) FROM prov_claims GROUP BY run, owner ORDER BY run")
                        .fetch_all(&self.pool)
                        .await
                        .map_err(|e| crate::store::sql::db_error($name, "read claims", e))?;
                Ok(rows
                    .into_iter()
                    .map(|(run, owner, until)| crate::store::Claim::new(run, owner, crate::store::sql::from_millis(until)))
                    .collect())
            }

            async fn put_lease(&self, lease: &crate::leases::LeaseRecord) -> prov_core::Result<()> {
                let text = crate::store::sql::encode($name, "a lease", lease)?;
                sqlx::query(
                    "INSERT INTO prov_leases (id, record, identity, state) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (id) DO UPDATE SET record = excluded.record, identity = excluded.identity, state = excluded.state",
                )
                .bind(&lease.id)
                .bind(text)
                .bind(lease.request.identity.as_str())
                .bind(crate::store::sql::lease_state(lease.state))
                .execute(&self.pool)
                .await
                .map_err(|e| crate::store::sql::db_error($name, "write lease", e))?;
                Ok(())
            }

            async fn decide_lease(
                &self,
                lease: &crate::leases::LeaseRecord,
                expected: crate::leases::LeaseState,
                event: crate::audit::AuditEvent,
            ) -> prov_core::Result<bool> {
                let err = |e| crate::store::sql::db_error($name, "decide lease", e);
                let text = crate::store::sql::encode($name, "a lease", lease)?;
                let mut tx = self.pool.begin_with($begin).await.map_err(err)?;
                let changed = sqlx::query("UPDATE prov_leases SET record = $2, state = $3 WHERE id = $1 AND state = $4")
                    .bind(&lease.id)
                    .bind(text)
                    .bind(crate::store::sql::lease_state(lease.state))
                    .bind(crate::store::sql::lease_state(expected))
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?
                    .rows_affected();
                if changed != 1 {
                    tx.rollback().await.map_err(err)?;
                    return Ok(false);
                }
                Self::seal_in(&mut *tx, vec![event], self.audit_key.as_ref()).await?;
                tx.commit().await.map_err(err)?;
                Ok(true)
            }

            async fn lease(&self, id: &str) -> prov_core::Result<Option<crate::leases::LeaseRecord>> {
                let rows = sqlx::query_as("SELECT record FROM prov_leases WHERE id = $1")
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| crate::store::sql::db_error($name, "read lease", e))?;
                Ok(Self::lease_rows(rows)?.into_iter().next())
            }

            async fn leases_of(&self, identity: &prov_core::IdentityId) -> prov_core::Result<Vec<crate::leases::LeaseRecord>> {
                let rows = sqlx::query_as("SELECT record FROM prov_leases WHERE identity = $1 OR identity = '' ORDER BY id")
                    .bind(identity.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| crate::store::sql::db_error($name, "read leases", e))?;
                Ok(Self::lease_rows(rows)?.into_iter().filter(|l| &l.request.identity == identity).collect())
            }

            async fn leases(&self) -> prov_core::Result<Vec<crate::leases::LeaseRecord>> {
                let rows = sqlx::query_as("SELECT record FROM prov_leases ORDER BY id")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| crate::store::sql::db_error($name, "read leases", e))?;
                Self::lease_rows(rows)
            }

            async fn put_leaver(&self, leaver: &crate::leavers::LeaverRecord) -> prov_core::Result<()> {
                let text = crate::store::sql::encode($name, "a leaver", leaver)?;
                sqlx::query("INSERT INTO prov_leavers (identity, record) VALUES ($1, $2) ON CONFLICT (identity) DO NOTHING")
                    .bind(leaver.identity.as_str())
                    .bind(text)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| crate::store::sql::db_error($name, "write leaver", e))?;
                Ok(())
            }

            async fn remove_leaver(&self, identity: &prov_core::IdentityId) -> prov_core::Result<bool> {
                let n = sqlx::query("DELETE FROM prov_leavers WHERE identity = $1")
                    .bind(identity.as_str())
                    .execute(&self.pool)
                    .await
                    .map_err(|e| crate::store::sql::db_error($name, "remove leaver", e))?
                    .rows_affected();
                Ok(n > 0)
            }

            async fn leavers(&self) -> prov_core::Result<Vec<crate::leavers::LeaverRecord>> {
                let rows: Vec<(String,)> = sqlx::query_as("SELECT record FROM prov_leavers ORDER BY identity")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| crate::store::sql::db_error($name, "read leavers", e))?;
                rows.iter().map(|(text,)| crate::store::sql::decode($name, "a leaver", text)).collect()
            }

            async fn change_token(&self, target: &prov_core::TargetId) -> prov_core::Result<Option<String>> {
                let row: Option<(String,)> = sqlx::query_as("SELECT token FROM prov_change_tokens WHERE target = $1")
                    .bind(target.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| crate::store::sql::db_error($name, "read a change token", e))?;
                Ok(row.map(|(t,)| t))
            }

            async fn put_change_token(&self, target: &prov_core::TargetId, token: &str) -> prov_core::Result<()> {
                sqlx::query("INSERT INTO prov_change_tokens (target, token) VALUES ($1, $2) ON CONFLICT (target) DO UPDATE SET token = excluded.token")
                    .bind(target.as_str())
                    .bind(token)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| crate::store::sql::db_error($name, "write a change token", e))?;
                Ok(())
            }

            async fn leaver(&self, identity: &prov_core::IdentityId) -> prov_core::Result<Option<crate::leavers::LeaverRecord>> {
                let rows: Vec<(String,)> = sqlx::query_as("SELECT record FROM prov_leavers WHERE identity = $1")
                    .bind(identity.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| crate::store::sql::db_error($name, "read leaver", e))?;
                rows.iter().map(|(text,)| crate::store::sql::decode($name, "a leaver", text)).next().transpose()
            }
        }
    };
}

pub(crate) use sql_store;
