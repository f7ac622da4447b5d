//! The relay: moves committed outbox rows to the broker.
//!
//! One step (`publish_once`) claims a batch with `FOR UPDATE SKIP LOCKED`,
//! publishes it in one call, marks the entries that succeeded and schedules the
//! ones that failed for a later attempt, all before the claiming transaction
//! commits. The loop (`run`) claims batches one after the other and publishes
//! each on a task of its own, so up to `RELAY_MAX_IN_FLIGHT` publish calls
//! wait on the broker at once: a broker round trip of 20 ms caps one call at
//! a time to ten events per 20 ms (500/s), N calls to N times that. When the
//! outbox is drained the loop sleeps until Postgres NOTIFYs a commit (see
//! `wakeup`) or the fallback poll interval passes; `pacing` decides when to claim (and when to
//! linger for a fuller batch). While the broker is unreachable it backs off
//! exponentially with jitter, up to a cap; nothing is lost, the rows wait.
//!
//! Each batch keeps its claiming transaction open across the broker call, so
//! a crash anywhere loses nothing: until the commit the rows are only locked,
//! and the lock dies with the connection. The price is one pooled connection
//! per batch in flight, which the configuration checks against
//! `DATABASE_MAX_CONNECTIONS`. A lease (a `claimed_until` column, committed
//! before the call) would free the connection but add a write per batch and a
//! window where a slow call's lease runs out and another batch publishes the
//! same rows again. The open transaction does not cap the throughput: each
//! batch in flight has its own, so N of them move N batches per round trip
//! until the pool or the broker is the limit; there is no lease. Batches in
//! flight together hold disjoint rows (`SKIP LOCKED`), and on a FIFO topic an
//! order's next event is claimable only once its previous one is committed as
//! published (see `store::claim`), so concurrency never reorders an order's
//! events.
//!
//! Tracing: a batch carries events of different requests, so each event gets
//! a `publish <destination>` span of its own whose parent is the context
//! stored with its row (the request or handler that wrote it), and the
//! message leaves with that span's context; the batch's `send` span links to
//! them. An empty poll makes no span at all.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use opentelemetry::trace::TraceContextExt;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::pacing::{Next, Pacer};
use super::publisher::{PublishError, Publisher};
use super::store::{self, OutboxMessage};
use super::wakeup::CommitWakeups;
use crate::config::RelaySettings;
use crate::failpoints;
use crate::metrics::{self, DestinationLabels};
use crate::telemetry::propagation::{self, AttributeCarrier, EnvelopeCarrier};
use contracts::events::Envelope;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("outbox database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("publish task: {0}")]
    Task(String),
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Published {
    pub published: usize,
    pub failed: usize,
}

impl Published {
    pub fn claimed(&self) -> usize {
        self.published + self.failed
    }
}

/// A batch claimed and not yet published: its rows are locked by `tx`.
pub struct Claimed {
    tx: Transaction<'static, Postgres>,
    batch: Vec<OutboxMessage>,
}

impl Claimed {
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }
}

pub struct Relay<P> {
    pool: PgPool,
    publisher: P,
    settings: RelaySettings,
}

impl<P: Publisher> Relay<P> {
    pub fn new(pool: PgPool, publisher: P, settings: RelaySettings) -> Self {
        Relay {
            pool,
            publisher,
            settings,
        }
    }

    /// Claims one batch, publishes it and records each entry's outcome.
    pub async fn publish_once(&self) -> Result<Published, RelayError> {
        match self.claim().await? {
            Some(claimed) => self.publish_claimed(claimed).await,
            None => Ok(Published::default()),
        }
    }

    /// Claims a batch: its rows stay locked by the returned transaction until
    /// it is published. `None` when no row is due.
    pub async fn claim(&self) -> Result<Option<Claimed>, RelayError> {
        let mut tx = self.pool.begin().await?;
        let batch = store::claim(
            &mut tx,
            self.settings.batch_size,
            self.publisher.keeps_order(),
        )
        .await?;
        if batch.is_empty() {
            tx.rollback().await?;
            return Ok(None);
        }
        Ok(Some(Claimed { tx, batch }))
    }

    /// Publishes a claimed batch, records each entry's outcome and commits.
    pub async fn publish_claimed(&self, claimed: Claimed) -> Result<Published, RelayError> {
        let Claimed { tx, batch } = claimed;
        let span = tracing::info_span!(
            "relay.batch",
            otel.name = format!("send {}", self.publisher.destination_name()),
            otel.kind = "client",
            messaging.system = self.publisher.messaging_system(),
            messaging.destination.name = self.publisher.destination_name(),
            messaging.operation.type = "send",
            messaging.operation.name = "send",
            messaging.batch.message_count = batch.len(),
            otel.status_description = Empty,
        );
        self.publish_batch(tx, batch)
            .instrument(span.clone())
            .await
            .inspect_err(|e| {
                span.record("otel.status_description", e.to_string());
            })
    }

