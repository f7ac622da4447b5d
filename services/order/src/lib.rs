//! The order service: takes orders over HTTP and announces them.
//!
//! The layers, from the edge in:
//! - `api`: the HTTP edge (`POST /orders`, `GET /orders/{id}`, cancel): parses
//!   requests into domain types, calls a use case, answers problem+json.
//! - `handlers`: the edge for messages: invoice events from the
//!   `order-invoices` queue, each handed to its use case.
//! - `usecases`: one function per thing the service does; each decides the
//!   state change and the events it emits, and writes both in one
//!   transaction (events into the outbox, which the shared relay publishes to
//!   the `orders` SNS topic).
//! - `domain`: what a valid order is, parsed once from the request.
//! - `store`: the orders table, in SQL only.
//! - `invoicing`: the default asynchronous invoicing, and the synchronous call
//!   to the invoice service kept as the anti-pattern to measure; the
//!   `place_order` use case picks.
//! - `openapi`: the API's OpenAPI description (`docs/openapi/order.json`).
//! - `startup`: settings, and building and running the service on the shared `Application`.
//! - `benchmark`: the documented entry the benchmark measures the order
//!   transaction through.

pub mod api;
pub mod benchmark;
pub mod domain;
pub mod handlers;
pub mod invoicing;
pub mod openapi;
pub mod startup;
pub mod store;
pub mod usecases;
