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
pub fn pool(url: &SecretString, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(url.expose_secret())
}

/// Applies the shared migrations, then the service's own.
pub async fn migrate(pool: &PgPool, mut service: Migrator) -> Result<(), MigrateError> {
    let mut shared = sqlx::migrate!("./migrations");
    shared.set_ignore_missing(true);
    shared.run(pool).await?;
    service.set_ignore_missing(true);
    service.run(pool).await
}
