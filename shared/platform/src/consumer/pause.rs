//! Waiting for the service's database instead of receiving.
//!
//! When the database does not answer, every message received could only fail,
//! and each failure uses up one of its receives until the redrive policy parks
//! it in the DLQ. So after a batch in which the database failed, the consumer
//! stops receiving and probes the database until it answers.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// How long one probe may take before it counts as no answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How often a long pause says why it goes on.
const REMIND_EVERY: Duration = Duration::from_secs(30);

/// Waits until `pool`'s database answers, probing it with backoff (capped,
/// for as long as it takes). `false` when shutdown came first.
pub(super) async fn wait_for_database(
    pool: &PgPool,
    queue: &str,
    shutdown: &CancellationToken,
) -> bool {
    tracing::warn!(
        queue,
        "database unavailable; receiving paused until it answers"
    );
    let mut backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build();
    let paused = tokio::time::Instant::now();
    let mut last_said = paused;
    loop {
        let probe = tokio::time::timeout(PROBE_TIMEOUT, sqlx::query("SELECT 1").execute(pool));
        let why = match probe.await {
            Ok(Ok(_)) => {
                tracing::info!(queue, paused_for = ?paused.elapsed(), "database answers; receiving again");
                return true;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer within 2 s".to_string(),
        };
        // Say why now and then: a database that is up but refuses this
        // service (a rotated password) keeps it paused too.
        if last_said.elapsed() >= REMIND_EVERY {
            last_said = tokio::time::Instant::now();
            tracing::warn!(queue, error = %why, paused_for = ?paused.elapsed(), "still waiting for the database");
        }
        let delay = backoff.next().unwrap_or(Duration::from_secs(5));
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}
