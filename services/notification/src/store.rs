//! The notifications table.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::Notification;

/// A stored notification as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct NotificationView {
    pub notification_id: Uuid,
    /// The event it tells of: one notification per event.
    pub event_id: Uuid,
    /// The event's type, such as `OrderPlaced`.
    #[schema(example = "OrderPlaced")]
    pub event_type: String,
    pub order_id: Uuid,
    /// What it tells: `order-received`, `order-cancelled`, `invoice-issued`
    /// or `invoice-voided`.
    #[schema(example = "order-received")]
    pub kind: String,
    /// How it was sent: `log` or `webhook`.
    #[schema(example = "log")]
    pub channel: String,
    /// Whom it was sent to (`customer:<id>`).
    #[schema(example = "customer:alice")]
    pub recipient: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Records a notification as sent; `false` if one exists for the event already.
pub async fn record_sent(
    conn: &mut PgConnection,
    n: &Notification,
    channel: &str,
) -> Result<bool, sqlx::Error> {
    // clock_timestamp(), not now() (the column default): now() is the start
    // of the inbox transaction, when the event arrived, not when it was recorded.
    let done = sqlx::query(
        "INSERT INTO notifications (id, event_id, event_type, order_id, kind, channel, recipient, message, created_at, sent_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, clock_timestamp(), clock_timestamp()) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(n.id)
    .bind(n.event_id)
    .bind(n.event_type)
    .bind(n.order_id)
    .bind(n.kind)
    .bind(channel)
    .bind(&n.recipient)
    .bind(&n.message)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn by_order(pool: &PgPool, order_id: Uuid) -> Result<Vec<NotificationView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id AS notification_id, event_id, event_type, order_id, kind, channel, recipient, message, created_at, sent_at \
         FROM notifications WHERE order_id = $1 ORDER BY created_at, id",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await
}
