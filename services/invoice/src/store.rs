//! The invoice service's tables, in SQL and nothing else. Which statements
//! make up one change, in which transaction, and which event it emits is
//! decided in `crate::usecases`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::InvoiceStatus;

/// An invoice as the API shows it: one per order, for the order's total.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Invoice {
    pub invoice_id: Uuid,
    pub order_id: Uuid,
    pub customer_id: String,
    /// The ISO 4217 currency of the order.
    #[schema(example = "EUR")]
    pub currency: String,
    /// The invoiced amount, in the currency's minor unit: an integer.
    #[schema(minimum = 0)]
    pub total_minor: i64,
    #[sqlx(try_from = "String")]
    #[schema(value_type = InvoiceStatus)]
    pub status: StatusColumn,
    pub issued_at: DateTime<Utc>,
    pub voided_at: Option<DateTime<Utc>>,
}

/// The status column, parsed when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct StatusColumn(pub InvoiceStatus);

impl TryFrom<String> for StatusColumn {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        InvoiceStatus::parse(&s)
            .map(StatusColumn)
            .ok_or_else(|| format!("unknown invoice status {s}"))
    }
}

macro_rules! select_invoice {
    ($condition:literal) => {
        concat!(
            "SELECT id AS invoice_id, order_id, customer_id, currency, total_minor, status, issued_at, voided_at ",
            "FROM invoices ",
            $condition
        )
    };
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<Invoice>, sqlx::Error> {
    sqlx::query_as(select_invoice!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn by_order(pool: &PgPool, order_id: Uuid) -> Result<Vec<Invoice>, sqlx::Error> {
    sqlx::query_as(select_invoice!("WHERE order_id = $1 ORDER BY issued_at"))
        .bind(order_id)
        .fetch_all(pool)
        .await
}

/// Serialises the handling of one order's events until the transaction ends.
pub async fn lock_order(conn: &mut PgConnection, order_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))")
        .bind(order_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The order's invoice, locked for update.
pub async fn for_order_locked(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<Invoice>, sqlx::Error> {
    sqlx::query_as(select_invoice!("WHERE order_id = $1 FOR UPDATE"))
        .bind(order_id)
        .fetch_optional(conn)
        .await
}

/// Inserts an issued invoice; `false` if the order already has one.
pub async fn insert_issued(
    conn: &mut PgConnection,
    invoice_id: Uuid,
    order_id: Uuid,
    customer_id: &str,
    currency: &str,
    total_minor: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO invoices (id, order_id, customer_id, currency, total_minor, status) \
         VALUES ($1, $2, $3, $4, $5, 'ISSUED') ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(invoice_id)
    .bind(order_id)
    .bind(customer_id)
    .bind(currency)
    .bind(total_minor)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn void(conn: &mut PgConnection, invoice_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE invoices SET status = 'VOIDED', voided_at = now() WHERE id = $1")
        .bind(invoice_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records that the order was cancelled before any invoice existed.
pub async fn record_cancellation(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO order_cancellations (order_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(order_id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn was_cancelled(conn: &mut PgConnection, order_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM order_cancellations WHERE order_id = $1)")
        .bind(order_id)
        .fetch_one(conn)
        .await
}
