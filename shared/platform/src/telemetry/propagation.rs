//! The W3C trace context (`traceparent`, `tracestate`) across every boundary
//! an order crosses.
//!
//! One order is one trace only if each hop hands its context to the next:
//!
//! - HTTP: a caller's `traceparent` header becomes the parent of the server
//!   span ([`HeaderCarrier`]).
//! - Outbox: `outbox::enqueue` writes the context current at the insert into
//!   the row, as message attributes ([`AttributeCarrier`]) and inside the
//!   envelope ([`EnvelopeCarrier`]), so the relay, running later and
//!   elsewhere, publishes as a child of the request or handler that wrote it.
//!   The relay then replaces both with the context of its publish span.
//! - SNS → SQS (raw delivery) keeps message attributes: the consumer reads
//!   them ([`SqsAttributeCarrier`]). EventBridge → SQS delivers no attributes:
//!   the consumer reads the envelope inside the event's `detail`.
//!
//! Empty values are never written: the W3C propagator injects an empty
//! `tracestate` when there is none, and SNS refuses an attribute whose value is
//! empty. The carriers skip them, so the limits of `outbox::limits` hold.

use std::collections::HashMap;

use aws_sdk_sqs::types::MessageAttributeValue;
use axum::http::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::outbox::MessageAttributes;
use contracts::events::Envelope;

/// The W3C header, attribute and envelope field that carries the trace and
/// parent span ids.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header, attribute and envelope field for vendor trace state.
pub const TRACESTATE: &str = "tracestate";

/// Writes `cx` into `carrier` (nothing when `cx` holds no valid span).
pub fn inject(cx: &Context, carrier: &mut dyn Injector) {
    if has_span(cx) {
        TraceContextPropagator::new().inject_context(cx, carrier);
    }
}

/// The context `carrier` holds, or an empty one. Never the current context:
/// a message without a trace context starts a trace of its own rather than
/// joining whatever span happens to be current.
pub fn extract(carrier: &dyn Extractor) -> Context {
    TraceContextPropagator::new().extract_with_context(&Context::new(), carrier)
}

/// Whether `cx` holds a span that can be continued.
pub fn has_span(cx: &Context) -> bool {
    cx.span().span_context().is_valid()
}

/// The OpenTelemetry context of the current `tracing` span.
pub fn current() -> Context {
    tracing::Span::current().context()
}

/// Makes `cx` the parent of `span`. Call it right after creating the span,
/// before it is entered, gets a child, or has its context read: after that
/// its parent is fixed. Without a telemetry layer this does nothing.
pub fn set_parent(span: &tracing::Span, cx: Context) {
    if let Err(e) = span.set_parent(cx) {
        tracing::debug!(error = %e, "cannot set the parent of a span");
    }
}

/// The trace id and span id of the span in `cx`, as lowercase hex, when it
/// is valid.
pub fn ids_of(cx: &Context) -> Option<(String, String)> {
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid()
        .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
}

/// Message attributes of an outbox row. Injecting skips empty values and
/// anything the SQS limits refuse (the trace context is worth less than the
/// event).
pub struct AttributeCarrier<'a>(pub &'a mut MessageAttributes);

impl AttributeCarrier<'_> {
    /// Replaces the trace context in the attributes with `cx`'s; removes it
    /// when `cx` has none.
    pub fn replace(&mut self, cx: &Context) {
        self.0.remove(TRACEPARENT);
        self.0.remove(TRACESTATE);
        inject(cx, self);
    }
}

impl Injector for AttributeCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        if value.is_empty() {
            return;
        }
        if let Err(e) = self.0.insert(key, &value) {
            tracing::warn!(error = %e, "trace context left out of the message attributes");
        }
    }
}

impl Extractor for AttributeCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k).collect()
    }
}

/// The message attributes of a received SQS message.
pub struct SqsAttributeCarrier<'a>(pub Option<&'a HashMap<String, MessageAttributeValue>>);

impl Extractor for SqsAttributeCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0?.get(key)?.string_value()
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// The `traceparent` and `tracestate` attributes of an event envelope.
pub struct EnvelopeCarrier<'a, T>(pub &'a mut Envelope<T>);

