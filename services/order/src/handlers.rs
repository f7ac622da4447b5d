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
//!
//! The rules are `crate::usecases`' `record_invoice_*`; this module maps
//! events to them and their errors to the consumer's `HandlerError`.

use contracts::events::{Event, ReceivedEvent};
use platform::consumer::{Handler, HandlerError};
use sqlx::PgConnection;

use crate::usecases::{self, RecordInvoiceError};

/// Moves orders to `INVOICED` and records voided invoices.
pub struct InvoiceEvents;

impl Handler for InvoiceEvents {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let recorded = match &event.event {
            Event::InvoiceIssued(issued) => usecases::record_invoice_issued(tx, issued).await,
            Event::InvoiceVoided(voided) => usecases::record_invoice_voided(tx, voided).await,
            Event::OrderPlaced(_) | Event::OrderCancelled(_) => {
                return Err(HandlerError::Reject(
                    "the order service consumes invoice events, not order events".into(),
                ));
            }
        };
        recorded.map_err(|e| match e {
            // The order commits before its event is published, so an unknown
            // order means a database restored to an older state: retry, and
            // let the DLQ hold the event if it never appears.
            e @ RecordInvoiceError::UnknownOrder(_) => HandlerError::Retry(e.to_string()),
            RecordInvoiceError::Database(e) => e.into(),
        })
    }
}
