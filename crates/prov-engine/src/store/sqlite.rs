//! `SqliteStore`: the embedded default store, one SQLite file in WAL mode.

use std::path::Path;
use std::str::FromStr;

use prov_core::Result;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::sql::{db_error, sql_store};

/// The store in one SQLite file: nothing to install or start.
///
/// WAL journal and `synchronous = FULL`: a write that returned survives a
/// crash of the process or the machine. One connection serialises writers,
/// which also keeps the audit chain in order.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    audit_key: Option<crate::audit::AuditKey>,
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
            // Another process's transaction is waited for (BEGIN IMMEDIATE
            // takes the write lock up front), up to this long.
            .busy_timeout(std::time::Duration::from_secs(30))
            .foreign_keys(true);
        Self::with_options(options, &path.display().to_string()).await
    }

    /// A private in-memory database (for tests that want the SQL path without a file).
    pub async fn in_memory() -> Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(|e| db_error("sqlite", "in-memory options", e))?;
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
            .map_err(|e| db_error("sqlite", &format!("cannot open {name}"), e))?;
        let store = SqliteStore {
            pool,
            audit_key: None,
        };
        store.migrate().await?;
        Ok(store)
    }
}

// One connection already serialises writers: no locks needed.
sql_store!(
    SqliteStore,
    sqlx::Sqlite,
    "sqlite",
    "BEGIN IMMEDIATE",
    "",
    ""
);
