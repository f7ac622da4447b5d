//! The order service's tables, in SQL and nothing else.
//!
//! Each function runs its statements on the connection or pool it is given;
//! which statements make up one change, in which transaction, and which event
//! it emits is decided in `crate::usecases`.

use chrono::{DateTime, Utc};
use contracts::events::OrderLine;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{IdempotencyKey, NewOrder, OrderStatus};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("stored order {0} is corrupt: {1}")]
    Corrupt(Uuid, String),
}

/// An order as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrderView {
    pub order_id: Uuid,
    /// The customer: the subject of the token that placed it.
    pub customer_id: String,
    pub status: OrderStatus,
    /// The ISO 4217 currency of every line and of the total.
    #[schema(example = "EUR")]
    pub currency: String,
    /// What the order costs, in the currency's minor unit: an integer.
    #[schema(minimum = 0)]
    pub total_minor: i64,
    pub lines: Vec<OrderLine>,
    /// The order's invoice, once the invoice service has issued it.
    pub invoice: Option<InvoiceSummary>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The invoice of an order, as the order service learnt it from events.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InvoiceSummary {
    pub invoice_id: Uuid,
    /// The invoiced amount, in the currency's minor unit: an integer.
    #[schema(minimum = 0)]
    pub total_minor: i64,
    /// `true` once the invoice was voided (the order was cancelled).
    pub voided: bool,
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    customer_id: String,
    status: String,
    currency: String,
    total_minor: i64,
    lines: serde_json::Value,
    invoice_id: Option<Uuid>,
    invoice_total_minor: Option<i64>,
    invoice_voided_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<OrderRow> for OrderView {
    type Error = StoreError;

    fn try_from(r: OrderRow) -> Result<Self, StoreError> {
        let status = OrderStatus::parse(&r.status)
            .ok_or_else(|| StoreError::Corrupt(r.id, format!("status {}", r.status)))?;
        let lines = serde_json::from_value(r.lines)
            .map_err(|e| StoreError::Corrupt(r.id, e.to_string()))?;
        let invoice = r.invoice_id.map(|invoice_id| InvoiceSummary {
            invoice_id,
            total_minor: r.invoice_total_minor.unwrap_or_default(),
            voided: r.invoice_voided_at.is_some(),
        });
        Ok(OrderView {
            order_id: r.id,
            customer_id: r.customer_id,
            status,
            currency: r.currency,
            total_minor: r.total_minor,
            lines,
            invoice,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// The order columns, followed by a literal condition (static SQL only).
macro_rules! select_order {
    ($condition:literal) => {
        concat!(
            "SELECT id, customer_id, status, currency, total_minor, lines, invoice_id, ",
            "invoice_total_minor, invoice_voided_at, created_at, updated_at FROM orders ",
            $condition
        )
    };
}

/// Whose an idempotency key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyClaim {
    /// The key was free and now belongs to the new order.
    Claimed,
    /// The key was used before, for `order_id`; `same_request` says whether
    /// with the same request.
    UsedBefore { order_id: Uuid, same_request: bool },
}

/// Claims `customer`'s `key` for `order_id`. A second claim of one key by
/// one customer waits for the first's transaction to commit (the primary key
/// serialises them), then sees the key used; another customer's key of the
/// same name is another key.
pub async fn claim_idempotency_key(
    conn: &mut PgConnection,
    customer: &str,
    key: &IdempotencyKey,
    request: &serde_json::Value,
    order_id: Uuid,
) -> Result<KeyClaim, sqlx::Error> {
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (customer_id, key, request, order_id) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (customer_id, key) DO NOTHING",
    )
    .bind(customer)
    .bind(key.as_str())
    .bind(request)
    .bind(order_id)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if claimed {
        return Ok(KeyClaim::Claimed);
    }
    let (same_request, order_id): (bool, Uuid) = sqlx::query_as(
        "SELECT request = $3, order_id FROM idempotency_keys \
             WHERE customer_id = $1 AND key = $2",
    )
    .bind(customer)
    .bind(key.as_str())
    .bind(request)
    .fetch_one(conn)
    .await?;
    Ok(KeyClaim::UsedBefore {
        order_id,
        same_request,
    })
}

/// Inserts a new order as `PLACED`.
pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    order: &NewOrder,
    correlation_id: &str,
) -> Result<(), StoreError> {
    let lines =
        serde_json::to_value(&order.lines).map_err(|e| StoreError::Corrupt(id, e.to_string()))?;
    sqlx::query(
        "INSERT INTO orders (id, customer_id, currency, total_minor, lines, status, correlation_id) \
         VALUES ($1, $2, $3, $4, $5, 'PLACED', $6)",
    )
    .bind(id)
    .bind(order.customer_id.as_str())
    .bind(order.currency.code())
    .bind(order.total.value())
    .bind(lines)
    .bind(correlation_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<OrderView>, StoreError> {
    let row: Option<OrderRow> = sqlx::query_as(select_order!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.map(OrderView::try_from).transpose()
}

/// The order, locked for update until the transaction ends.
pub async fn get_for_update(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<OrderView>, StoreError> {
    let row: Option<OrderRow> = sqlx::query_as(select_order!("WHERE id = $1 FOR UPDATE"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(OrderView::try_from).transpose()
}

/// The correlation id the order's events carry.
pub async fn correlation_id(conn: &mut PgConnection, id: Uuid) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT correlation_id FROM orders WHERE id = $1")
        .bind(id)
        .fetch_one(conn)
        .await
}

/// Sets the order `CANCELLED`.
pub async fn set_cancelled(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET status = 'CANCELLED', updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The order as the given connection sees it; an error when it does not exist.
pub async fn reread(conn: &mut PgConnection, id: Uuid) -> Result<OrderView, StoreError> {
    let row: OrderRow = sqlx::query_as(select_order!("WHERE id = $1"))
        .bind(id)
        .fetch_one(conn)
        .await?;
    OrderView::try_from(row)
}

/// Records an issued invoice. A placed order becomes `INVOICED`; a cancelled
/// one stays cancelled (the invoice service voids the invoice). Returns false
/// when the order does not exist.
pub async fn record_invoice(
    conn: &mut PgConnection,
    order_id: Uuid,
    invoice_id: Uuid,
    total_minor: i64,
) -> Result<bool, sqlx::Error> {
    // clock_timestamp(): now() would be the start of the consumer's inbox
    // transaction, the time the event arrived rather than the order changed.
    let done = sqlx::query(
        "UPDATE orders SET invoice_id = $2, invoice_total_minor = $3, \
         status = CASE WHEN status = 'PLACED' THEN 'INVOICED' ELSE status END, updated_at = clock_timestamp() \
         WHERE id = $1",
    )
    .bind(order_id)
    .bind(invoice_id)
    .bind(total_minor)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records that the order's invoice was voided. Returns false when the order does not exist.
pub async fn record_invoice_voided(
    conn: &mut PgConnection,
    order_id: Uuid,
    invoice_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE orders SET invoice_id = $2, invoice_voided_at = coalesce(invoice_voided_at, now()), updated_at = now() \
         WHERE id = $1",
    )
    .bind(order_id)
    .bind(invoice_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
