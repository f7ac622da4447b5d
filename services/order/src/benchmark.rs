//! The documented entry for measuring the order transaction from outside the
//! service: the benchmark's Postgres ceiling (`tools/bench`) calls these and
//! nothing else of this crate.
//!
//! `place_order` runs exactly what `POST /orders` runs once the request is
//! parsed: `crate::usecases::place_order` in the default asynchronous
//! invoicing mode, without an idempotency key, so the order row and its
//! `OrderPlaced` outbox row commit in one transaction (the outbox's NOTIFY
//! trigger included). It takes the public JSON body, so a benchmark depends on
//! the API's contract rather than on the service's types; parsing it costs
//! microseconds against the transaction's milliseconds.

use serde::Deserialize;
use sqlx::PgPool;
use sqlx::migrate::MigrateError;
use uuid::Uuid;

use crate::domain::{NewOrder, PlaceOrderRequest};
use crate::invoicing::Invoicing;
use crate::usecases::{self, PlaceOrderError};

/// Why a benchmark call failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchmarkError {
    #[error("not a `POST /orders` body: {0}")]
    Body(#[from] serde_json::Error),
    #[error("the order is not valid: {0}")]
    Invalid(String),
    #[error(transparent)]
    Place(#[from] PlaceOrderError),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
}

/// Creates the order service's tables (and the shared outbox and inbox) in
/// the database behind `pool`, as the service does at start.
pub async fn migrate(pool: &PgPool) -> Result<(), BenchmarkError> {
    platform::db::migrate(pool, sqlx::migrate!("./migrations")).await?;
    Ok(())
}

/// Places the order `request` (a `POST /orders` body) through the same use
/// case and transaction as the HTTP route; returns the new order's id.
pub async fn place_order(
    pool: &PgPool,
    request: &serde_json::Value,
) -> Result<Uuid, BenchmarkError> {
    let request = PlaceOrderRequest::deserialize(request)?;
    let order = NewOrder::try_from(request).map_err(|errors| {
        BenchmarkError::Invalid(
            errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.problem))
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let placed = usecases::place_order(pool, &Invoicing::Async, &order, None).await?;
    Ok(placed.order_id())
}
