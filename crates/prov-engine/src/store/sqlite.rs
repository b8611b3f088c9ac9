//! `SqliteStore`: the embedded default store, one SQLite file in WAL mode.

use std::path::Path;
use std::str::FromStr;

use prov_core::Result;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::sql::{db_error, sql_store};

/// How long a statement waits for another process's transaction.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Creates `path` (empty) with mode 0600 if it is missing, and narrows the
/// mode of an existing store file and its `-wal` and `-shm` to 0600.
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = std::path::PathBuf::from(name);
        if let Ok(meta) = std::fs::metadata(&file)
            && meta.permissions().mode() & 0o077 != 0
        {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// Whether SQLite answered "busy" (another connection holds the lock).
fn is_busy(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "5" || code.parse::<u32>().is_ok_and(|c| c & 0xff == 5))
}

/// The store in one SQLite file: nothing to install or start.
///
/// WAL journal and `synchronous = FULL`: a write that returned survives a
/// crash of the process or the machine. One connection serialises writers,
/// which also keeps the audit chain in order.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Claims' own connection (see `with_options`).
    claims: SqlitePool,
    audit_key: Option<crate::audit::AuditKey>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `path` and brings its schema up to date.
    ///
    /// The file holds identities and the audit log: it is created readable
    /// by its owner only (0600), and an existing one is narrowed to that.
    /// SQLite gives its `-wal` and `-shm` files the same mode.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        private_file(path).map_err(|e| {
            prov_core::Error::new(
                prov_core::ErrorKind::Config,
                format!(
                    "sqlite store: cannot create {} as a private file: {e}",
                    path.display()
                ),
            )
        })?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            // Another process's transaction is waited for (BEGIN IMMEDIATE
            // takes the write lock up front), up to this long.
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        Self::with_options(options, &path.display().to_string(), true).await
    }

    /// A private in-memory database (for tests that want the SQL path without a file).
    pub async fn in_memory() -> Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(|e| db_error("sqlite", "in-memory options", e))?;
        Self::with_options(options, ":memory:", false).await
    }

    /// With `claims_apart`, claims get a second connection whose commits
    /// are not fsync'd (`synchronous = NORMAL`): a claim only matters while
    /// its process lives, so a machine crash that loses one loses nothing,
    /// and the next durable commit (the run's outbox) makes it durable too,
    /// the WAL being written in order. That saves an event two of its four
    /// fsyncs. A private in-memory database has one connection for all.
    async fn with_options(
        options: SqliteConnectOptions,
        name: &str,
        claims_apart: bool,
    ) -> Result<Self> {
        // One connection, never recycled: a private in-memory database lives
        // and dies with its connection.
        // Two processes opening a new file at once: switching it to WAL
        // needs a lock the busy timeout does not wait for, so the open
        // itself is retried, for as long as the busy timeout.
        let started = std::time::Instant::now();
        let connect = |options: SqliteConnectOptions| async move {
            loop {
                match SqlitePoolOptions::new()
                    .max_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(options.clone())
                    .await
                {
                    Ok(pool) => return Ok(pool),
                    Err(e) if is_busy(&e) && started.elapsed() < BUSY_TIMEOUT => {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    Err(e) => return Err(db_error("sqlite", &format!("cannot open {name}"), e)),
                }
            }
        };
        let pool = connect(options.clone()).await?;
        let claims = if claims_apart {
            connect(options.synchronous(SqliteSynchronous::Normal)).await?
        } else {
            pool.clone()
        };
        let store = SqliteStore {
            pool,
            claims,
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
