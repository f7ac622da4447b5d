//! What the invoice service does, one function per use case.
//!
//! Each use case decides a state change and the events it emits in one place:
//! the invoice rows through `crate::store` (SQL only), the events into the
//! outbox, which the shared relay puts on the `billing` EventBridge bus. The
//! message handlers (`crate::handlers`) and the HTTP routes (`crate::api`)
//! only translate: each maps the errors here to its own answer (a
//! `HandlerError`, a problem+json status).
//!
//! - `issue_invoice`: an order's one invoice and its `InvoiceIssued`, unless
//!   it has one or was cancelled first.
//! - `void_invoice`: a cancelled order's invoice voided and `InvoiceVoided`,
//!   or the cancellation recorded so that a late `OrderPlaced` issues nothing.
//! - `invoice_now`: `issue_invoice` in a transaction of its own, for the
//!   synchronous `POST /invoices`.
//! - `get_invoice`, `invoices_of_order`: the reads.
//!
//! Order events on a standard queue arrive in any order and, on two poll
//! tasks, at the same time: `issue_invoice` and `void_invoice` each first take
//! a transaction-scoped advisory lock on the order id, so one sees what the
//! other committed. Without it, under READ COMMITTED, neither sees the other's
//! uncommitted row and a cancelled order keeps an issued invoice.

use contracts::events::{
    Envelope, Event, InvoiceIssued, InvoiceVoided, OrderCancelled, OrderPlaced,
};
use contracts::topology::Service;
use platform::outbox::{self, OutboxError};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::InvoiceStatus;
use crate::store::{self, Invoice};

/// Why an invoice was not issued or voided. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum InvoicingError {
    /// The event cannot be written as it is (too large, or attributes the
    /// brokers refuse): trying again will not change that.
    #[error("the event cannot be published: {0}")]
    Unpublishable(OutboxError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<OutboxError> for InvoicingError {
    fn from(e: OutboxError) -> Self {
        match e {
            OutboxError::Database(e) => InvoicingError::Database(e),
            e @ (OutboxError::TooLarge { .. } | OutboxError::Attributes { .. }) => {
                InvoicingError::Unpublishable(e)
            }
        }
    }
}

/// What `issue_invoice` found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issued {
    /// A new invoice, with its `InvoiceIssued` event in the outbox.
    New(Uuid),
    /// The order already had an invoice; nothing changed.
    AlreadyInvoiced,
    /// The order was cancelled before it was invoiced; none is issued.
    Cancelled,
}

/// Issues the order's one invoice, for the total the order service priced,
/// and emits `InvoiceIssued`, in the caller's transaction. Exactly one per
/// order: the unique key on `order_id` holds even against a duplicate that
/// slipped past the inbox. Nothing is issued for an order cancelled first.
pub async fn issue_invoice(
    conn: &mut PgConnection,
    placed: &OrderPlaced,
    correlation_id: &str,
) -> Result<Issued, InvoicingError> {
    store::lock_order(conn, placed.order_id).await?;
    if store::was_cancelled(conn, placed.order_id).await? {
        tracing::debug!("order was cancelled before it was invoiced; no invoice issued");
        return Ok(Issued::Cancelled);
    }
    let total = placed.total_minor;
    let invoice_id = Uuid::now_v7();
    let inserted = store::insert_issued(
        conn,
        invoice_id,
        placed.order_id,
        &placed.customer_id,
        placed.currency.code(),
        total.value(),
    )
    .await?;
    if !inserted {
        tracing::debug!("order already has an invoice");
        return Ok(Issued::AlreadyInvoiced);
    }
    let event = Event::InvoiceIssued(InvoiceIssued {
        invoice_id,
        order_id: placed.order_id,
        customer_id: placed.customer_id.clone(),
        total_minor: total,
        currency: placed.currency,
    });
    emit(conn, &event, correlation_id).await?;
    tracing::debug!(%invoice_id, total_minor = total.value(), "invoice issued");
    Ok(Issued::New(invoice_id))
}

/// What `void_invoice` found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voided {
    /// The invoice was voided, with its `InvoiceVoided` event in the outbox.
    Voided(Uuid),
    /// The invoice was voided before; nothing changed.
    AlreadyVoided(Uuid),
    /// No invoice yet: the cancellation is recorded, so none will be issued.
    BeforeInvoice,
}