    async fn publish_batch(
        &self,
        mut tx: Transaction<'static, Postgres>,
        mut batch: Vec<OutboxMessage>,
    ) -> Result<Published, RelayError> {
        let spans: Vec<tracing::Span> = batch.iter_mut().map(|m| self.message_span(m)).collect();
        let labels = DestinationLabels {
            destination: self.publisher.destination_name().to_string(),
        };
        let metrics = &metrics::get().outbox;
        metrics
            .batch_size
            .get_or_create(&labels)
            .observe(batch.len() as f64);
        // A crash here: the rows were committed by their producers and are
        // only locked; the lock dies with the connection and they are claimed
        // again.
        failpoints::crash_point(failpoints::RELAY_BEFORE_PUBLISH);
        // On a publish error the transaction rolls back: the rows stay
        // unpublished and unlocked, ready for the next attempt.
        let started = Instant::now();
        let outcomes = self.publisher.publish(&batch).await;
        metrics
            .publish_duration
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        let outcomes = outcomes.inspect_err(|e| {
            metrics
                .failed
                .get_or_create(&labels)
                .inc_by(batch.len() as u64);
            for span in &spans {
                span.record("otel.status_description", e.to_string());
            }
        })?;
        // A crash here: published but not marked, so published again after a
        // restart: at least once, and the consumers' inboxes absorb it.
        failpoints::crash_point(failpoints::RELAY_AFTER_PUBLISH);
        let mut done = Vec::with_capacity(batch.len());
        let mut result = Published::default();
        for ((message, outcome), span) in batch.iter().zip(outcomes).zip(&spans) {
            match outcome {
                Ok(message_id) => {
                    if let Some(id) = message_id {
                        span.record("messaging.message.id", id);
                    }
                    done.push(message.id);
                }
                Err(reason) => {
                    result.failed += 1;
                    span.record("otel.status_description", &reason);
                    let retry_in = entry_retry_delay(message.attempts);
                    tracing::warn!(parent: span, %reason, ?retry_in, "entry refused by the broker");
                    store::mark_failed(&mut tx, message.id, &reason, retry_in).await?;
                }
            }
        }
        result.published = done.len();
        store::mark_published(&mut tx, &done).await?;
        tx.commit().await?;
        metrics
            .published
            .get_or_create(&labels)
            .inc_by(result.published as u64);
        metrics
            .failed
            .get_or_create(&labels)
            .inc_by(result.failed as u64);
        tracing::debug!(
            published = result.published,
            failed = result.failed,
            "batch relayed"
        );
        Ok(result)
    }

    /// The publish span of one event, a child of the context stored with its
    /// row. The message leaves with this span's context instead, in its
    /// attributes and its envelope (which EventBridge delivers as `detail`),
    /// so the consumer's span is the publish span's child. A row stored
    /// without a context is published without one: adding it here would make
    /// the message larger than `enqueue` measured.
    fn message_span(&self, message: &mut OutboxMessage) -> tracing::Span {
        let destination = self.publisher.destination_name();
        let span = tracing::info_span!(
            "relay.publish",
            otel.name = format!("publish {destination}"),
            otel.kind = "producer",
            otel.status_description = Empty,
            messaging.system = self.publisher.messaging_system(),
            messaging.destination.name = destination,
            messaging.operation.type = "send",
            messaging.operation.name = "publish",
            messaging.message.id = Empty,
            event_id = %message.id,
            event_type = %message.event_type,
            order_id = %message.subject,
        );
        let stored = propagation::extract(&AttributeCarrier(&mut message.attributes.0));
        if !propagation::has_span(&stored) {
            return span;
        }
        propagation::set_parent(&span, stored);
        let cx = span.context();
        if propagation::has_span(&cx) {
            AttributeCarrier(&mut message.attributes.0).replace(&cx);
            match serde_json::from_str::<Envelope>(&message.payload) {
                Ok(mut envelope) => {
                    EnvelopeCarrier(&mut envelope).replace(&cx);
                    if let Ok(payload) = serde_json::to_string(&envelope) {
                        message.payload = payload;
                    }
                }
                Err(e) => {
                    tracing::warn!(parent: &span, error = %e, "outbox payload is not an envelope; its trace context is left as stored")
                }
            }
            tracing::Span::current().add_link(cx.span().span_context().clone());
        }
        span
    }

