//! `PostgresStore`: a store several engine processes share.

use std::str::FromStr;

use prov_core::{Error, ErrorKind, Result};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};

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
    ///
    /// TLS (rustls): a host other than the loopback is reached with
    /// `sslmode=verify-full` (the server's certificate checked against
    /// Mozilla's roots, or `sslrootcert=CA.pem`, and its name against the
    /// host), unless the URL asks for it itself; a weaker `sslmode` for such
    /// a host is a `Config` error (the store holds identities and the audit
    /// log). On the loopback or a Unix socket the URL's mode stands
    /// (PostgreSQL's default, `prefer`).
    pub async fn connect(url: &str) -> Result<Self> {
        let options = connect_options(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options)
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

/// Whether `host` is this machine: a loopback address, `localhost`, or a
/// Unix socket directory.
fn is_local(host: &str) -> bool {
    host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The connection options for `url`, with TLS as [`PostgresStore::connect`] says.
fn connect_options(url: &str) -> Result<PgConnectOptions> {
    let options =
        PgConnectOptions::from_str(url).map_err(|e| db_error("postgres", "cannot connect", e))?;
    let host = options.get_host().to_owned();
    if options.get_socket().is_some() || is_local(&host) {
        return Ok(options);
    }
    let asked = url.split_once('?').is_some_and(|(_, q)| {
        q.split('&')
            .any(|kv| kv.starts_with("sslmode=") || kv.starts_with("ssl-mode="))
    }) || std::env::var_os("PGSSLMODE").is_some();
    match options.get_ssl_mode() {
        PgSslMode::VerifyFull => Ok(options),
        _ if !asked => Ok(options.ssl_mode(PgSslMode::VerifyFull)),
        weaker => Err(Error::new(
            ErrorKind::Config,
            format!(
                "postgres store at {host}: sslmode {weaker:?} does not check both the server's \
                 certificate and its name; use sslmode=verify-full (the default for a host \
                 other than the loopback), with sslrootcert=CA.pem for a private CA"
            ),
        )
        .with_field("store")),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_hosts_get_verify_full_and_weaker_modes_are_refused() {
        let mode = |url: &str| connect_options(url).map(|o| o.get_ssl_mode());
        assert!(matches!(
            mode("postgres://prov@db.example.com/prov"),
            Ok(PgSslMode::VerifyFull)
        ));
        assert!(matches!(
            mode("postgres://prov@10.1.2.3:5433/prov?sslmode=verify-full&sslrootcert=/ca.pem"),
            Ok(PgSslMode::VerifyFull)
        ));
        for weak in ["disable", "prefer", "require", "verify-ca"] {
            let e = mode(&format!(
                "postgres://prov:pw@db.example.com/prov?sslmode={weak}"
            ))
            .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{weak}: {e}");
            assert!(
                e.to_string().contains("verify-full") && !e.to_string().contains("pw"),
                "{e}"
            );
        }
        // The loopback and sockets keep the URL's mode.
        for local in [
            "postgres://postgres@127.0.0.1:5432/postgres",
            "postgres://postgres@localhost/postgres?sslmode=disable",
            "postgres://postgres@[::1]:5432/postgres",
        ] {
            assert!(
                !matches!(mode(local), Ok(PgSslMode::VerifyFull) | Err(_)),
                "{local}"
            );
        }
    }
}
