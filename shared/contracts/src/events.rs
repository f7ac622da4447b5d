//! Event contracts: the one versioned envelope and the four event types.
//!
//! The envelope uses CloudEvents 1.0 attribute names (`specversion`, `id`,
//! `source`, `type`, `time`, `subject`, `datacontenttype`, `data`) plus two
//! extension attributes: `dataversion`, the schema version of `data`, and
//! `correlationid`, which ties every event of one order's journey together.
//! The optional `traceparent` and `tracestate` (CloudEvents' Distributed
//! Tracing extension) carry the trace context wherever the envelope goes; the
//! outbox fills them in, see `crate::telemetry::propagation`.
//!
//! Event ids are UUID v7: they sort by creation time and are the key of every
//! consumer's inbox, so a redelivered, redriven or replayed event is known by
//! the id its producer gave it, never by a broker's message id.
//!
//! How an event evolves: adding an optional field keeps the version; removing,
//! renaming or changing the meaning of a field makes a new `dataversion`.
//! Producers write the newest version; consumers keep decoding every version
//! they have ever accepted, because an old event can sit in a queue, a DLQ or
//! the bus archive and come back after an upgrade. Each payload type states its
//! type and version through [`Payload`]; an older version lives in
//! [`superseded`] with the upcast that turns it into the current type, so
//! handlers only ever see the current one. The rules and the steps for adding
//! a version are in `contracts/README.md`.
//!
//! - [`schemas`]: the JSON Schemas of the envelope and of every payload
//!   version, generated from these types and committed under `contracts/`.
//! - [`superseded`]: payload versions producers no longer write.

pub mod schemas;
pub mod superseded;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::money::{AmountError, Currency, MinorUnits};
use crate::service::Service;

pub use superseded::OrderPlacedV1;

pub const SPEC_VERSION: &str = "1.0";

/// The kinds of event that travel between the services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum EventType {
    OrderPlaced,
    OrderCancelled,
    InvoiceIssued,
    InvoiceVoided,
}

impl EventType {
    pub const ALL: [EventType; 4] = [
        EventType::OrderPlaced,
        EventType::OrderCancelled,
        EventType::InvoiceIssued,
        EventType::InvoiceVoided,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::OrderPlaced => "OrderPlaced",
            EventType::OrderCancelled => "OrderCancelled",
            EventType::InvoiceIssued => "InvoiceIssued",
            EventType::InvoiceVoided => "InvoiceVoided",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The schema version producers write today: that of the payload type the
    /// handlers see.
    pub fn current_version(self) -> u32 {
        match self {
            EventType::OrderPlaced => OrderPlaced::VERSION,
            EventType::OrderCancelled => OrderCancelled::VERSION,
            EventType::InvoiceIssued => InvoiceIssued::VERSION,
            EventType::InvoiceVoided => InvoiceVoided::VERSION,
        }
    }

    /// The service that may emit this type: a consumer refuses it from anyone else.
    pub fn publisher(self) -> Service {
        match self {
            EventType::OrderPlaced | EventType::OrderCancelled => Service::Order,
            EventType::InvoiceIssued | EventType::InvoiceVoided => Service::Invoice,
        }
    }
}

/// The CloudEvents-shaped envelope around every event. Its `data` is the
/// payload whose schema the `type` and `dataversion` attributes name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope<T = serde_json::Value> {
    /// The CloudEvents specification version; consumers refuse any other.
    #[schemars(extend("const" = "1.0"))]
    pub specversion: String,
    /// The event's id, a UUID v7 given by its producer: the key of every
    /// consumer's inbox.
    pub id: Uuid,
    /// The service that produced the event: `order-service` or `invoice-service`.
    pub source: String,
    /// The event type.
    #[serde(rename = "type")]
    #[schemars(with = "EventType")]
    pub event_type: String,
    /// The schema version of `data` (CloudEvents extension attribute).
    #[schemars(range(min = 1))]
    pub dataversion: u32,
    /// When the producer created the event.
    pub time: DateTime<Utc>,
    /// The order this event is about, as its UUID.
    pub subject: String,
    /// Ties every event of one order's journey together (CloudEvents extension
    /// attribute).
    pub correlationid: String,
    /// Always `application/json`.
    pub datacontenttype: String,
    /// The payload, described by the schema file named after `type` and
    /// `dataversion`, such as `order-placed.v2.schema.json`.
    pub data: T,
    /// The W3C trace context of the span that published the event
    /// (CloudEvents Distributed Tracing extension): a consumer continues the
    /// trace from here when the message carries no attributes, as on
    /// EventBridge. Absent from events written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Vendor trace state that goes with `traceparent` (CloudEvents
    /// Distributed Tracing extension); absent when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

impl Envelope<serde_json::Value> {
    /// Wraps a new event from `source`, with a fresh v7 id and the current time.
    pub fn new(source: Service, event: &Event, correlation_id: &str) -> Self {
        Envelope {
            specversion: SPEC_VERSION.to_string(),
            id: Uuid::now_v7(),
            source: source.source().to_string(),
            event_type: event.event_type().as_str().to_string(),
            dataversion: event.event_type().current_version(),
            time: Utc::now(),
            subject: event.order_id().to_string(),
            correlationid: correlation_id.to_string(),
            datacontenttype: "application/json".to_string(),
            data: event.data_json(),
            traceparent: None,
            tracestate: None,
        }
    }
}

/// Why an envelope cannot be turned into an event. None of these gets better on
/// a retry.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("body is not a JSON event envelope: {0}")]
    NotAnEnvelope(#[source] serde_json::Error),
    #[error("unsupported specversion '{0}'")]
    SpecVersion(String),
    #[error("unknown event type '{0}'")]
    UnknownType(String),
    #[error("{event_type} version {version} is not supported (up to {supported})")]
    UnsupportedVersion {
        event_type: &'static str,
        version: u32,
        supported: u32,
    },
    #[error("{0} data does not match its schema: {1}")]
    BadData(&'static str, #[source] serde_json::Error),
    #[error("{event_type} version {version} cannot be brought to the current version: {reason}")]
    Upcast {
        event_type: &'static str,
        version: u32,
        #[source]
        reason: AmountError,
    },
}

/// A decoded event with its envelope's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedEvent {
    pub id: Uuid,
    pub source: String,
    pub time: DateTime<Utc>,
    pub correlation_id: String,
    pub event: Event,
}

impl ReceivedEvent {
    pub fn decode(envelope: Envelope) -> Result<ReceivedEvent, DecodeError> {
        if envelope.specversion != SPEC_VERSION {
            return Err(DecodeError::SpecVersion(envelope.specversion));
        }
        let ty = EventType::parse(&envelope.event_type)
            .ok_or_else(|| DecodeError::UnknownType(envelope.event_type.clone()))?;
        let event = Event::from_data(ty, envelope.dataversion, envelope.data)?;
        Ok(ReceivedEvent {
            id: envelope.id,
            source: envelope.source,
            time: envelope.time,
            correlation_id: envelope.correlationid,
            event,
        })
    }
}

/// Every event the services exchange.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    OrderPlaced(OrderPlaced),
    OrderCancelled(OrderCancelled),
    InvoiceIssued(InvoiceIssued),
    InvoiceVoided(InvoiceVoided),
}

