//! Postgres connection and migrations.
//!
//! Each service owns its database. Two sets of migrations are embedded and
//! applied at start: the outbox and inbox tables every service has (in this
//! crate, versions below 1000) and the service's own tables (versions from
//! 1000 up). Both sets share sqlx's migration table; each ignores the other's
//! versions.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::PgPoolOptions;

/// Connects lazily: the service starts and reports "not ready" while its
/// database is down, instead of crashing.
pub fn pool(
    url: &SecretString,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .connect_lazy(url.expose_secret())
}

/// Whether `e` says the database cannot be reached (down, restarting, refusing
/// connections) rather than that a statement failed: work that needs it must
/// wait for it, not count the failure against a message. A pool exhausted
/// under load also times out; the consumer then pauses only until its probe
/// gets a connection, which a busy but healthy database gives at once.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed => true,
        // Class 08: connection exception; 57P01-57P03: admin or crash
        // shutdown, cannot connect now (starting up or shutting down).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

/// Applies the shared migrations, then the service's own.
pub async fn migrate(pool: &PgPool, mut service: Migrator) -> Result<(), MigrateError> {
    let mut shared = sqlx::migrate!("./migrations");
    shared.set_ignore_missing(true);
    shared.run(pool).await?;
    service.set_ignore_missing(true);
    service.run(pool).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_that_does_not_answer_is_unavailable_and_a_failed_statement_is_not() {
        assert!(is_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(is_unavailable(&sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused
        ))));
        assert!(!is_unavailable(&sqlx::Error::RowNotFound));
        assert!(!is_unavailable(&sqlx::Error::Protocol("bad".into())));
    }
}
