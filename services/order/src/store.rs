//! The order service's tables. Every state change that other services must
//! hear about writes its event into the outbox in the same transaction.

use chrono::{DateTime, Utc};
use contracts::events::{Envelope, Event, OrderCancelled, OrderLine};
use contracts::topology::Service;
use platform::outbox::{self, OutboxError};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{IdempotencyKey, NewOrder, OrderStatus};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("cannot encode the request: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("idempotency key already used for order {0} with another request")]
    KeyReused(Uuid),
    #[error("stored order {0} is corrupt: {1}")]
    Corrupt(Uuid, String),
}

/// An order as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct OrderView {
    pub order_id: Uuid,
    pub customer_id: String,
    pub status: OrderStatus,
    pub currency: String,
    pub total_minor: i64,
    pub lines: Vec<OrderLine>,
    pub invoice: Option<InvoiceSummary>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InvoiceSummary {
    pub invoice_id: Uuid,
    pub total_minor: i64,
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

/// What `place` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// A new order, committed with its `OrderPlaced` event.
    New(Uuid),
    /// The idempotency key was used before with the same request: the order
    /// it placed then, and nothing new.
    Replayed(Uuid),
}

impl Placed {
    pub fn order_id(self) -> Uuid {
        match self {
            Placed::New(id) | Placed::Replayed(id) => id,
        }
    }
}

/// The idempotency key and the request it came with, as JSON.
pub struct Idempotency<'a> {
    pub key: &'a IdempotencyKey,
    pub request: serde_json::Value,
}

/// Stores a new order and its `OrderPlaced` event in one transaction.
///
/// With an idempotency key, the key is claimed in the same transaction: a
/// second request with the key waits for the first to commit (the primary key
/// serialises them), then gets the first order back, or `KeyReused` when its
/// body differs.
pub async fn place(
    pool: &PgPool,
    order: &NewOrder,
    idempotency: Option<Idempotency<'_>>,
) -> Result<Placed, StoreError> {
    match prepare(pool, order, idempotency).await? {
        Prepared::New(pending) => Ok(Placed::New(pending.commit().await?)),
        Prepared::Replayed(id) => Ok(Placed::Replayed(id)),
    }
}

/// What `prepare` did.
pub enum Prepared {
    /// The order and its event are written but not committed yet.
    New(PendingOrder),
    /// The idempotency key was used before with the same request.
    Replayed(Uuid),
}

/// A new order written in an open transaction: `commit` makes it real,
/// dropping it rolls it back (no order, no event).
pub struct PendingOrder {
    pub id: Uuid,
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
}

impl PendingOrder {
    pub async fn commit(self) -> Result<Uuid, StoreError> {
        self.tx.commit().await?;
        Ok(self.id)
    }
}

/// `place` up to, not including, the commit: for the synchronous mode, which
/// calls the invoice service in between (see `crate::invoicing`).
pub async fn prepare(
    pool: &PgPool,
    order: &NewOrder,
    idempotency: Option<Idempotency<'_>>,
) -> Result<Prepared, StoreError> {
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    if let Some(idem) = idempotency {
        let claimed = sqlx::query(
            "INSERT INTO idempotency_keys (key, request, order_id) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(idem.key.as_str())
        .bind(&idem.request)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !claimed {
            let (same, first): (bool, Uuid) = sqlx::query_as(
                "SELECT request = $2, order_id FROM idempotency_keys WHERE key = $1",
            )
            .bind(idem.key.as_str())
            .bind(&idem.request)
            .fetch_one(&mut *tx)
            .await?;
            tx.rollback().await?;
            return if same {
                Ok(Prepared::Replayed(first))
            } else {
                Err(StoreError::KeyReused(first))
            };
        }
    }
    let correlation_id = id.to_string();
    let event = Event::OrderPlaced(order.placed(id));
    let envelope = Envelope::new(Service::Order, &event, &correlation_id);
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
    .bind(&correlation_id)
    .execute(&mut *tx)
    .await?;
    outbox::enqueue(&mut tx, &envelope).await?;
    Ok(Prepared::New(PendingOrder { id, tx }))
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<OrderView>, StoreError> {
    let row: Option<OrderRow> = sqlx::query_as(select_order!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.map(OrderView::try_from).transpose()
}

/// Cancels an order and emits `OrderCancelled`, once: cancelling a cancelled
/// order changes nothing and emits nothing. `None` when there is no such order.
pub async fn cancel(pool: &PgPool, id: Uuid) -> Result<Option<OrderView>, StoreError> {
    let mut tx = pool.begin().await?;
    let row: Option<OrderRow> = sqlx::query_as(select_order!("WHERE id = $1 FOR UPDATE"))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let order = OrderView::try_from(row)?;
    if order.status == OrderStatus::Cancelled {
        return Ok(Some(order));
    }
    let correlation_id: String =
        sqlx::query_scalar("SELECT correlation_id FROM orders WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    let event = Event::OrderCancelled(OrderCancelled {
        order_id: id,
        customer_id: order.customer_id.clone(),
    });
    sqlx::query("UPDATE orders SET status = 'CANCELLED', updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    outbox::enqueue(
        &mut tx,
        &Envelope::new(Service::Order, &event, &correlation_id),
    )
    .await?;
    let row: OrderRow = sqlx::query_as(select_order!("WHERE id = $1"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(OrderView::try_from(row)?))
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
