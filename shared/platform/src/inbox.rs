//! The inbox: exactly-once effects on top of at-least-once delivery.
//!
//! The consumer records the event id here in the same transaction as the
//! handler's effect. A second delivery of the same event (a redelivery after a
//! crash, a redrive from the DLQ, an archive replay, a duplicate publish) finds
//! the id already present, and the consumer acknowledges it without running the
//! handler again. The key is the producer's event id from the envelope: broker
//! message ids change on redrive and replay.

use sqlx::PgConnection;
use uuid::Uuid;

use contracts::events::ReceivedEvent;

/// Records `event` as applied; `false` when it already was (a duplicate).
#[tracing::instrument(
    name = "inbox.record",
    skip_all,
    fields(
        otel.name = "INSERT inbox",
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = "INSERT",
        db.collection.name = "inbox",
    ),
    err
)]
pub async fn record(
    conn: &mut PgConnection,
    event: &ReceivedEvent,
    queue: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO inbox (event_id, event_type, source, queue) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event.id)
    .bind(event.event.event_type().as_str())
    .bind(&event.source)
    .bind(queue)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Counts one more arrival of an event that was already applied. Runs on its
/// own, outside the rolled-back inbox transaction, so the count survives.
pub async fn count_duplicate(conn: &mut PgConnection, event_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE inbox SET duplicates = duplicates + 1, last_duplicate_at = now() \
         WHERE event_id = $1",
    )
    .bind(event_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether `event_id` was applied.
pub async fn contains(conn: &mut PgConnection, event_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM inbox WHERE event_id = $1)")
        .bind(event_id)
        .fetch_one(conn)
        .await
}