impl Event {
    pub fn event_type(&self) -> EventType {
        match self {
            Event::OrderPlaced(_) => EventType::OrderPlaced,
            Event::OrderCancelled(_) => EventType::OrderCancelled,
            Event::InvoiceIssued(_) => EventType::InvoiceIssued,
            Event::InvoiceVoided(_) => EventType::InvoiceVoided,
        }
    }

    pub fn order_id(&self) -> Uuid {
        match self {
            Event::OrderPlaced(e) => e.order_id,
            Event::OrderCancelled(e) => e.order_id,
            Event::InvoiceIssued(e) => e.order_id,
            Event::InvoiceVoided(e) => e.order_id,
        }
    }

    fn data_json(&self) -> serde_json::Value {
        let value = match self {
            Event::OrderPlaced(e) => serde_json::to_value(e),
            Event::OrderCancelled(e) => serde_json::to_value(e),
            Event::InvoiceIssued(e) => serde_json::to_value(e),
            Event::InvoiceVoided(e) => serde_json::to_value(e),
        };
        // Serialising these plain structs to a Value cannot fail: no maps with
        // non-string keys, no custom serialisers that error.
        value.unwrap_or(serde_json::Value::Null)
    }

    /// Decodes `data` as the payload type of this type and version, and brings
    /// an older version up to the current type. Every version ever accepted has
    /// an arm here; any other version, zero and future ones included, is refused.
    fn from_data(
        ty: EventType,
        version: u32,
        data: serde_json::Value,
    ) -> Result<Event, DecodeError> {
        Ok(match (ty, version) {
            (EventType::OrderPlaced, OrderPlacedV1::VERSION) => {
                let v1 = read::<OrderPlacedV1>(data)?;
                let current = OrderPlaced::try_from(v1).map_err(|reason| DecodeError::Upcast {
                    event_type: ty.as_str(),
                    version,
                    reason,
                })?;
                Event::OrderPlaced(current)
            }
            (EventType::OrderPlaced, OrderPlaced::VERSION) => Event::OrderPlaced(read(data)?),
            (EventType::OrderCancelled, OrderCancelled::VERSION) => {
                Event::OrderCancelled(read(data)?)
            }
            (EventType::InvoiceIssued, InvoiceIssued::VERSION) => Event::InvoiceIssued(read(data)?),
            (EventType::InvoiceVoided, InvoiceVoided::VERSION) => Event::InvoiceVoided(read(data)?),
            _ => {
                return Err(DecodeError::UnsupportedVersion {
                    event_type: ty.as_str(),
                    version,
                    supported: ty.current_version(),
                });
            }
        })
    }
}

