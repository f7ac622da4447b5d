//! The notification service: tells customers what happened to their orders.
//!
//! - `handlers`: consumes `notification-orders` and `notification-invoices`;
//!   records exactly one notification per event and sends it.
//! - `domain`: what each event tells the customer.
//! - `sender`: the delivery channel: a log sender by default, or a webhook.
//! - `store`: the notifications table.
//! - `api`: `GET /notifications?order_id=…`.
//! - `startup`: settings, and building and running the service on the shared `Application`.

pub mod api;
pub mod domain;
pub mod handlers;
pub mod sender;
pub mod startup;
pub mod store;
