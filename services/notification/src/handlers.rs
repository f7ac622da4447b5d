//! One notification per event, from both the order and the invoice chains.
//!
//! The handler runs `crate::usecases::notify` in the inbox transaction and
//! maps its errors to the consumer's: if sending fails nothing is recorded,
//! and the event is retried (a transient failure) or sent to the DLQ with the
//! reason (a refusal). Every event type the consumer admits is one the service
//! notifies about, so nothing is matched here.

use std::sync::Arc;

use contracts::events::ReceivedEvent;
use platform::consumer::{Handler, HandlerError};
use sqlx::PgConnection;

use crate::sender::{SendError, Sender};
use crate::usecases::{self, NotifyError};

pub struct Notify<S> {
    pub sender: Arc<S>,
}

impl<S: Sender> Handler for Notify<S> {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        usecases::notify(tx, self.sender.as_ref(), event)
            .await
            .map(|_| ())
            .map_err(handler_error)
    }
}

fn handler_error(e: NotifyError) -> HandlerError {
    match e {
        NotifyError::Send(e @ SendError::Transient(_)) => HandlerError::Retry(e.to_string()),
        NotifyError::Send(e @ SendError::Permanent(_)) => HandlerError::Reject(e.to_string()),
        NotifyError::Database(e) => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transient_failure_retries_a_refusal_rejects_and_a_silent_database_pauses() {
        assert!(matches!(
            handler_error(SendError::Transient("503".into()).into()),
            HandlerError::Retry(r) if r == "notification not sent, will retry: 503"
        ));
        assert!(matches!(
            handler_error(SendError::Permanent("422".into()).into()),
            HandlerError::Reject(r) if r == "notification refused: 422"
        ));
        assert!(matches!(
            handler_error(sqlx::Error::PoolTimedOut.into()),
            HandlerError::Unavailable(_)
        ));
    }
}
