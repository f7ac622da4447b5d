//! The inbox transaction: the handler's effect and the event's inbox row
//! commit together, or neither does.
//!
//! A second delivery of an event finds its id in the inbox and changes
//! nothing; the transaction is rolled back and the duplicate counted. The two
//! fail points sit in the windows the crash tests aim at: while the handler
//! runs (a delay), and after the commit before the delete (a crash).

use sqlx::PgPool;

use super::{Handler, HandlerError};
use crate::{failpoints, inbox};
use contracts::events::ReceivedEvent;

/// Whether the event was applied now or had been before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Applied {
    Now,
    Before,
}

/// Applies `event`, received on `queue`, through `handler` in one transaction.
pub(super) async fn apply<H: Handler>(
    pool: &PgPool,
    handler: &H,
    event: &ReceivedEvent,
    queue: &str,
) -> Result<Applied, HandlerError> {
    let mut tx = pool.begin().await?;
    if !inbox::record(&mut tx, event, queue).await? {
        tx.rollback().await?;
        // Only a statistic: failing to count is no reason to redeliver.
        if let Err(e) = async {
            let mut conn = pool.acquire().await?;
            inbox::count_duplicate(&mut conn, event.id).await
        }
        .await
        {
            tracing::warn!(error = %e, "cannot count the duplicate");
        }
        return Ok(Applied::Before);
    }
    failpoints::delay_point(failpoints::CONSUMER_HANDLE).await;
    handler.handle(event, &mut tx).await?;
    tx.commit().await?;
    // A crash here: applied but not deleted. The message comes back after
    // its visibility timeout and the inbox turns it into a duplicate.
    failpoints::crash_point(failpoints::CONSUMER_AFTER_COMMIT);
    Ok(Applied::Now)
}
