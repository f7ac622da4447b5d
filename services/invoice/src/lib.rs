//! The invoice service: turns orders into invoices.
//!
//! The layers, from the edge in:
//! - `handlers`: the edge for messages: consumes `invoice-orders` and hands
//!   each order event to its use case.
//! - `api`: the HTTP edge: read-only views, and the synchronous
//!   `POST /invoices` kept for the order service's anti-pattern mode.
//! - `usecases`: one function per thing the service does; issuing exactly one
//!   invoice per order and voiding it when the order is cancelled, whatever
//!   the arrival order, each writing its `InvoiceIssued` or `InvoiceVoided`
//!   to the outbox in the same transaction (the shared relay puts them on the
//!   `billing` EventBridge bus).
//! - `domain`: the invoicing rules (totals in integer minor units).
//! - `store`: the invoices table, in SQL only.
//! - `openapi`: the API's OpenAPI description (`docs/openapi/invoice.json`).
//! - `startup`: settings, and building and running the service on the shared `Application`.

pub mod api;
pub mod domain;
pub mod handlers;
pub mod openapi;
pub mod startup;
pub mod store;
pub mod usecases;