fn read<P: Payload>(data: serde_json::Value) -> Result<P, DecodeError> {
    serde_json::from_value(data).map_err(|e| DecodeError::BadData(P::TYPE.as_str(), e))
}

/// A payload type at one schema version: what the `type` and `dataversion`
/// attributes of its envelope say. Each version has its own type, so the
/// schema of every version can be generated and checked, and an old version
/// never changes by accident.
pub trait Payload: Serialize + DeserializeOwned + JsonSchema {
    const TYPE: EventType;
    const VERSION: u32;
}

/// An order was accepted. Carries everything needed to invoice it.
///
/// Version 2 (current) adds `total_minor`. Version 1 had no total and every
/// consumer summed the lines itself; the total now travels with the order, so
/// that the order service alone decides what an order costs. Consumers still
/// accept version 1 and give it the total of its lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct OrderPlaced {
    pub order_id: Uuid,
    pub customer_id: String,
    pub currency: Currency,
    /// At least one line, all in `currency`.
    pub lines: Vec<OrderLine>,
    /// What the order costs, in `currency`: today the sum of quantity × unit
    /// price over the lines.
    pub total_minor: MinorUnits,
}

impl Payload for OrderPlaced {
    const TYPE: EventType = EventType::OrderPlaced;
    const VERSION: u32 = 2;
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct OrderLine {
    pub sku: String,
    #[schemars(range(min = 1))]
    #[schema(minimum = 1)]
    pub quantity: u32,
    /// The price of one unit, in the order's currency.
    pub unit_price_minor: MinorUnits,
}

impl OrderLine {
    /// Quantity × unit price, checked for overflow.
    pub fn subtotal(&self) -> Result<MinorUnits, AmountError> {
        self.unit_price_minor.checked_mul(self.quantity)
    }
}

/// The total of an order's lines: the sum of their subtotals, checked for
/// overflow. The order service prices an order with it, and a version-1
/// `OrderPlaced`, which carried no total, is given this one.
pub fn order_total(lines: &[OrderLine]) -> Result<MinorUnits, AmountError> {
    lines.iter().try_fold(MinorUnits::ZERO, |acc, line| {
        acc.checked_add(line.subtotal()?)
    })
}

/// An order was cancelled by the customer.
///
/// Version 1 (current).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderCancelled {
    pub order_id: Uuid,
    pub customer_id: String,
}

impl Payload for OrderCancelled {
    const TYPE: EventType = EventType::OrderCancelled;
    const VERSION: u32 = 1;
}

/// An invoice was issued for an order.
///
/// Version 1 (current).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InvoiceIssued {
    pub invoice_id: Uuid,
    pub order_id: Uuid,
    pub customer_id: String,
    /// The amount invoiced, in `currency`.
    pub total_minor: MinorUnits,
    pub currency: Currency,
}

impl Payload for InvoiceIssued {
    const TYPE: EventType = EventType::InvoiceIssued;
    const VERSION: u32 = 1;
}

/// An issued invoice was voided because its order was cancelled.
///
/// Version 1 (current).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InvoiceVoided {
    pub invoice_id: Uuid,
    pub order_id: Uuid,
    pub customer_id: String,
}

impl Payload for InvoiceVoided {
    const TYPE: EventType = EventType::InvoiceVoided;
    const VERSION: u32 = 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minor(amount: i64) -> MinorUnits {
        MinorUnits::try_from(amount).expect("valid amount")
    }

    fn line(quantity: u32, unit_price: i64) -> OrderLine {
        OrderLine {
            sku: "SKU-1".into(),
            quantity,
            unit_price_minor: minor(unit_price),
        }
    }

    fn placed() -> Event {
        Event::OrderPlaced(OrderPlaced {
            order_id: Uuid::now_v7(),
            customer_id: "c-1".into(),
            currency: "EUR".parse().expect("EUR"),
            lines: vec![line(2, 1999)],
            total_minor: minor(3998),
        })
    }

    #[test]
    fn an_envelope_round_trips_through_json() {
        let event = placed();
        let env = Envelope::new(Service::Order, &event, "corr-1");
        let json = serde_json::to_string(&env).expect("serialise");
        let back: Envelope = serde_json::from_str(&json).expect("parse");
        let received = ReceivedEvent::decode(back).expect("decode");
        assert_eq!(received.event, event);
        assert_eq!(received.id, env.id);
        assert_eq!(received.correlation_id, "corr-1");
        assert_eq!(received.source, "order-service");
    }

