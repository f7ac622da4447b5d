//! The order service: takes orders over HTTP and announces them.
//!
//! The story, in modules:
//! - `domain`: what a valid order is, parsed once from the request.
//! - `api`: the HTTP edge (`POST /orders`, `GET /orders/{id}`, cancel).
//! - `store`: the orders table; every change writes its event to the outbox in
//!   the same transaction, and the shared relay publishes it to the `orders`
//!   SNS topic.
//! - `handlers`: invoice events from the `order-invoices` queue move orders to
//!   `INVOICED`.
//! - `invoicing`: the default asynchronous invoicing, and the synchronous call
//!   to the invoice service kept as the anti-pattern to measure.
//! - `startup`: settings, and building and running the service on the shared `Application`.

pub mod api;
pub mod domain;
pub mod handlers;
pub mod invoicing;
pub mod startup;
pub mod store;
