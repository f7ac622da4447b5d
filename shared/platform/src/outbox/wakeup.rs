//! Wakes the relay when a producer commits an outbox row.
//!
//! The outbox trigger NOTIFYs `outbox` on every commit. One task owns the
//! LISTEN session and turns each notification into a wake-up on a [`Notify`];
//! the relay's loop waits on that, a future it may drop at any moment (it
//! does, whenever a batch finishes or a timer fires). It must not wait on
//! `PgListener::recv` itself: while the session reconnects, `recv` is opening
//! a pooled connection, and dropping it there throws that connection away.
//! A relay that did so while its database restarted opened and dropped
//! connections in a tight loop and kept every other user of its pool waiting
//! (the `invoice-db-down` chaos experiment failed on it).
//!
//! When the session is lost (the database restarts), the task reconnects with
//! capped exponential backoff and wakes the relay once connected, since
//! commits made meanwhile notified no one; until then the relay's poll
//! interval keeps rows moving.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The channel the outbox trigger notifies on commit.
pub const CHANNEL: &str = "outbox";

/// The longest wait between two attempts to listen again.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// Commit wake-ups, fed by a task of their own until `stop`.
pub struct CommitWakeups {
    notify: Arc<Notify>,
    task: JoinHandle<()>,
}

impl CommitWakeups {
    /// Starts listening on `pool`'s database.
    pub fn spawn(pool: PgPool, stop: CancellationToken) -> Self {
        let notify = Arc::new(Notify::new());
        let task = tokio::spawn(listen(pool, notify.clone(), stop));
        CommitWakeups { notify, task }
    }

    /// Completes at the next commit (or at once if one came since the last
    /// wait). Safe to drop at any time.
    pub async fn next(&self) {
        self.notify.notified().await;
    }

    /// Waits for the task, which ends once `stop` is cancelled.
    pub async fn stopped(self) {
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "outbox listener task failed");
        }
    }
}

async fn listen(pool: PgPool, notify: Arc<Notify>, stop: CancellationToken) {
    let mut backoff = new_backoff();
    loop {
        let session = tokio::select! {
            _ = stop.cancelled() => return,
            session = listen_once(&pool, &notify, &mut backoff) => session,
        };
        let delay = backoff.next().unwrap_or(MAX_RETRY_DELAY);
        match session {
            Ok(()) => {
                tracing::info!(retry_in = ?delay, "outbox listener lost its connection; the relay polls meanwhile")
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "cannot LISTEN for outbox commits; the relay polls meanwhile")
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// One LISTEN session: `Ok` when its connection was lost.
async fn listen_once(
    pool: &PgPool,
    notify: &Notify,
    backoff: &mut Backoff,
) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // Reconnecting is this task's job, with its backoff.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    *backoff = new_backoff();
    // Commits made while no one listened woke no one.
    notify.notify_one();
    while listener.try_recv().await?.is_some() {
        notify.notify_one();
    }
    Ok(())
}

type Backoff = Box<dyn Iterator<Item = Duration> + Send>;

fn new_backoff() -> Backoff {
    Box::new(
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(MAX_RETRY_DELAY)
            .with_jitter()
            .without_max_times()
            .build(),
    )
}