/// Voids the cancelled order's invoice and emits `InvoiceVoided`, in the
/// caller's transaction; without an invoice yet, records the cancellation so
/// that a late `OrderPlaced` issues nothing.
pub async fn void_invoice(
    conn: &mut PgConnection,
    cancelled: &OrderCancelled,
    correlation_id: &str,
) -> Result<Voided, InvoicingError> {
    store::lock_order(conn, cancelled.order_id).await?;
    match store::for_order_locked(conn, cancelled.order_id).await? {
        None => {
            store::record_cancellation(conn, cancelled.order_id).await?;
            tracing::debug!("cancellation recorded before any invoice");
            Ok(Voided::BeforeInvoice)
        }
        Some(invoice) if invoice.status.0 == InvoiceStatus::Voided => {
            tracing::debug!(invoice_id = %invoice.invoice_id, "invoice already voided");
            Ok(Voided::AlreadyVoided(invoice.invoice_id))
        }
        Some(invoice) => {
            store::void(conn, invoice.invoice_id).await?;
            let event = Event::InvoiceVoided(InvoiceVoided {
                invoice_id: invoice.invoice_id,
                order_id: cancelled.order_id,
                customer_id: cancelled.customer_id.clone(),
            });
            emit(conn, &event, correlation_id).await?;
            tracing::debug!(invoice_id = %invoice.invoice_id, "invoice voided");
            Ok(Voided::Voided(invoice.invoice_id))
        }
    }
}

/// Why `invoice_now` gave no invoice. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum InvoiceNowError {
    #[error("order {0} was cancelled before it was invoiced")]
    Cancelled(Uuid),
    /// The invoice committed but could not be read back.
    #[error("no invoice found for order {0}")]
    NotFound(Uuid),
    #[error(transparent)]
    Invoicing(#[from] InvoicingError),
}

impl From<sqlx::Error> for InvoiceNowError {
    fn from(e: sqlx::Error) -> Self {
        InvoiceNowError::Invoicing(e.into())
    }
}

/// What `invoice_now` did: the order's invoice, and whether it is new.
#[derive(Debug, Clone)]
pub struct InvoicedNow {
    pub invoice: Invoice,
    pub new: bool,
}

/// Invoices `order` now, in a transaction of its own, with the rules and the
/// lock of `issue_invoice`: so the `OrderPlaced` that arrives later issues
/// nothing more, and a retry gets the invoice made the first time.
pub async fn invoice_now(
    pool: &PgPool,
    order: &OrderPlaced,
) -> Result<InvoicedNow, InvoiceNowError> {
    let mut tx = pool.begin().await?;
    let issued = issue_invoice(&mut tx, order, &order.order_id.to_string()).await?;
    tx.commit().await?;
    let new = match issued {
        Issued::New(_) => true,
        Issued::AlreadyInvoiced => false,
        Issued::Cancelled => return Err(InvoiceNowError::Cancelled(order.order_id)),
    };
    let invoice = store::by_order(pool, order.order_id)
        .await?
        .pop()
        .ok_or(InvoiceNowError::NotFound(order.order_id))?;
    Ok(InvoicedNow { invoice, new })
}

/// Why invoices could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("invoice {0} not found")]
    NotFound(Uuid),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub async fn get_invoice(pool: &PgPool, id: Uuid) -> Result<Invoice, ReadError> {
    store::get(pool, id).await?.ok_or(ReadError::NotFound(id))
}

/// The order's invoices: none, or its one.
pub async fn invoices_of_order(pool: &PgPool, order_id: Uuid) -> Result<Vec<Invoice>, ReadError> {
    Ok(store::by_order(pool, order_id).await?)
}

/// Writes `event` to the outbox on `conn`, as the invoice service's, under the
/// order's correlation id.
async fn emit(
    conn: &mut PgConnection,
    event: &Event,
    correlation_id: &str,
) -> Result<(), OutboxError> {
    outbox::enqueue(
        conn,
        &Envelope::new(Service::Invoice, event, correlation_id),
    )
    .await
}
