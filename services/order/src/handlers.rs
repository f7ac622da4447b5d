//! What the order service does with the invoice events it consumes.

use shared::consumer::{Handler, HandlerError};
use shared::events::{Event, ReceivedEvent};
use sqlx::PgConnection;

use crate::store;

/// Moves orders to `INVOICED` and records voided invoices.
pub struct InvoiceEvents;

impl Handler for InvoiceEvents {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let found = match &event.event {
            Event::InvoiceIssued(e) => {
                store::record_invoice(tx, e.order_id, e.invoice_id, e.total_minor.value()).await?
            }
            Event::InvoiceVoided(e) => {
                store::record_invoice_voided(tx, e.order_id, e.invoice_id).await?
            }
            other => {
                return Err(HandlerError::Reject(format!(
                    "{:?} is not for the order service",
                    other.event_type()
                )));
            }
        };
        if found {
            Ok(())
        } else {
            // The order commits before its event is published, so an unknown
            // order means a database restored to an older state: retry, and
            // let the DLQ hold the event if it never appears.
            Err(HandlerError::Retry(format!(
                "order {} is not known here",
                event.event.order_id()
            )))
        }
    }
}
