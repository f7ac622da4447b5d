//! One notification per event, from both the order and the invoice chains.
//!
//! The notification row is written in the inbox transaction, and the sender is
//! called before that transaction commits: if sending fails the event is
//! retried, and nothing is recorded. A crash between a successful send and the
//! commit sends again on redelivery, so delivery to the customer is at least
//! once while the record is exactly once; a channel with idempotency keys can
//! use the notification's event id as its key.

use std::sync::Arc;

use shared::consumer::{Handler, HandlerError};
use shared::events::ReceivedEvent;
use sqlx::PgConnection;

use crate::domain::Notification;
use crate::sender::Sender;
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
        self.sender
            .send(&notification)
            .await
            .map_err(|e| HandlerError::Retry(e.to_string()))
    }
}