    #[test]
    fn envelope_uses_cloudevents_names() {
        let env = Envelope::new(Service::Order, &placed(), "corr-1");
        let json = serde_json::to_value(&env).expect("serialise");
        for key in [
            "specversion",
            "id",
            "source",
            "type",
            "time",
            "subject",
            "datacontenttype",
            "data",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        assert_eq!(json["type"], "OrderPlaced");
        assert_eq!(env.id.get_version_num(), 7);
    }

    #[test]
    fn the_trace_context_is_written_only_when_present_and_read_when_absent() {
        let mut env = Envelope::new(Service::Order, &placed(), "c");
        let json = serde_json::to_value(&env).expect("serialise");
        assert!(json.get("traceparent").is_none() && json.get("tracestate").is_none());

        env.traceparent = Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
        let json = serde_json::to_string(&env).expect("serialise");
        let back: Envelope = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.traceparent, env.traceparent);
        assert_eq!(back.tracestate, None);
        assert!(ReceivedEvent::decode(back).is_ok());
    }

    #[test]
    fn unknown_types_and_future_versions_are_refused() {
        let mut env = Envelope::new(Service::Order, &placed(), "c");
        env.event_type = "OrderShipped".into();
        assert!(matches!(
            ReceivedEvent::decode(env),
            Err(DecodeError::UnknownType(_))
        ));

        for version in [0, EventType::OrderPlaced.current_version() + 1] {
            let mut env = Envelope::new(Service::Order, &placed(), "c");
            env.dataversion = version;
            assert!(matches!(
                ReceivedEvent::decode(env),
                Err(DecodeError::UnsupportedVersion { .. })
            ));
        }
    }

    #[test]
    fn every_type_round_trips_at_the_version_its_producer_writes() {
        let order_id = Uuid::now_v7();
        let invoice_id = Uuid::now_v7();
        let events = [
            placed(),
            Event::OrderCancelled(OrderCancelled {
                order_id,
                customer_id: "c-1".into(),
            }),
            Event::InvoiceIssued(InvoiceIssued {
                invoice_id,
                order_id,
                customer_id: "c-1".into(),
                total_minor: minor(3998),
                currency: "EUR".parse().expect("EUR"),
            }),
            Event::InvoiceVoided(InvoiceVoided {
                invoice_id,
                order_id,
                customer_id: "c-1".into(),
            }),
        ];
        for event in events {
            let env = Envelope::new(event.event_type().publisher(), &event, "c");
            assert_eq!(env.dataversion, event.event_type().current_version());
            assert_eq!(ReceivedEvent::decode(env).expect("decode").event, event);
        }
    }

    #[test]
    fn producers_write_order_placed_version_2_with_its_total() {
        let env = Envelope::new(Service::Order, &placed(), "c");
        assert_eq!(env.dataversion, 2);
        assert_eq!(env.data["total_minor"], 3998);
    }

    fn placed_v1(lines: Vec<OrderLine>) -> Envelope {
        let mut env = Envelope::new(Service::Order, &placed(), "c");
        env.dataversion = 1;
        env.data = serde_json::to_value(OrderPlacedV1 {
            order_id: Uuid::now_v7(),
            customer_id: "c-1".into(),
            currency: "EUR".parse().expect("EUR"),
            lines,
        })
        .expect("json");
        env
    }

    #[test]
    fn a_version_1_order_placed_is_given_the_total_of_its_lines() {
        let received =
            ReceivedEvent::decode(placed_v1(vec![line(2, 1999), line(3, 1)])).expect("decode");
        let Event::OrderPlaced(placed) = received.event else {
            panic!("not an OrderPlaced: {received:?}");
        };
        assert_eq!(placed.total_minor, minor(4001));
    }

    #[test]
    fn a_version_1_order_placed_whose_total_overflows_is_refused() {
        assert!(matches!(
            ReceivedEvent::decode(placed_v1(vec![line(1000, i64::MAX / 999)])),
            Err(DecodeError::Upcast { version: 1, .. })
        ));
    }

    #[test]
    fn the_order_total_sums_quantity_times_price() {
        assert_eq!(order_total(&[line(2, 1999), line(3, 1)]), Ok(minor(4001)));
        assert_eq!(order_total(&[]), Ok(MinorUnits::ZERO));
        assert_eq!(
            order_total(&[line(1000, i64::MAX / 999)]),
            Err(AmountError::Overflow)
        );
    }

    #[test]
    fn data_that_breaks_the_schema_is_refused() {
        let mut env = Envelope::new(Service::Order, &placed(), "c");
        env.data["lines"][0]["unit_price_minor"] = serde_json::json!(-1);
        assert!(matches!(
            ReceivedEvent::decode(env),
            Err(DecodeError::BadData(..))
        ));
    }
}
