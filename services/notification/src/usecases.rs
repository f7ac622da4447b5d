//! What the notification service does, one function per use case.
//!
//! - `notify`: one notification per event, recorded and sent.
//! - `notifications_of_order`: the read behind `GET /notifications`.
//!
//! The service is the end of both chains: it emits no events, so a use case
//! here is the record in `crate::store` (SQL only) and the call to the
//! `crate::sender`. The message handler (`crate::handlers`) and the route
//! (`crate::api`) only translate the errors here into a `HandlerError` or a
//! problem+json answer.

use contracts::events::ReceivedEvent;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::Notification;
use crate::sender::{SendError, Sender};
use crate::store::{self, NotificationView};

/// What `notify` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notified {
    /// Recorded and sent.
    Sent,
    /// A notification for this event exists already; nothing was sent.
    AlreadyNotified,
}

/// Why a notification was not recorded and sent. Nothing was recorded.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Send(#[from] SendError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Records the notification `event` calls for and sends it through `sender`,
/// in the caller's transaction, which must commit only if this succeeds.
///
/// The row is written before the send, so a second notification for one
/// event finds it and sends nothing; if sending fails the caller rolls back
/// and nothing is recorded. A crash between a successful send and the commit
/// sends again on redelivery: delivery to the customer is at least once while
/// the record is exactly once; the webhook sender passes the event id as its
/// idempotency key so the receiver can drop the repeat.
pub async fn notify<S: Sender>(
    conn: &mut PgConnection,
    sender: &S,
    event: &ReceivedEvent,
) -> Result<Notified, NotifyError> {
    let notification = Notification::for_event(event);
    if !store::record_sent(conn, &notification, sender.channel()).await? {
        tracing::debug!("a notification for this event exists already");
        return Ok(Notified::AlreadyNotified);
    }
    sender.send(&notification).await?;
    Ok(Notified::Sent)
}

/// Why notifications could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The notifications sent about the order, oldest first.
pub async fn notifications_of_order(
    pool: &PgPool,
    order_id: Uuid,
) -> Result<Vec<NotificationView>, ReadError> {
    Ok(store::by_order(pool, order_id).await?)
}
