//! What each event tells the customer.

use contracts::events::{Event, ReceivedEvent};
use serde::Serialize;
use uuid::Uuid;

/// A notification: what would be sent, to whom, and why (the event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: &'static str,
    pub order_id: Uuid,
    pub kind: &'static str,
    pub recipient: String,
    pub message: String,
}

impl Notification {
    pub fn for_event(received: &ReceivedEvent) -> Notification {
        let (kind, customer, message) = match &received.event {
            Event::OrderPlaced(e) => {
                let items: u32 = e.lines.iter().map(|l| l.quantity).sum();
                (
                    "order-received",
                    &e.customer_id,
                    format!("We received your order {} ({items} item(s)).", e.order_id),
                )
            }
            Event::OrderCancelled(e) => (
                "order-cancelled",
                &e.customer_id,
                format!("Your order {} was cancelled.", e.order_id),
            ),
            Event::InvoiceIssued(e) => (
                "invoice-issued",
                &e.customer_id,
                format!(
                    "Invoice {} for order {}: {} {} (minor units).",
                    e.invoice_id, e.order_id, e.total_minor, e.currency
                ),
            ),
            Event::InvoiceVoided(e) => (
                "invoice-voided",
                &e.customer_id,
                format!(
                    "Invoice {} for order {} was voided.",
                    e.invoice_id, e.order_id
                ),
            ),
        };
        Notification {
            id: Uuid::now_v7(),
            event_id: received.id,
            event_type: received.event.event_type().as_str(),
            order_id: received.event.order_id(),
            kind,
            recipient: format!("customer:{customer}"),
            message,
        }
    }
}
