//! What the order service does, one function per use case.
//!
//! Each use case decides a state change and the events it emits in one place,
//! and writes both in one transaction: the order rows through `crate::store`
//! (SQL only), the events into the outbox, which the shared relay publishes.
//! The HTTP routes (`crate::api`) and the message handlers (`crate::handlers`)
//! only translate to and from HTTP and messages; each error enum here says
//! what went wrong in the service's terms, and each edge maps it to its own
//! answer (a problem+json status, or a `HandlerError`).
//!
//! - `place_order`: a new order and its `OrderPlaced`, idempotent under a
//!   key; in the synchronous invoicing mode, only once the invoice service
//!   invoiced it.
//! - `cancel_order`: `CANCELLED` and `OrderCancelled`, once.
//! - `get_order`: the order as the API shows it.
//! - `record_invoice_issued`, `record_invoice_voided`: what the invoice
//!   service's events tell about an order (see `crate::handlers` for the
//!   arrival-order rules).

use contracts::events::{
    Envelope, Event, InvoiceIssued, InvoiceVoided, OrderCancelled, OrderPlaced,
};
use contracts::topology::Service;
use platform::outbox::{self, OutboxError};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{IdempotencyKey, NewOrder, OrderStatus, PlaceOrderRequest};
use crate::invoicing::{Invoicing, InvoicingError};
use crate::store::{self, KeyClaim, OrderView, StoreError};

/// The idempotency key of a request and the request it came with, which a
/// retry must repeat exactly (as a JSON value: key order and spacing do not
/// matter).
#[derive(Debug, Clone)]
pub struct Idempotency {
    /// Whose key it is: keys are scoped per customer.
    customer: String,
    key: IdempotencyKey,
    request: serde_json::Value,
}

impl Idempotency {
    pub fn new(key: IdempotencyKey, request: &PlaceOrderRequest) -> Result<Self, PlaceOrderError> {
        Ok(Idempotency {
            customer: request.customer_id.clone(),
            key,
            request: serde_json::to_value(request).map_err(PlaceOrderError::Encode)?,
        })
    }
}

/// What `place_order` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// A new order, committed with its `OrderPlaced` event.
    New(Uuid),
    /// The idempotency key was used before with the same request: the order
    /// it placed then, and nothing new.
    Replayed(Uuid),
}

impl Placed {
    pub fn order_id(self) -> Uuid {
        match self {
            Placed::New(id) | Placed::Replayed(id) => id,
        }
    }
}

