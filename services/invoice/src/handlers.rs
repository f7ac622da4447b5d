//! What the invoice service does with order events.
//!
//! Order events on a standard queue may arrive in any order, so the rules are
//! written for every arrival order:
//! - `OrderPlaced` issues exactly one invoice per order (the unique key on
//!   `order_id` holds even against a duplicate that slipped past the inbox),
//!   unless a cancellation for the order arrived first: then none is issued.
//! - `OrderCancelled` voids the issued invoice and emits `InvoiceVoided`; if no
//!   invoice exists yet it records the cancellation, so that a late
//!   `OrderPlaced` issues nothing.
//!
//! Both also run at the same time, on two poll tasks: each first takes a
//! transaction-scoped advisory lock on the order id, so one sees what the
//! other committed. Without it, under READ COMMITTED, neither sees the other's
//! uncommitted row and a cancelled order keeps an issued invoice.
//!
//! `issue` is also what the synchronous `POST /invoices` runs (see `api`), so
//! an order invoiced over HTTP is not invoiced again when its `OrderPlaced`
//! arrives.

use contracts::events::{
    Envelope, Event, InvoiceIssued, InvoiceVoided, OrderCancelled, OrderPlaced, ReceivedEvent,
};
use contracts::topology::Service;
use platform::consumer::{Handler, HandlerError};
use platform::outbox::{self, OutboxError};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::InvoiceStatus;
use crate::store;

pub struct OrderEvents;

impl Handler for OrderEvents {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        store::lock_order(tx, event.event.order_id()).await?;
        match &event.event {
            Event::OrderPlaced(placed) => {
                issue(tx, placed, &event.correlation_id).await.map(|_| ())
            }
            Event::OrderCancelled(cancelled) => cancel(tx, cancelled, &event.correlation_id).await,
            other => Err(HandlerError::Reject(format!(
                "{:?} is not for the invoice service",
                other.event_type()
            ))),
        }
    }
}

/// What `issue` found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issued {
    /// A new invoice, with its `InvoiceIssued` event in the outbox.
    New(Uuid),
    /// The order already had an invoice; nothing changed.
    AlreadyInvoiced,
    /// The order was cancelled before it was invoiced; none is issued.
    Cancelled,
}

/// Issues the order's one invoice, unless it has one or was cancelled.
/// The caller holds the order's lock (`store::lock_order`) in `tx`.
pub async fn issue(
    tx: &mut PgConnection,
    placed: &OrderPlaced,
    correlation_id: &str,
) -> Result<Issued, HandlerError> {
    if store::was_cancelled(tx, placed.order_id).await? {
        tracing::info!("order was cancelled before it was invoiced; no invoice issued");
        return Ok(Issued::Cancelled);
    }
    let total = placed.total_minor;
    let invoice_id = Uuid::now_v7();
    let inserted = store::insert_issued(
        tx,
        invoice_id,
        placed.order_id,
        &placed.customer_id,
        placed.currency.code(),
        total.value(),
    )
    .await?;
    if !inserted {
        tracing::info!("order already has an invoice");
        return Ok(Issued::AlreadyInvoiced);
    }
    let event = Event::InvoiceIssued(InvoiceIssued {
        invoice_id,
        order_id: placed.order_id,
        customer_id: placed.customer_id.clone(),
        total_minor: total,
        currency: placed.currency,
    });
    emit(tx, &event, correlation_id).await?;
    tracing::info!(%invoice_id, total_minor = total.value(), "invoice issued");
    Ok(Issued::New(invoice_id))
}

async fn cancel(
    tx: &mut PgConnection,
    cancelled: &OrderCancelled,
    correlation_id: &str,
) -> Result<(), HandlerError> {
    match store::for_order_locked(tx, cancelled.order_id).await? {
        None => {
            store::record_cancellation(tx, cancelled.order_id).await?;
            tracing::info!("cancellation recorded before any invoice");
        }
        Some(invoice) if invoice.status.0 == InvoiceStatus::Voided => {
            tracing::info!(invoice_id = %invoice.invoice_id, "invoice already voided");
        }
        Some(invoice) => {
            store::void(tx, invoice.invoice_id).await?;
            let event = Event::InvoiceVoided(InvoiceVoided {
                invoice_id: invoice.invoice_id,
                order_id: cancelled.order_id,
                customer_id: cancelled.customer_id.clone(),
            });
            emit(tx, &event, correlation_id).await?;
            tracing::info!(invoice_id = %invoice.invoice_id, "invoice voided");
        }
    }
    Ok(())
}

async fn emit(
    tx: &mut PgConnection,
    event: &Event,
    correlation_id: &str,
) -> Result<(), HandlerError> {
    outbox::enqueue(tx, &Envelope::new(Service::Invoice, event, correlation_id))
        .await
        .map_err(|e| match e {
            OutboxError::TooLarge { .. } | OutboxError::Attributes { .. } => {
                HandlerError::Reject(e.to_string())
            }
            OutboxError::Database(db) => HandlerError::from(db),
        })
}
