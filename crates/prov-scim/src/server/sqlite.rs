//! [`SqliteStore`]: every tenant's resources in one SQLite file (WAL,
//! `synchronous = FULL`), with the indexes the [`ScimStore`] contract asks
//! for as a table of (attribute, value) rows, `userName` unique per tenant
//! by a unique index, so two creates at once cannot both take a name.

use std::path::Path;

use serde_json::{Map, Value};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use super::store::{
    Found, Kind, Query, ScimStore, StoreError, Stored, index_keys, indexed_equality, sort_resources,
};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS scim_resources (
        tenant TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL,
        seq INTEGER NOT NULL, version INTEGER NOT NULL,
        created TEXT NOT NULL, modified TEXT NOT NULL, attributes TEXT NOT NULL,
        PRIMARY KEY (tenant, kind, id))",
    "CREATE UNIQUE INDEX IF NOT EXISTS scim_resources_order ON scim_resources (tenant, kind, seq)",
    "CREATE TABLE IF NOT EXISTS scim_index (
        tenant TEXT NOT NULL, kind TEXT NOT NULL, attr TEXT NOT NULL, value TEXT NOT NULL, id TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS scim_index_lookup ON scim_index (tenant, kind, attr, value)",
    "CREATE INDEX IF NOT EXISTS scim_index_of ON scim_index (tenant, kind, id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS scim_user_name ON scim_index (tenant, kind, value) WHERE attr = 'userName'",
];

/// Resources in one SQLite file: what `examples/scim_server.rs` keeps its
/// tenants' users and groups in.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn failed(e: impl std::fmt::Display) -> StoreError {
    StoreError::Failed(e.to_string())
}

fn kind_name(kind: Kind) -> &'static str {
    kind.as_str()
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `path`. The file holds
    /// identities: it is created readable by its owner only (0600).
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(failed)?;
            }
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
            {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                        .map_err(failed)?;
                }
                Err(e) => return Err(failed(e)),
            }
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(30));
        Self::connect(options).await
    }

    /// A private in-memory database, for tests.
    pub async fn in_memory() -> Result<Self, StoreError> {
        let options: SqliteConnectOptions = "sqlite::memory:".parse().map_err(failed)?;
        Self::connect(options).await
    }

    async fn connect(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        // One connection: writes are serialised, and a private in-memory
        // database lives as long as its connection.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(failed)?;
        for stmt in SCHEMA {
            sqlx::query(*stmt).execute(&pool).await.map_err(failed)?;
        }
        Ok(SqliteStore { pool })
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

async fn write_index(
    tx: &mut Transaction<'_, Sqlite>,
    tenant: &str,
    kind: Kind,
    r: &Stored,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM scim_index WHERE tenant = ? AND kind = ? AND id = ?")
        .bind(tenant)
        .bind(kind_name(kind))
        .bind(&r.id)
        .execute(&mut **tx)
        .await
        .map_err(failed)?;
    for (attr, value) in index_keys(kind, r) {
        sqlx::query(
            "INSERT INTO scim_index (tenant, kind, attr, value, id) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(tenant)
        .bind(kind_name(kind))
        .bind(attr)
        .bind(&value)
        .bind(&r.id)
        .execute(&mut **tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Taken("userName")
            } else {
                failed(e)
            }
        })?;
    }
    Ok(())
}

fn row_to_stored(row: &sqlx::sqlite::SqliteRow) -> Result<Stored, StoreError> {
    let parse_time = |s: String| {
        chrono::DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(failed)
    };
    let attributes: String = row.try_get("attributes").map_err(failed)?;
    let attributes: Map<String, Value> = serde_json::from_str(&attributes).map_err(failed)?;
    let version: i64 = row.try_get("version").map_err(failed)?;
    Ok(Stored {
        id: row.try_get("id").map_err(failed)?,
        version: u64::try_from(version).map_err(failed)?,
        created: parse_time(row.try_get("created").map_err(failed)?)?,
        modified: parse_time(row.try_get("modified").map_err(failed)?)?,
        attributes,
    })
}

fn version_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(failed)
}

