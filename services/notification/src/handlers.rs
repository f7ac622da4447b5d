//! One notification per event, from both the order and the invoice chains.
//!
//! The notification row is written in the inbox transaction, and the sender is
//! called before that transaction commits: if sending fails nothing is
//! recorded, and the event is retried (a transient failure) or sent to the DLQ
//! with the reason (a refusal). A crash between a successful send and the
//! commit sends again on redelivery, so delivery to the customer is at least
//! once while the record is exactly once; the webhook sender passes the event
//! id as its idempotency key so the receiver can drop the repeat.

use std::sync::Arc;

use contracts::events::ReceivedEvent;
use platform::consumer::{Handler, HandlerError};
use sqlx::PgConnection;

use crate::domain::Notification;
use crate::sender::{SendError, Sender};
use crate::store;

pub struct Notify<S> {
    pub sender: Arc<S>,
}

impl<S: Sender> Handler for Notify<S> {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let notification = Notification::for_event(event);
        if !store::record_sent(tx, &notification, self.sender.channel()).await? {
            tracing::info!("a notification for this event exists already");
            return Ok(());
        }
        self.sender.send(&notification).await.map_err(|e| match e {
            SendError::Transient(_) => HandlerError::Retry(e.to_string()),
            SendError::Permanent(_) => HandlerError::Reject(e.to_string()),
        })
    }
}
