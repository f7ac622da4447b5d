//! The relay: moves committed outbox rows to the broker.
//!
//! One step (`publish_once`) claims a batch with `FOR UPDATE SKIP LOCKED`,
//! publishes it in one call, marks the entries that succeeded and schedules the
//! ones that failed for a later attempt, all before the claiming transaction
//! commits. The loop (`run`) repeats the step while there is work, and
//! otherwise sleeps until Postgres NOTIFYs a commit on the outbox or the
//! fallback poll interval passes. While the broker is unreachable it backs off
//! exponentially with jitter, up to a cap; nothing is lost, the rows wait.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use super::publisher::{PublishError, Publisher};
use super::store;
use crate::config::RelaySettings;
use crate::failpoints;

/// The channel the outbox trigger notifies on commit.
pub const CHANNEL: &str = "outbox";

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("outbox database: {0}")]
    Database(#[from] sqlx::Error),
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
    #[tracing::instrument(name = "relay.publish", skip_all, fields(destination = self.publisher.destination()), err)]
    pub async fn publish_once(&self) -> Result<Published, RelayError> {
        let mut tx = self.pool.begin().await?;
        let batch = store::claim(
            &mut tx,
            self.settings.batch_size,
            self.publisher.keeps_order(),
        )
        .await?;
        if batch.is_empty() {
            tx.rollback().await?;
            return Ok(Published::default());
        }
        // A crash here: the rows were committed by their producers and are
        // only locked; the lock dies with the connection and they are claimed
        // again.
        failpoints::crash_point(failpoints::RELAY_BEFORE_PUBLISH);
        // On a publish error the transaction rolls back: the rows stay
        // unpublished and unlocked, ready for the next attempt.
        let outcomes = self.publisher.publish(&batch).await?;
        // A crash here: published but not marked, so published again after a
        // restart: at least once, and the consumers' inboxes absorb it.
        failpoints::crash_point(failpoints::RELAY_AFTER_PUBLISH);
        let mut done = Vec::with_capacity(batch.len());
        let mut result = Published::default();
        for (message, outcome) in batch.iter().zip(outcomes) {
            match outcome {
                Ok(()) => done.push(message.id),
                Err(reason) => {
                    result.failed += 1;
                    let retry_in = entry_retry_delay(message.attempts);
                    tracing::warn!(event_id = %message.id, %reason, ?retry_in, "entry refused by the broker");
                    store::mark_failed(&mut tx, message.id, &reason, retry_in).await?;
                }
            }
        }
        result.published = done.len();
        store::mark_published(&mut tx, &done).await?;
        tx.commit().await?;
        tracing::debug!(
            published = result.published,
            failed = result.failed,
            "batch relayed"
        );
        Ok(result)
    }

    /// Runs until `shutdown` is cancelled; the batch in progress is finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut listener = match self.settings.listen {
            true => self.listen().await,
            false => None,
        };
        let mut backoff = new_backoff();
        let mut last_prune = tokio::time::Instant::now();
        while !shutdown.is_cancelled() {
            let wait = match self.publish_once().await {
                Ok(step) => {
                    backoff = new_backoff();
                    if step.claimed() as u32 >= self.settings.batch_size {
                        continue;
                    }
                    None
                }
                Err(e) => {
                    let delay = backoff.next().unwrap_or(MAX_BACKOFF);
                    tracing::warn!(error = %e, retry_in = ?delay, "relay step failed; backing off");
                    Some(delay)
                }
            };
            if last_prune.elapsed() >= PRUNE_EVERY {
                last_prune = tokio::time::Instant::now();
                self.prune().await;
            }
            match wait {
                Some(delay) => {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
                None => self.wait_for_work(&mut listener, &shutdown).await,
            }
        }
        tracing::info!("relay stopped");
    }

    async fn listen(&self) -> Option<PgListener> {
        let mut listener = match PgListener::connect_with(&self.pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for outbox commits; polling only until restart");
                return None;
            }
        };
        match listener.listen(CHANNEL).await {
            Ok(()) => Some(listener),
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for outbox commits; polling only until restart");
                None
            }
        }
    }

    /// Sleeps until a commit is notified, the poll interval passes or shutdown.
    async fn wait_for_work(&self, listener: &mut Option<PgListener>, shutdown: &CancellationToken) {
        let poll = tokio::time::sleep(self.settings.poll_interval);
        match listener {
            Some(l) => {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = poll => {}
                    received = l.recv() => {
                        if let Err(e) = received {
                            // The listener reconnects on the next recv; meanwhile
                            // the poll interval keeps the relay going.
                            tracing::debug!(error = %e, "outbox listener interrupted");
                            tokio::select! {
                                _ = shutdown.cancelled() => {}
                                _ = tokio::time::sleep(self.settings.poll_interval) => {}
                            }
                        }
                    }
                }
            }
            None => {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = poll => {}
                }
            }
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

const MAX_BACKOFF: Duration = Duration::from_secs(30);
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Exponential backoff with jitter for whole-step failures, capped.
fn new_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(MAX_BACKOFF)
        .with_jitter()
        .without_max_times()
        .build()
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
