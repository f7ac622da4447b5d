//! What the order service does with the invoice events it consumes.
//!
//! Invoice events arrive on a standard queue, in any order, so each rule holds
//! whatever came first:
//! - `InvoiceIssued` moves a `PLACED` order to `INVOICED` and leaves any other
//!   status alone: an order cancelled meanwhile stays `CANCELLED` (the invoice
//!   service voids the invoice when the cancellation reaches it).
//! - `InvoiceVoided` only sets `invoice_voided_at`, never clears it, so an
//!   `InvoiceIssued` that arrives after the void does not un-void the invoice.
//! - An event about an order not known here is retried, not dropped: the order
//!   commits before its event is published, so this only happens after a
//!   restore, and the DLQ holds it if the order never appears.

use contracts::events::{Event, ReceivedEvent};
use platform::consumer::{Handler, HandlerError};
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