impl<T> EnvelopeCarrier<'_, T> {
    /// Replaces the envelope's trace context with `cx`'s; removes it when
    /// `cx` has none.
    pub fn replace(&mut self, cx: &Context) {
        self.0.traceparent = None;
        self.0.tracestate = None;
        inject(cx, self);
    }
}

impl<T> Injector for EnvelopeCarrier<'_, T> {
    fn set(&mut self, key: &str, value: String) {
        if value.is_empty() {
            return;
        }
        match key {
            TRACEPARENT => self.0.traceparent = Some(value),
            TRACESTATE => self.0.tracestate = Some(value),
            _ => {}
        }
    }
}

impl<T> Extractor for EnvelopeCarrier<'_, T> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => self.0.traceparent.as_deref(),
            TRACESTATE => self.0.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

/// Writes the current span's context into the headers of an outgoing HTTP
/// request, so the service it calls continues the trace.
pub fn inject_into_headers(headers: &mut HeaderMap) {
    inject(&current(), &mut opentelemetry_http::HeaderInjector(headers));
}

/// The headers of an incoming HTTP request.
pub struct HeaderCarrier<'a>(pub &'a HeaderMap);

impl Extractor for HeaderCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)?.to_str().ok()
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    use super::*;
    use contracts::events::{Event, OrderCancelled};
    use contracts::topology::Service;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    fn remote(trace_state: TraceState) -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").expect("hex"),
            SpanId::from_hex("b7ad6b7169203331").expect("hex"),
            TraceFlags::SAMPLED,
            true,
            trace_state,
        ))
    }

    fn envelope() -> Envelope {
        let event = Event::OrderCancelled(OrderCancelled {
            order_id: uuid::Uuid::now_v7(),
            customer_id: "c".into(),
        });
        Envelope::new(Service::Order, &event, "c")
    }

    #[test]
    fn an_empty_tracestate_is_not_written_because_sns_refuses_empty_attributes() {
        let mut attributes = MessageAttributes::default();
        attributes
            .insert("event_type", "OrderPlaced")
            .expect("valid");
        inject(
            &remote(TraceState::NONE),
            &mut AttributeCarrier(&mut attributes),
        );
        assert_eq!(attributes.get(TRACEPARENT), Some(PARENT));
        assert_eq!(attributes.get(TRACESTATE), None);
        assert_eq!(attributes.len(), 2);
    }

    #[test]
    fn a_context_written_to_attributes_is_read_back_from_the_sqs_message() {
        let state = TraceState::from_key_value([("vendor", "x1")]).expect("valid");
        let mut attributes = MessageAttributes::default();
        inject(&remote(state), &mut AttributeCarrier(&mut attributes));
        let received: HashMap<String, MessageAttributeValue> = attributes
            .iter()
            .map(|(k, v)| {
                let value = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(v)
                    .build()
                    .expect("valid");
                (k.to_string(), value)
            })
            .collect();
        let cx = extract(&SqsAttributeCarrier(Some(&received)));
        let span = cx.span();
        let sc = span.span_context();
        assert!(sc.is_remote());
        assert_eq!(
            sc.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(sc.trace_state().get("vendor"), Some("x1"));
    }

    #[test]
    fn an_envelope_carries_the_context_and_replacing_it_removes_a_stale_state() {
        let mut env = envelope();
        let state = TraceState::from_key_value([("vendor", "x1")]).expect("valid");
        inject(&remote(state), &mut EnvelopeCarrier(&mut env));
        assert_eq!(env.traceparent.as_deref(), Some(PARENT));
        assert_eq!(env.tracestate.as_deref(), Some("vendor=x1"));

        EnvelopeCarrier(&mut env).replace(&remote(TraceState::NONE));
        assert_eq!(env.traceparent.as_deref(), Some(PARENT));
        assert_eq!(env.tracestate, None);
        assert!(has_span(&extract(&EnvelopeCarrier(&mut env))));
    }

    #[test]
    fn a_message_without_a_context_yields_none_rather_than_the_current_one() {
        assert!(!has_span(&extract(&SqsAttributeCarrier(None))));
        let mut env = envelope();
        assert!(!has_span(&extract(&EnvelopeCarrier(&mut env))));
        let mut attributes = MessageAttributes::default();
        inject(&Context::new(), &mut AttributeCarrier(&mut attributes));
        assert!(attributes.is_empty());
    }
}