async fn load(
    exec: &mut sqlx::SqliteConnection,
    tenant: &str,
    kind: Kind,
    id: &str,
) -> Result<Option<Stored>, StoreError> {
    let row = sqlx::query(
        "SELECT id, version, created, modified, attributes FROM scim_resources
         WHERE tenant = ? AND kind = ? AND id = ?",
    )
    .bind(tenant)
    .bind(kind_name(kind))
    .bind(id)
    .fetch_optional(&mut *exec)
    .await
    .map_err(failed)?;
    row.as_ref().map(row_to_stored).transpose()
}

async fn store_row(
    tx: &mut Transaction<'_, Sqlite>,
    tenant: &str,
    kind: Kind,
    r: &Stored,
) -> Result<(), StoreError> {
    let attributes = serde_json::to_string(&r.attributes).map_err(failed)?;
    sqlx::query(
        "UPDATE scim_resources SET version = ?, created = ?, modified = ?, attributes = ?
         WHERE tenant = ? AND kind = ? AND id = ?",
    )
    .bind(version_i64(r.version)?)
    .bind(r.created.to_rfc3339())
    .bind(r.modified.to_rfc3339())
    .bind(attributes)
    .bind(tenant)
    .bind(kind_name(kind))
    .bind(&r.id)
    .execute(&mut **tx)
    .await
    .map_err(failed)?;
    write_index(tx, tenant, kind, r).await
}

