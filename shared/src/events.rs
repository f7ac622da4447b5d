//! Event contracts: the one versioned envelope and the four event types.
//!
//! The envelope uses CloudEvents 1.0 attribute names (`specversion`, `id`,
//! `source`, `type`, `time`, `subject`, `datacontenttype`, `data`) plus two
//! extension attributes: `dataversion`, the schema version of `data`, and
//! `correlationid`, which ties every event of one order's journey together.
//!
//! Event ids are UUID v7: they sort by creation time and are the key of every
//! consumer's inbox, so a redelivered, redriven or replayed event is known by
//! the id its producer gave it, never by a broker's message id.
//!
//! How an event evolves: adding an optional field keeps the version; removing or
//! changing the meaning of a field makes a new version, and consumers keep
//! decoding every version they have ever accepted. Each payload type states its
//! type and version through [`Payload`].
//!
//! - [`contracts`]: the JSON Schemas of the envelope and of every payload
//!   version, generated from these types and committed under `contracts/`.

pub mod contracts;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::money::{Currency, MinorUnits};
use crate::topology::Service;

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
    /// `dataversion`, such as `order-placed.v1.schema.json`.
    pub data: T,
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
        if envelope.dataversion == 0 || envelope.dataversion > ty.current_version() {
            return Err(DecodeError::UnsupportedVersion {
                event_type: ty.as_str(),
                version: envelope.dataversion,
                supported: ty.current_version(),
            });
        }
        let event = Event::from_data(ty, envelope.data)?;
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

    fn from_data(ty: EventType, data: serde_json::Value) -> Result<Event, DecodeError> {
        let bad = |e| DecodeError::BadData(ty.as_str(), e);
        Ok(match ty {
            EventType::OrderPlaced => {
                Event::OrderPlaced(serde_json::from_value(data).map_err(bad)?)
            }
            EventType::OrderCancelled => {
                Event::OrderCancelled(serde_json::from_value(data).map_err(bad)?)
            }
            EventType::InvoiceIssued => {
                Event::InvoiceIssued(serde_json::from_value(data).map_err(bad)?)
            }
            EventType::InvoiceVoided => {
                Event::InvoiceVoided(serde_json::from_value(data).map_err(bad)?)
            }
        })
    }
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
/// Version 1 (current).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderPlaced {
    pub order_id: Uuid,
    pub customer_id: String,
    pub currency: Currency,
    /// At least one line, all in `currency`.
    pub lines: Vec<OrderLine>,
}

impl Payload for OrderPlaced {
    const TYPE: EventType = EventType::OrderPlaced;
    const VERSION: u32 = 1;
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderLine {
    pub sku: String,
    #[schemars(range(min = 1))]
    pub quantity: u32,
    /// The price of one unit, in the order's currency.
    pub unit_price_minor: MinorUnits,
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

    fn placed() -> Event {
        Event::OrderPlaced(OrderPlaced {
            order_id: Uuid::now_v7(),
            customer_id: "c-1".into(),
            currency: "EUR".parse().expect("EUR"),
            lines: vec![OrderLine {
                sku: "SKU-1".into(),
                quantity: 2,
                unit_price_minor: MinorUnits::try_from(1999).expect("valid"),
            }],
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
    fn unknown_types_and_future_versions_are_refused() {
        let mut env = Envelope::new(Service::Order, &placed(), "c");
        env.event_type = "OrderShipped".into();
        assert!(matches!(
            ReceivedEvent::decode(env),
            Err(DecodeError::UnknownType(_))
        ));

        let mut env = Envelope::new(Service::Order, &placed(), "c");
        env.dataversion = 2;
        assert!(matches!(
            ReceivedEvent::decode(env),
            Err(DecodeError::UnsupportedVersion { .. })
        ));
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