    /// Runs until `shutdown` is cancelled; the batches in flight are
    /// finished first. Claims are made here, one after the other; each
    /// claimed batch is published on a task of its own, up to
    /// `max_in_flight` at once (see `pacing`).
    pub async fn run(self, shutdown: CancellationToken) {
        let relay = Arc::new(self);
        let settings = relay.settings.clone();
        let stop_listening = shutdown.child_token();
        let wakeups = settings
            .listen
            .then(|| CommitWakeups::spawn(relay.pool.clone(), stop_listening.clone()));
        let mut pacer = Pacer::new(
            settings.max_in_flight,
            settings.batch_size,
            settings.linger,
            settings.poll_interval,
            Instant::now(),
        );
        let mut in_flight: JoinSet<Result<Published, RelayError>> = JoinSet::new();
        let mut backoff = new_backoff();
        let mut last_prune = Instant::now();
        while !shutdown.is_cancelled() {
            while let Some(done) = in_flight.try_join_next() {
                relay.finished(done, &mut pacer, &mut backoff);
            }
            match pacer.next(Instant::now()) {
                Next::Claim => match relay.claim().await {
                    Ok(claimed) => {
                        pacer.claimed(claimed.as_ref().map_or(0, Claimed::len), Instant::now());
                        if let Some(claimed) = claimed {
                            let relay = relay.clone();
                            in_flight.spawn(async move { relay.publish_claimed(claimed).await });
                        }
                    }
                    Err(e) => relay.failed(&e, false, &mut pacer, &mut backoff),
                },
                Next::Wait(until) => {
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                            relay.finished(done, &mut pacer, &mut backoff);
                        }
                        _ = next_commit(wakeups.as_ref()) => pacer.notified(),
                        _ = sleep_until(until) => {}
                    }
                }
            }
            if last_prune.elapsed() >= PRUNE_EVERY {
                last_prune = Instant::now();
                relay.prune().await;
            }
        }
        while let Some(done) = in_flight.join_next().await {
            relay.finished(done, &mut pacer, &mut backoff);
        }
        stop_listening.cancel();
        if let Some(wakeups) = wakeups {
            wakeups.stopped().await;
        }
        tracing::info!("relay stopped");
    }

    /// Records how a batch in flight ended.
    fn finished(
        &self,
        done: Result<Result<Published, RelayError>, JoinError>,
        pacer: &mut Pacer,
        backoff: &mut Backoff,
    ) {
        match done {
            Ok(Ok(_)) => {
                pacer.published();
                *backoff = new_backoff();
            }
            Ok(Err(e)) => self.failed(&e, true, pacer, backoff),
            Err(e) => {
                // A panic in a publish task: its transaction rolled back, so
                // the rows wait unpublished; treat it as a failed step.
                let e = RelayError::Task(e.to_string());
                self.failed(&e, true, pacer, backoff)
            }
        }
    }

    fn failed(&self, e: &RelayError, in_flight: bool, pacer: &mut Pacer, backoff: &mut Backoff) {
        let now = Instant::now();
        if pacer.failed(in_flight, now) {
            let delay = backoff.next().unwrap_or(MAX_BACKOFF);
            tracing::warn!(error = %e, retry_in = ?delay, "relay step failed; backing off");
            pacer.back_off(delay, now);
        } else {
            tracing::debug!(error = %e, "relay step failed while backing off");
        }
    }

    async fn prune(&self) {
        let result = async {
            let mut conn = self.pool.acquire().await?;
            store::prune(&mut conn, self.settings.retention, 1000).await
        }
        .await;
        match result {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "pruned published outbox rows"),
            Err(e) => tracing::warn!(error = %e, "outbox prune failed"),
        }
    }
}

/// Waits for a commit's wake-up, or forever without a listener.
async fn next_commit(wakeups: Option<&CommitWakeups>) {
    match wakeups {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

type Backoff = Box<dyn Iterator<Item = Duration> + Send>;

/// The cap of the whole-step backoff. Short, because the backoff is also
/// how long the relay may sit idle after the broker is back: with a 30 s cap
/// a two-minute broker restart's outbox waited 11.6 s more, with 5 s 2.5 s
/// (`emulator-restart`, docs/emulators.md). Against a broker that stays down
/// it costs one failing call every 5–10 s (the jitter adds up to the delay
/// again): nothing.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Exponential backoff with jitter for whole-step failures, capped.
fn new_backoff() -> Backoff {
    Box::new(
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(MAX_BACKOFF)
            .with_jitter()
            .without_max_times()
            .build(),
    )
}

/// When a single refused entry is tried again: doubles per attempt, capped.
fn entry_retry_delay(attempts: i32) -> Duration {
    let exp = attempts.clamp(0, 8) as u32;
    Duration::from_millis(500 * 2u64.pow(exp)).min(Duration::from_secs(120))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_grows_and_stays_under_its_cap() {
        let delays: Vec<Duration> = new_backoff().take(20).collect();
        assert!(delays.iter().all(|d| *d <= MAX_BACKOFF * 2), "{delays:?}");
        assert!(delays[10] > delays[0], "{delays:?}");
    }

    #[test]
    fn a_refused_entry_waits_longer_each_time_up_to_two_minutes() {
        assert_eq!(entry_retry_delay(0), Duration::from_millis(500));
        assert_eq!(entry_retry_delay(1), Duration::from_secs(1));
        assert_eq!(entry_retry_delay(50), Duration::from_secs(120));
    }
}
