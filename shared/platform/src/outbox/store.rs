//! SQL on the outbox table.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use super::limits::{
    LimitError, MAX_MESSAGE_BYTES, MessageAttributes, eventbridge_entry_size, message_size,
};
use crate::telemetry::propagation::{self, EnvelopeCarrier, TRACEPARENT, TRACESTATE};
use contracts::events::Envelope;
use contracts::topology::EVENT_TYPE_ATTRIBUTE;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(
        "event {event_type} would be a {size}-byte message, over the {MAX_MESSAGE_BYTES}-byte limit of SNS, SQS and EventBridge"
    )]
    TooLarge { event_type: String, size: usize },
    #[error("event {event_type} cannot be published: {source}")]
    Attributes {
        event_type: String,
        #[source]
        source: LimitError,
    },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The attributes an event is published with: its type, which subscription
/// filter policies match on, and the trace context the envelope carries.
pub fn attributes_of(envelope: &Envelope) -> Result<MessageAttributes, LimitError> {
    let mut attributes = MessageAttributes::default();
    attributes.insert(EVENT_TYPE_ATTRIBUTE, &envelope.event_type)?;
    for (name, value) in [
        (TRACEPARENT, &envelope.traceparent),
        (TRACESTATE, &envelope.tracestate),
    ] {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            attributes.insert(name, value)?;
        }
    }
    Ok(attributes)
}

/// Writes `envelope` into the outbox on the caller's transaction. Refuses,
/// before anything is written, an event that the broker would refuse or drop:
/// over 256 KiB as an SNS message or an EventBridge entry, or with attributes
/// SQS cannot carry.
///
/// The trace context current here (the request's or the handler's span) is
/// written into the envelope and the attributes, so the relay publishes the
/// event as a child of the work that produced it; the relay then swaps in its
/// own span's context, of the same size, so the size checked here holds.
pub async fn enqueue(conn: &mut PgConnection, envelope: &Envelope) -> Result<(), OutboxError> {
    let cx = propagation::current();
    let mut envelope = envelope.clone();
    if propagation::has_span(&cx) {
        EnvelopeCarrier(&mut envelope).replace(&cx);
    }
    let envelope = &envelope;
    let payload = serde_json::to_string(envelope).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let attributes = attributes_of(envelope).map_err(|source| OutboxError::Attributes {
        event_type: envelope.event_type.clone(),
        source,
    })?;
    let size = message_size(&payload, &attributes).max(eventbridge_entry_size(
        &envelope.source,
        &envelope.event_type,
        &payload,
    ));
    if size > MAX_MESSAGE_BYTES {
        return Err(OutboxError::TooLarge {
            event_type: envelope.event_type.clone(),
            size,
        });
    }
    insert(conn, envelope, payload, &attributes).await?;
    Ok(())
}

#[tracing::instrument(
    name = "outbox.insert",
    skip_all,
    fields(
        otel.name = "INSERT outbox",
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = "INSERT",
        db.collection.name = "outbox",
        event_id = %envelope.id,
        event_type = %envelope.event_type,
    ),
    err
)]
async fn insert(
    conn: &mut PgConnection,
    envelope: &Envelope,
    payload: String,
    attributes: &MessageAttributes,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (id, event_type, payload, attributes, created_at) \
         VALUES ($1, $2, $3::jsonb, $4, $5)",
    )
    .bind(envelope.id)
    .bind(&envelope.event_type)
    .bind(payload)
    .bind(Json(attributes))
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
    pub attributes: Json<MessageAttributes>,
    /// The envelope's subject: the order the event is about.
    pub subject: String,
    pub created_at: DateTime<Utc>,
    pub attempts: i32,
}

/// The claimed columns, followed by a literal condition (static SQL only).
macro_rules! claim_rows {
    ($condition:literal) => {
        concat!(
            "SELECT id, event_type, payload::text AS payload, attributes, ",
            "coalesce(payload->>'subject', '') AS subject, created_at, attempts FROM outbox o ",
            "WHERE published_at IS NULL AND next_attempt_at <= now() ",
            $condition,
            " ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED"
        )
    };
}

/// Locks up to `limit` unpublished rows that are due, oldest first. Rows locked
/// by another claim are skipped, so relays (and the batches one relay has in
/// flight at once) share the work without overlap.
///
/// With `in_subject_order` (a FIFO topic), a row is claimed only when it is
/// its order's *head*: no older row about the same order is still
/// unpublished, whether it waits for a retry, sits in this claim's own
/// candidates, or is locked by another claim whose publish is in flight.
/// Each batch then holds at most one event per order, and an order's next
/// event can only be claimed by a claim whose snapshot already shows the
/// previous one committed as published, which the relay does only after
/// the broker accepted it. So concurrent claims never publish a later event
/// of an order before an earlier one, whatever the number of batches in
/// flight or of relays. (Under READ COMMITTED, a claim whose snapshot
/// predates that commit still sees the older row unpublished and leaves the
/// newer one; the older row itself is then either locked, and skipped, or
/// re-checked after the commit and found published.) Rows are ordered by
/// `created_at` and then by id (a UUID v7), so two events of one order
/// written in the same instant still have an order.
///
/// Without it (the standard chain, which promises no order) every due row is
/// a candidate: a row waiting for a retry or locked by another batch holds
/// back nothing else.
pub async fn claim(
    tx: &mut Transaction<'_, Postgres>,
    limit: u32,
    in_subject_order: bool,
) -> Result<Vec<OutboxMessage>, sqlx::Error> {
    let sql = if in_subject_order {
        claim_rows!(
            "AND NOT EXISTS (SELECT 1 FROM outbox older WHERE older.published_at IS NULL \
             AND older.payload->>'subject' = o.payload->>'subject' \
             AND (older.created_at, older.id) < (o.created_at, o.id))"
        )
    } else {
        claim_rows!("")
    };
    let mut rows: Vec<OutboxMessage> = sqlx::query_as(sql)
        .bind(i64::from(limit))
        .fetch_all(&mut **tx)
        .await?;
    // Postgres prints jsonb with a space after every ':' and ',': publish the
    // compact form instead, the one whose size `enqueue` checked.
    for row in &mut rows {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&row.payload) {
            row.payload = value.to_string();
        }
    }
    Ok(rows)
}

pub async fn mark_published(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    // clock_timestamp(), not now(): now() is the start of the relay's
    // transaction, before the claim and the broker call; this statement runs
    // once the broker has answered, which is when the event was published.
    sqlx::query("UPDATE outbox SET published_at = clock_timestamp(), attempts = attempts + 1, last_error = NULL WHERE id = ANY($1)")
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

/// The backlog and the age of its oldest row (zero when there is none), for
/// the metrics.
pub async fn backlog_and_oldest_age(
    conn: &mut PgConnection,
) -> Result<(i64, std::time::Duration), sqlx::Error> {
    let (backlog, age): (i64, f64) = sqlx::query_as(
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 \
         FROM outbox WHERE published_at IS NULL",
    )
    .fetch_one(conn)
    .await?;
    // `created_at` is the producer's clock: never report a negative age.
    Ok((
        backlog,
        std::time::Duration::try_from_secs_f64(age).unwrap_or_default(),
    ))
}