#[async_trait::async_trait]
impl ScimStore for SqliteStore {
    async fn insert(&self, tenant: &str, kind: Kind, resource: Stored) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(failed)?;
        let attributes = serde_json::to_string(&resource.attributes).map_err(failed)?;
        sqlx::query(
            "INSERT INTO scim_resources (tenant, kind, id, seq, version, created, modified, attributes)
             VALUES (?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM scim_resources WHERE tenant = ? AND kind = ?), ?, ?, ?, ?)",
        )
        .bind(tenant)
        .bind(kind_name(kind))
        .bind(&resource.id)
        .bind(tenant)
        .bind(kind_name(kind))
        .bind(version_i64(resource.version)?)
        .bind(resource.created.to_rfc3339())
        .bind(resource.modified.to_rfc3339())
        .bind(attributes)
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
        write_index(&mut tx, tenant, kind, &resource).await?;
        tx.commit().await.map_err(failed)
    }

    async fn get(&self, tenant: &str, kind: Kind, id: &str) -> Result<Option<Stored>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(failed)?;
        load(&mut conn, tenant, kind, id).await
    }

    async fn update(
        &self,
        tenant: &str,
        kind: Kind,
        resource: Stored,
        expected: u64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(failed)?;
        let current = load(&mut tx, tenant, kind, &resource.id)
            .await?
            .ok_or(StoreError::NotFound)?;
        if current.version != expected {
            return Err(StoreError::Changed);
        }
        store_row(&mut tx, tenant, kind, &resource).await?;
        tx.commit().await.map_err(failed)
    }

    async fn delete(&self, tenant: &str, kind: Kind, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(failed)?;
        let gone =
            sqlx::query("DELETE FROM scim_resources WHERE tenant = ? AND kind = ? AND id = ?")
                .bind(tenant)
                .bind(kind_name(kind))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(failed)?
                .rows_affected();
        if gone == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM scim_index WHERE tenant = ? AND kind = ? AND id = ?")
            .bind(tenant)
            .bind(kind_name(kind))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        // Out of every group that had it as a member, in the same write.
        let holding: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM scim_index WHERE tenant = ? AND kind = 'Group' AND attr = 'members' AND value = ?",
        )
        .bind(tenant)
        .bind(id)
        .fetch_all(&mut *tx)
        .await
        .map_err(failed)?;
        for gid in holding {
            let Some(mut g) = load(&mut tx, tenant, Kind::Group, &gid).await? else {
                continue;
            };
            if let Some(Value::Array(members)) = g.attributes.get_mut("members") {
                members.retain(|m| m.get("value").and_then(Value::as_str) != Some(id));
                if members.is_empty() {
                    g.attributes.remove("members");
                }
            }
            g.version = g.version.saturating_add(1);
            store_row(&mut tx, tenant, Kind::Group, &g).await?;
        }
        tx.commit().await.map_err(failed)?;
        Ok(true)
    }

    async fn query(&self, tenant: &str, kind: Kind, query: &Query) -> Result<Found, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(failed)?;
        let schema = kind.schema();
        let rule = |p: &crate::filter::AttrPath| schema.case_exact(p);
        let start = query.start_index.max(1) - 1;
        // Neither filter nor sort: a page straight from SQL.
        if query.filter.is_none() && query.sort_by.is_none() {
            let total: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM scim_resources WHERE tenant = ? AND kind = ?",
            )
            .bind(tenant)
            .bind(kind_name(kind))
            .fetch_one(&mut *conn)
            .await
            .map_err(failed)?;
            let rows = sqlx::query(
                "SELECT id, version, created, modified, attributes FROM scim_resources
                 WHERE tenant = ? AND kind = ? ORDER BY seq LIMIT ? OFFSET ?",
            )
            .bind(tenant)
            .bind(kind_name(kind))
            .bind(i64::try_from(query.count).unwrap_or(i64::MAX))
            .bind(i64::try_from(start).unwrap_or(i64::MAX))
            .fetch_all(&mut *conn)
            .await
            .map_err(failed)?;
            return Ok(Found {
                total: u64::try_from(total).unwrap_or(0),
                resources: rows.iter().map(row_to_stored).collect::<Result<_, _>>()?,
            });
        }
        // An indexed equality narrows the rows read; the filter decides.
        let narrowed = query
            .filter
            .as_ref()
            .and_then(|f| indexed_equality(kind, f));
        let rows = match &narrowed {
            Some((attr, value)) => sqlx::query(
                "SELECT r.id, r.version, r.created, r.modified, r.attributes FROM scim_resources r
                 JOIN scim_index i ON i.tenant = r.tenant AND i.kind = r.kind AND i.id = r.id
                 WHERE r.tenant = ? AND r.kind = ? AND i.attr = ? AND i.value = ? ORDER BY r.seq",
            )
            .bind(tenant)
            .bind(kind_name(kind))
            .bind(*attr)
            .bind(value)
            .fetch_all(&mut *conn)
            .await
            .map_err(failed)?,
            None => sqlx::query(
                "SELECT id, version, created, modified, attributes FROM scim_resources
                 WHERE tenant = ? AND kind = ? ORDER BY seq",
            )
            .bind(tenant)
            .bind(kind_name(kind))
            .fetch_all(&mut *conn)
            .await
            .map_err(failed)?,
        };
        let mut all = Vec::new();
        for row in &rows {
            let r = row_to_stored(row)?;
            let keep = match &query.filter {
                None => true,
                Some(f) => f.matches_with(&super::resource_json(kind, &r, None), &rule),
            };
            if keep {
                all.push(r);
            }
        }
        if let Some(by) = &query.sort_by {
            sort_resources(kind, &mut all, by, query.descending);
        }
        let total = u64::try_from(all.len()).unwrap_or(u64::MAX);
        let resources = all
            .into_iter()
            .skip(usize::try_from(start).unwrap_or(usize::MAX))
            .take(usize::try_from(query.count).unwrap_or(usize::MAX))
            .collect();
        Ok(Found { total, resources })
    }

    async fn groups_of(
        &self,
        tenant: &str,
        member: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(failed)?;
        let rows = sqlx::query(
            "SELECT r.id, r.version, r.created, r.modified, r.attributes FROM scim_resources r
             JOIN scim_index i ON i.tenant = r.tenant AND i.kind = r.kind AND i.id = r.id
             WHERE r.tenant = ? AND r.kind = 'Group' AND i.attr = 'members' AND i.value = ? ORDER BY r.seq",
        )
        .bind(tenant)
        .bind(member)
        .fetch_all(&mut *conn)
        .await
        .map_err(failed)?;
        rows.iter()
            .map(|row| {
                let g = row_to_stored(row)?;
                let name = g.text("displayName").unwrap_or_default().to_owned();
                Ok((g.id, name))
            })
            .collect()
    }

    async fn missing(&self, tenant: &str, ids: &[&str]) -> Result<Vec<String>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(failed)?;
        // The ids as one JSON array: one statement however many there are.
        let list = serde_json::to_string(ids).map_err(failed)?;
        let out: Vec<String> = sqlx::query_scalar(
            "SELECT j.value FROM json_each(?) j WHERE j.value NOT IN
             (SELECT id FROM scim_resources WHERE tenant = ?)",
        )
        .bind(list)
        .bind(tenant)
        .fetch_all(&mut *conn)
        .await
        .map_err(failed)?;
        Ok(out)
    }
}
