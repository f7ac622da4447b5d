//! The notification service: tells customers what happened to their orders.
//!
//! The layers, from the edge in:
//! - `handlers`: the edge for messages: consumes `notification-orders` and
//!   `notification-invoices`, each event handed to the `notify` use case.
//! - `api`: the HTTP edge: `GET /notifications?order_id=…`.
//! - `usecases`: records exactly one notification per event and sends it;
//!   the service emits no events.
//! - `domain`: what each event tells the customer.
//! - `sender`: the delivery channel: a log sender by default, or a webhook.
//! - `store`: the notifications table, in SQL only.
//! - `openapi`: the API's OpenAPI description (`docs/openapi/notification.json`).
//! - `startup`: settings, and building and running the service on the shared `Application`.

pub mod api;
pub mod domain;
pub mod handlers;
pub mod openapi;
pub mod sender;
pub mod startup;
pub mod store;
pub mod usecases;
