//! SQL on the outbox table.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::events::Envelope;

/// The largest envelope we accept: SNS messages and EventBridge entries are
/// limited to 256 KiB, attributes included, so we keep a margin for them.
pub const MAX_ENVELOPE_BYTES: usize = 240 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(
        "event {event_type} is {size} bytes, over the {MAX_ENVELOPE_BYTES}-byte limit of a message"
    )]
    TooLarge { event_type: String, size: usize },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Writes `envelope` into the outbox on the caller's transaction. Refuses an
/// event too large for the broker before anything is written.
pub async fn enqueue(conn: &mut PgConnection, envelope: &Envelope) -> Result<(), OutboxError> {
    let payload = serde_json::to_value(envelope).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let size = payload.to_string().len();
    if size > MAX_ENVELOPE_BYTES {
        return Err(OutboxError::TooLarge {
            event_type: envelope.event_type.clone(),
            size,
        });
    }
    sqlx::query("INSERT INTO outbox (id, event_type, payload, created_at) VALUES ($1, $2, $3, $4)")
        .bind(envelope.id)
        .bind(&envelope.event_type)
        .bind(payload)
        .bind(envelope.time)
        .execute(conn)
        .await?;
    Ok(())
}

/// A row claimed for publishing.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxMessage {
    pub id: Uuid,
    pub event_type: String,
    /// The envelope as JSON text.
    pub payload: String,
    pub created_at: DateTime<Utc>,
    pub attempts: i32,
}

/// Locks up to `limit` unpublished rows that are due, oldest first. Rows locked
/// by another relay are skipped, so replicas share the work without overlap.
pub async fn claim(
    tx: &mut Transaction<'_, Postgres>,
    limit: u32,
) -> Result<Vec<OutboxMessage>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, event_type, payload::text AS payload, created_at, attempts FROM outbox \
         WHERE published_at IS NULL AND next_attempt_at <= now() \
         ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(i64::from(limit))
    .fetch_all(&mut **tx)
    .await
}

pub async fn mark_published(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query("UPDATE outbox SET published_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = ANY($1)")
        .bind(ids)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records a failed attempt for one row and when to try it again.
pub async fn mark_failed(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    error: &str,
    retry_in: std::time::Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE outbox SET attempts = attempts + 1, last_error = $2, \
         next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .bind(retry_in.as_secs_f64())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Deletes up to `limit` rows published longer ago than `retention`; returns how many.
pub async fn prune(
    conn: &mut PgConnection,
    retention: std::time::Duration,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
         WHERE published_at < now() - make_interval(secs => $1) LIMIT $2)",
    )
    .bind(retention.as_secs_f64())
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// How many rows wait to be published: the backlog operators watch.
pub async fn backlog(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(conn)
        .await
}
