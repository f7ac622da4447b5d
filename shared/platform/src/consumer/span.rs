//! The `consumer.process` span each message is handled in.
//!
//! Its parent is the publisher's span, so that one order is one trace across
//! the broker: from the message attributes (SNS raw delivery keeps them), or
//! else from the envelope (EventBridge delivers none, but the envelope travels
//! inside `detail`). Its fields follow OpenTelemetry's messaging conventions,
//! plus the event's own ids for the logs; the end-to-end telemetry test reads
//! them.

use aws_sdk_sqs::types::Message;
use opentelemetry::Context;
use tracing::Span;
use tracing::field::{Empty, display};

use crate::telemetry::propagation::{self, SqsAttributeCarrier};
use contracts::events::ReceivedEvent;

/// The span for processing `message` from `queue`, a child of its
/// publisher's: the one in its attributes, else `from_envelope`.
pub(super) fn process(
    queue: &'static str,
    message: &Message,
    receive_count: u32,
    from_envelope: Option<&Context>,
) -> Span {
    let span = tracing::info_span!(
        "consumer.process",
        otel.name = format!("process {queue}"),
        otel.kind = "consumer",
        otel.status_description = Empty,
        messaging.system = "aws_sqs",
        messaging.destination.name = queue,
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.message.id = message.message_id().unwrap_or_default(),
        messaging.message.conversation_id = Empty,
        queue,
        event_id = Empty,
        event_type = Empty,
        order_id = Empty,
        correlation_id = Empty,
        receive_count,
    );
    // Set right after creating the span: its parent is fixed once it starts.
    let mut parent = propagation::extract(&SqsAttributeCarrier(message.message_attributes()));
    if !propagation::has_span(&parent)
        && let Some(from_envelope) = from_envelope
    {
        parent = from_envelope.clone();
    }
    propagation::set_parent(&span, parent);
    span
}

/// Names the decoded event on `span`.
pub(super) fn record_event(span: &Span, event: &ReceivedEvent) {
    span.record("event_id", display(event.id));
    span.record("event_type", event.event.event_type().as_str());
    span.record("order_id", display(event.event.order_id()));
    span.record("correlation_id", event.correlation_id.as_str());
    span.record(
        "messaging.message.conversation_id",
        event.correlation_id.as_str(),
    );
}

/// Marks `span` failed, with why.
pub(super) fn record_failure(span: &Span, reason: &str) {
    span.record("otel.status_description", reason);
}
