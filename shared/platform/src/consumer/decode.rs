//! From a message body to an event this queue may carry, or the reason it is
//! refused.
//!
//! Three checks, none of which a retry can change, so a refusal sends the
//! message to the DLQ at once:
//!
//! 1. unwrap: a raw SNS delivery's body is our envelope; an EventBridge event
//!    carries it in `detail`;
//! 2. decode the envelope into an event (a known type and version);
//! 3. admit it: its type belongs on this queue, and its source is the queue's
//!    only publisher (anything else is forged or misrouted).
//!
//! The envelope's trace context comes back too: EventBridge delivers no message
//! attributes, so the envelope is where its publisher's span is found.

use opentelemetry::Context;

use crate::telemetry::propagation::{self, EnvelopeCarrier};
use contracts::events::{Envelope, ReceivedEvent};
use contracts::topology::{Delivery, QueueSpec};

/// The event in `body`, and the trace context its envelope carries; the
/// reason when `queue` must not take it from anyone but `expected_source`.
pub(super) fn decode(
    body: &str,
    queue: &QueueSpec,
    expected_source: &str,
) -> Result<(ReceivedEvent, Context), String> {
    let mut envelope = unwrap(body, queue.delivery())?;
    let trace = propagation::extract(&EnvelopeCarrier(&mut envelope));
    let event = ReceivedEvent::decode(envelope).map_err(|e| e.to_string())?;
    admit(&event, queue, expected_source)?;
    Ok((event, trace))
}

/// The envelope inside a body delivered the way `delivery` says.
fn unwrap(body: &str, delivery: Delivery) -> Result<Envelope, String> {
    match delivery {
        Delivery::SnsRaw => {
            serde_json::from_str(body).map_err(|e| format!("not an event envelope: {e}"))
        }
        Delivery::EventBridge => {
            // moto's EventBridge events have no `account`: only `detail` is read.
            #[derive(serde::Deserialize)]
            struct EventBridgeEvent {
                detail: Envelope,
            }
            let ev: EventBridgeEvent = serde_json::from_str(body)
                .map_err(|e| format!("not an EventBridge event with an envelope: {e}"))?;
            Ok(ev.detail)
        }
    }
}

/// Whether `event` belongs on `queue`, published by `expected_source`.
fn admit(event: &ReceivedEvent, queue: &QueueSpec, expected_source: &str) -> Result<(), String> {
    let ty = event.event.event_type();
    if !queue.event_types.contains(&ty) {
        return Err(format!("{} does not belong on {}", ty.as_str(), queue.name));
    }
    if event.source != expected_source {
        return Err(format!(
            "source '{}' is not '{}', the only publisher for {}",
            event.source, expected_source, queue.name
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::events::{Event, InvoiceVoided, OrderCancelled};
    use contracts::service::Service;
    use contracts::topology::topology;
    use uuid::Uuid;

    fn queue(name: &str) -> QueueSpec {
        topology()
            .queues
            .into_iter()
            .find(|q| q.name == name)
            .expect("a declared queue")
    }

    fn decoded(body: &str, queue: &QueueSpec) -> Result<(ReceivedEvent, Context), String> {
        decode(body, queue, queue.expected_source().source())
    }

    fn cancelled(source: Service) -> Envelope {
        let event = Event::OrderCancelled(OrderCancelled {
            order_id: Uuid::now_v7(),
            customer_id: "alice".into(),
        });
        Envelope::new(source, &event, "corr-1")
    }

    fn json(envelope: &Envelope) -> String {
        serde_json::to_string(envelope).expect("an envelope serialises")
    }

    #[test]
    fn a_raw_sns_body_is_the_envelope() {
        let envelope = cancelled(Service::Order);
        let (event, _) = decoded(&json(&envelope), &queue("invoice-orders")).expect("admitted");
        assert_eq!(event.id, envelope.id);
        assert_eq!(event.correlation_id, "corr-1");
    }

    #[test]
    fn an_eventbridge_body_carries_the_envelope_in_its_detail() {
        let event = Event::InvoiceVoided(InvoiceVoided {
            invoice_id: Uuid::now_v7(),
            order_id: Uuid::now_v7(),
            customer_id: "alice".into(),
        });
        let envelope = Envelope::new(Service::Invoice, &event, "corr-2");
        let body = format!(
            r#"{{"detail-type":"InvoiceVoided","source":"invoice-service","detail":{}}}"#,
            json(&envelope)
        );
        let (received, _) = decoded(&body, &queue("order-invoices")).expect("admitted");
        assert_eq!(received.id, envelope.id);
        // The same envelope unwrapped as if SNS had delivered it is refused.
        assert!(decoded(&body, &queue("invoice-orders")).is_err());
    }

    #[test]
    fn a_body_that_is_not_an_envelope_is_refused_with_the_reason() {
        let reason = decoded("hello", &queue("invoice-orders")).expect_err("refused");
        assert!(reason.starts_with("not an event envelope"), "{reason}");
        let reason = decoded(r#"{"detail":1}"#, &queue("order-invoices")).expect_err("refused");
        assert!(
            reason.starts_with("not an EventBridge event with an envelope"),
            "{reason}"
        );
    }

    #[test]
    fn an_unknown_event_type_is_refused() {
        let mut envelope = cancelled(Service::Order);
        envelope.event_type = "OrderTeleported".into();
        let reason = decoded(&json(&envelope), &queue("invoice-orders")).expect_err("refused");
        assert_eq!(reason, "unknown event type 'OrderTeleported'");
    }

    #[test]
    fn a_type_that_does_not_belong_on_the_queue_is_refused() {
        let body = json(&cancelled(Service::Order));
        let order_invoices = queue("order-invoices");
        // Unwrapped as EventBridge would deliver it, so only admission refuses it.
        let wrapped = format!(r#"{{"detail":{body}}}"#);
        assert_eq!(
            decoded(&wrapped, &order_invoices).expect_err("refused"),
            "OrderCancelled does not belong on order-invoices"
        );
    }

    #[test]
    fn a_source_other_than_the_queues_publisher_is_refused() {
        let forged = cancelled(Service::Invoice);
        assert_eq!(
            decoded(&json(&forged), &queue("invoice-orders")).expect_err("refused"),
            "source 'invoice-service' is not 'order-service', the only publisher for invoice-orders"
        );
    }

    #[test]
    fn the_envelope_trace_context_comes_back_with_the_event() {
        let mut envelope = cancelled(Service::Order);
        envelope.traceparent =
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
        let (_, trace) = decoded(&json(&envelope), &queue("invoice-orders")).expect("admitted");
        assert_eq!(
            propagation::ids_of(&trace),
            Some((
                "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                "00f067aa0ba902b7".into()
            ))
        );
    }
}
