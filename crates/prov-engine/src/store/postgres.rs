//! `PostgresStore`: a store several engine processes share.

use prov_core::Result;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::sql::{db_error, sql_store};

/// The store in PostgreSQL: several engine processes can share it.
///
/// Migrations run under an advisory lock, so processes starting together do
/// not race; audit appends take a table lock (readers are not blocked) for
/// the length of their transaction, so records from every process form one chain.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Where claims are written: the same pool.
    claims: PgPool,
    audit_key: Option<crate::audit::AuditKey>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db`) and brings the
    /// schema up to date. The URL's password, if any, is never printed.
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(url)
            .await
            .map_err(|e| db_error("postgres", "cannot connect", e))?;
        let store = PostgresStore {
            claims: pool.clone(),
            pool,
            audit_key: None,
        };
        store.migrate().await?;
        Ok(store)
    }
}

// 1886547830 is "prov" in ASCII: the advisory lock's key.
sql_store!(
    PostgresStore,
    sqlx::Postgres,
    "postgres",
    "BEGIN",
    "SELECT pg_advisory_xact_lock(1886547830)",
    "LOCK TABLE prov_audit IN SHARE ROW EXCLUSIVE MODE"
);
