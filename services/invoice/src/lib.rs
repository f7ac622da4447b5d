//! The invoice service: turns orders into invoices.
//!
//! - `handlers`: consumes `invoice-orders`; issues exactly one invoice per
//!   order and voids it when the order is cancelled, whatever the arrival order.
//! - `domain`: the invoicing rules (totals in integer minor units).
//! - `store`: the invoices table; issuing and voiding write `InvoiceIssued` and
//!   `InvoiceVoided` to the outbox, which the shared relay puts on the
//!   `billing` EventBridge bus.
//! - `api`: read-only HTTP views.
//! - `startup`: settings, and building and running the service on the shared `Application`.

pub mod api;
pub mod domain;
pub mod handlers;
pub mod startup;
pub mod store;
