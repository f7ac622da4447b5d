//! What the invoice service does with order events.
//!
//! Order events on a standard queue may arrive in any order, so the rules
//! (in `crate::usecases`) are written for every arrival order:
//! - `OrderPlaced` issues exactly one invoice per order (`issue_invoice`),
//!   unless a cancellation for the order arrived first: then none is issued.
//! - `OrderCancelled` voids the issued invoice and emits `InvoiceVoided`; if no
//!   invoice exists yet it records the cancellation, so that a late
//!   `OrderPlaced` issues nothing (`void_invoice`).
//!
//! This module maps each event to its use case, and the use case's error to
//! the consumer's `HandlerError`: an event that can never be written is
//! rejected, a database error retried (or, when the database does not answer,
//! receiving paused).

use contracts::events::{Event, ReceivedEvent};
use platform::consumer::{Handler, HandlerError};
use sqlx::PgConnection;

use crate::usecases::{self, InvoicingError};

pub struct OrderEvents;

impl Handler for OrderEvents {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let correlation_id = &event.correlation_id;
        let handled = match &event.event {
            Event::OrderPlaced(placed) => usecases::issue_invoice(tx, placed, correlation_id)
                .await
                .map(|_| ()),
            Event::OrderCancelled(cancelled) => {
                usecases::void_invoice(tx, cancelled, correlation_id)
                    .await
                    .map(|_| ())
            }
            Event::InvoiceIssued(_) | Event::InvoiceVoided(_) => {
                return Err(HandlerError::Reject(
                    "the invoice service consumes order events, not invoice events".into(),
                ));
            }
        };
        handled.map_err(handler_error)
    }
}

fn handler_error(e: InvoicingError) -> HandlerError {
    match e {
        InvoicingError::Unpublishable(e) => HandlerError::Reject(e.to_string()),
        InvoicingError::Database(e) => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use platform::outbox::OutboxError;

    use super::*;

    #[test]
    fn a_database_that_does_not_answer_pauses_receiving_and_other_errors_retry_or_reject() {
        assert!(matches!(
            handler_error(InvoicingError::Database(sqlx::Error::PoolTimedOut)),
            HandlerError::Unavailable(_)
        ));
        assert!(matches!(
            handler_error(InvoicingError::Database(sqlx::Error::RowNotFound)),
            HandlerError::Retry(_)
        ));
        let too_large = OutboxError::TooLarge {
            event_type: "InvoiceIssued".into(),
            size: 300_000,
        };
        let reason = too_large.to_string();
        assert!(matches!(
            handler_error(InvoicingError::Unpublishable(too_large)),
            HandlerError::Reject(r) if r == reason
        ));
    }
}