/// Why an order was not placed. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum PlaceOrderError {
    /// The customer's idempotency key was used before with another request
    /// (for this order, which the answer need not name).
    #[error("idempotency key already used for order {0} with another request")]
    KeyReused(Uuid),
    /// The order's `OrderPlaced` would not fit in one message.
    #[error("the order's event would be a {size}-byte message, over the limit")]
    EventTooLarge { size: usize },
    /// Synchronous mode only: the invoice service did not invoice the order.
    #[error(transparent)]
    Invoicing(#[from] InvoicingError),
    #[error("cannot encode the request: {0}")]
    Encode(serde_json::Error),
    #[error(transparent)]
    Outbox(OutboxError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for PlaceOrderError {
    fn from(e: sqlx::Error) -> Self {
        PlaceOrderError::Store(e.into())
    }
}

impl From<OutboxError> for PlaceOrderError {
    fn from(e: OutboxError) -> Self {
        match e {
            OutboxError::TooLarge { size, .. } => PlaceOrderError::EventTooLarge { size },
            OutboxError::Database(e) => e.into(),
            e @ OutboxError::Attributes { .. } => PlaceOrderError::Outbox(e),
        }
    }
}

/// Places `order`: the order and its `OrderPlaced` event commit together.
///
/// With an idempotency key, the key is claimed in the same transaction: a
/// second request with the key waits for the first to commit, then gets the
/// first order back (`Placed::Replayed`, nothing emitted), or `KeyReused` when
/// its request differs.
///
/// With `Invoicing::Sync`, the invoice service is called with the order's
/// `OrderPlaced` before the commit, holding the transaction open (the
/// anti-pattern `crate::invoicing` describes); when it does not invoice the
/// order, the transaction rolls back and nothing is placed.
pub async fn place_order(
    pool: &PgPool,
    invoicing: &Invoicing,
    order: &NewOrder,
    idempotency: Option<&Idempotency>,
) -> Result<Placed, PlaceOrderError> {
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    if let Some(idempotency) = idempotency {
        let claim = store::claim_idempotency_key(
            &mut tx,
            &idempotency.customer,
            &idempotency.key,
            &idempotency.request,
            id,
        )
        .await?;
        if let KeyClaim::UsedBefore {
            order_id,
            same_request,
        } = claim
        {
            tx.rollback().await?;
            return if same_request {
                Ok(Placed::Replayed(order_id))
            } else {
                Err(PlaceOrderError::KeyReused(order_id))
            };
        }
    }
    let placed = OrderPlaced {
        order_id: id,
        customer_id: order.customer_id.as_str().to_string(),
        currency: order.currency,
        lines: order.lines.clone(),
        total_minor: order.total,
    };
    let correlation_id = id.to_string();
    store::insert(&mut tx, id, order, &correlation_id).await?;
    emit(&mut tx, Event::OrderPlaced(placed.clone()), &correlation_id).await?;
    if let Invoicing::Sync(invoices) = invoicing {
        // The anti-pattern: a remote call inside the open transaction. On
        // error `tx` drops and rolls back: no order, no event.
        invoices.invoice(&placed).await?;
    }
    tx.commit().await?;
    Ok(Placed::New(id))
}

/// Why an order was not cancelled. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum CancelOrderError {
    #[error("order {0} not found")]
    NotFound(Uuid),
    /// The order's `OrderCancelled` would not fit in one message.
    #[error("the order's event would be a {size}-byte message, over the limit")]
    EventTooLarge { size: usize },
    #[error(transparent)]
    Outbox(OutboxError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CancelOrderError {
    fn from(e: sqlx::Error) -> Self {
        CancelOrderError::Store(e.into())
    }
}

impl From<OutboxError> for CancelOrderError {
    fn from(e: OutboxError) -> Self {
        match e {
            OutboxError::TooLarge { size, .. } => CancelOrderError::EventTooLarge { size },
            OutboxError::Database(e) => e.into(),
            e @ OutboxError::Attributes { .. } => CancelOrderError::Outbox(e),
        }
    }
}

/// Who may see or change an order.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    /// Only the customer's own orders; another's is not found, exactly as an
    /// unknown one, so that ids cannot be probed.
    Customer(&'a str),
    /// Any order: the service's own work (tests, tools on the database).
    Any,
}

impl Owner<'_> {
    fn owns(&self, order: &OrderView) -> bool {
        match self {
            Owner::Customer(customer) => order.customer_id == *customer,
            Owner::Any => true,
        }
    }
}

/// Cancels the order and emits `OrderCancelled`, once: cancelling a cancelled
/// order changes nothing and emits nothing. Returns the order as it is now.
pub async fn cancel_order(
    pool: &PgPool,
    id: Uuid,
    owner: Owner<'_>,
) -> Result<OrderView, CancelOrderError> {
    let mut tx = pool.begin().await?;
    let order = store::get_for_update(&mut tx, id)
        .await?
        .filter(|order| owner.owns(order))
        .ok_or(CancelOrderError::NotFound(id))?;
    if order.status == OrderStatus::Cancelled {
        return Ok(order);
    }
    let correlation_id = store::correlation_id(&mut tx, id).await?;
    let event = Event::OrderCancelled(OrderCancelled {
        order_id: id,
        customer_id: order.customer_id,
    });
    store::set_cancelled(&mut tx, id).await?;
    emit(&mut tx, event, &correlation_id).await?;
    let cancelled = store::reread(&mut tx, id).await?;
    tx.commit().await?;
    Ok(cancelled)
}

/// Why an order could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum GetOrderError {
    #[error("order {0} not found")]
    NotFound(Uuid),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The order, with its invoice once known.
pub async fn get_order(
    pool: &PgPool,
    id: Uuid,
    owner: Owner<'_>,
) -> Result<OrderView, GetOrderError> {
    store::get(pool, id)
        .await?
        .filter(|order| owner.owns(order))
        .ok_or(GetOrderError::NotFound(id))
}

/// Why an invoice event was not recorded. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum RecordInvoiceError {
    /// The event is about an order this service does not have.
    #[error("order {0} is not known here")]
    UnknownOrder(Uuid),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Records an issued invoice on its order, in the caller's transaction: a
/// `PLACED` order becomes `INVOICED`, any other status stays. Emits nothing.
pub async fn record_invoice_issued(
    conn: &mut PgConnection,
    issued: &InvoiceIssued,
) -> Result<(), RecordInvoiceError> {
    let found = store::record_invoice(
        conn,
        issued.order_id,
        issued.invoice_id,
        issued.total_minor.value(),
    )
    .await?;
    found
        .then_some(())
        .ok_or(RecordInvoiceError::UnknownOrder(issued.order_id))
}

/// Records that the order's invoice was voided, in the caller's transaction;
/// a later `InvoiceIssued` does not un-void it. Emits nothing.
pub async fn record_invoice_voided(
    conn: &mut PgConnection,
    voided: &InvoiceVoided,
) -> Result<(), RecordInvoiceError> {
    let found = store::record_invoice_voided(conn, voided.order_id, voided.invoice_id).await?;
    found
        .then_some(())
        .ok_or(RecordInvoiceError::UnknownOrder(voided.order_id))
}

/// Writes `event` to the outbox on `conn`, as the order service's, under the
/// order's correlation id.
async fn emit(
    conn: &mut PgConnection,
    event: Event,
    correlation_id: &str,
) -> Result<(), OutboxError> {
    outbox::enqueue(conn, &Envelope::new(Service::Order, &event, correlation_id)).await
}
