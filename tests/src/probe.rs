//! Looking inside the running system: queue depths, inbox and outbox rows.
//! Tests assert on these, not on logs.

use anyhow::Context;
use aws_sdk_sqs::types::QueueAttributeName;
use uuid::Uuid;

/// (visible, in flight) messages of the queue called `name`.
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, name: &str) -> anyhow::Result<(u64, u64)> {
    let url = sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await?
        .queue_url
        .context("url")?;
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?;
    let get = |n: QueueAttributeName| -> u64 {
        attrs
            .attributes()
            .and_then(|a| a.get(&n))
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX)
    };
    Ok((
        get(QueueAttributeName::ApproximateNumberOfMessages),
        get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    ))
}

/// How an event stands in a service's inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxEntry {
    /// Rows for the event id: 1 once applied, never more.
    pub rows: i64,
    /// Arrivals after the first, absorbed without effect.
    pub duplicates: i64,
}

pub async fn inbox_entry(db: &sqlx::PgPool, event_id: Uuid) -> anyhow::Result<InboxEntry> {
    let (rows, duplicates): (i64, i64) = sqlx::query_as(
        "SELECT count(*), coalesce(sum(duplicates), 0)::bigint FROM inbox WHERE event_id = $1",
    )
    .bind(event_id)
    .fetch_one(db)
    .await?;
    Ok(InboxEntry { rows, duplicates })
}

/// The id of the event of `event_type` about `order_id` in a service's outbox,
/// and whether it is marked published.
pub async fn outbox_event(
    db: &sqlx::PgPool,
    event_type: &str,
    order_id: Uuid,
) -> anyhow::Result<Option<(Uuid, bool)>> {
    Ok(sqlx::query_as(
        "SELECT id, published_at IS NOT NULL FROM outbox \
         WHERE event_type = $1 AND payload->>'subject' = $2",
    )
    .bind(event_type)
    .bind(order_id.to_string())
    .fetch_optional(db)
    .await?)
}
