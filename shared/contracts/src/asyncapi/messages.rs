//! The messages: one per event type and `dataversion`, and one per kind of
//! dead letter.
//!
//! An event's message is shaped by the channel its publisher uses. On SNS
//! (raw delivery) the body is the envelope and the type travels again in the
//! `event_type` message attribute; on EventBridge the queue receives
//! EventBridge's event with the envelope as its `detail`, and no attributes.
//! Either way the payload is the envelope with `source`, `type` and
//! `dataversion` fixed and `data` referring to that version's committed
//! schema, and the example is the committed example envelope.

use serde_json::{Map, Value, json};

use crate::events::EventType;
use crate::events::schemas::{self, Contract, ENVELOPE_FILE};
use crate::topology::{Channel, Delivery, EVENT_TYPE_ATTRIBUTE, Topology};

/// The attribute the consumer adds when it dead-letters a message; the same
/// name as `aws_adapter::sqs::DLQ_REASON_ATTRIBUTE`, which this crate cannot
/// import (that crate is below it).
const DLQ_REASON_ATTRIBUTE: &str = "dlq_reason";

/// The committed example envelopes, by file stem, read at compile time so that
/// rendering stays pure. A version without one here gets no example, and the
/// test that every message has one fails.
macro_rules! examples {
    ($($stem:literal),* $(,)?) => {
        &[$((
            $stem,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"), "/../../contracts/examples/", $stem, ".json"
            )),
        )),*]
    };
}
const EXAMPLES: &[(&str, &str)] = examples![
    "order-placed.v1",
    "order-placed.v2",
    "order-cancelled.v1",
    "invoice-issued.v1",
    "invoice-voided.v1",
];

/// The key of an event version's message, such as `OrderPlaced.v2`.
pub(super) fn key(event_type: EventType, version: u32) -> String {
    format!("{}.v{version}", event_type.as_str())
}

/// Every version of `event_type` that has a schema, oldest first.
pub(super) fn versions(event_type: EventType) -> Vec<u32> {
    schemas::all()
        .into_iter()
        .filter_map(|c| c.payload_of)
        .filter(|(t, _)| *t == event_type)
        .map(|(_, v)| v)
        .collect()
}

/// The key of the message a DLQ holds, which depends on what fed its queue.
pub(super) fn dead_letter_key(delivery: Delivery) -> &'static str {
    match delivery {
        Delivery::SnsRaw => "DeadLetterFromSns",
        Delivery::EventBridge => "DeadLetterFromEventBridge",
    }
}

/// The key of the schema of an event version's `data`, such as `OrderPlaced.v2.data`.
fn data_schema_key(event_type: EventType, version: u32) -> String {
    format!("{}.data", key(event_type, version))
}

pub(super) fn messages(topology: &Topology) -> Result<Value, serde_json::Error> {
    let mut messages = Map::new();
    for contract in schemas::all() {
        if let Some((event_type, version)) = contract.payload_of {
            messages.insert(
                key(event_type, version),
                event_message(topology, &contract, event_type, version)?,
            );
        }
    }
    for delivery in [Delivery::SnsRaw, Delivery::EventBridge] {
        messages.insert(
            dead_letter_key(delivery).to_string(),
            dead_letter_message(delivery),
        );
    }
    Ok(Value::Object(messages))
}

/// The schemas the messages refer to: the committed files by relative path,
/// and EventBridge's event.
pub(super) fn schemas() -> Value {
    let mut schemas = Map::new();
    schemas.insert(
        "Envelope".into(),
        json!({"$ref": format!("./{ENVELOPE_FILE}")}),
    );
    schemas.insert("EventBridgeEvent".into(), eventbridge_event());
    for contract in schemas::all() {
        if let Some((event_type, version)) = contract.payload_of {
            schemas.insert(
                data_schema_key(event_type, version),
                json!({"$ref": format!("./{}", contract.file_name)}),
            );
        }
    }
    Value::Object(schemas)
}

pub(super) fn correlation_ids() -> Value {
    let description = "The envelope's `correlationid`: the same on every event of one order's \
        journey (today the order's id), so one order's events can be followed across services.";
    json!({
        "envelope": {"description": description, "location": "$message.payload#/correlationid"},
        "eventBridgeDetail": {
            "description": description,
            "location": "$message.payload#/detail/correlationid",
        },
    })
}

fn event_message(
    topology: &Topology,
    contract: &Contract,
    event_type: EventType,
    version: u32,
) -> Result<Value, serde_json::Error> {
    let about = contract
        .schema
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let summary = about
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .replace('\n', " ");
    let queues: Vec<String> = topology
        .queues
        .iter()
        .filter(|q| q.event_types.contains(&event_type))
        .map(|q| format!("`{}`", q.name))
        .collect();
    let envelope = envelope_of(event_type, version);
    let stem = schemas::file_stem(event_type, version);
    let example = EXAMPLES
        .iter()
        .find(|(s, _)| *s == stem)
        .map(|(_, text)| serde_json::from_str::<Value>(text))
        .transpose()?;
    let mut message = json!({
        "name": event_type.as_str(),
        "title": format!("{}, dataversion {version}", event_type.as_str()),
        "summary": summary,
        "contentType": "application/json",
    });
    let channel = topology.channel_of(event_type.publisher());
    let current = event_type.current_version();
    let status = if version == current {
        "Producers write this version.".to_string()
    } else {
        let kept = match channel {
            Some(Channel::Bus(_)) => "a queue, a DLQ or the bus archive",
            _ => "a queue or a DLQ",
        };
        format!(
            "Producers no longer write this version (they write `{}`); consumers still accept \
             it, because an event written before can wait in {kept} and come back.",
            key(event_type, current)
        )
    };
    let (travel, example) = match channel {
        Some(Channel::Topic(topic)) => {
            message["payload"] = envelope;
            message["headers"] = sns_attributes(event_type);
            message["correlationId"] = json!({"$ref": "#/components/correlationIds/envelope"});
            let travel = format!(
                "Published by the {} service on the SNS topic `{}` and received from {} with raw \
                 message delivery: the body is the envelope, the message attributes are the \
                 headers.",
                topic.publisher.name(),
                topic.name,
                super::and_list(&queues),
            );
            let example = example.map(|payload| {
                json!({
                    "name": stem,
                    "summary": format!("contracts/examples/{stem}.json, as its producer wrote it"),
                    "headers": {EVENT_TYPE_ATTRIBUTE: event_type.as_str()},
                    "payload": payload,
                })
            });
            (travel, example)
        }
        Some(Channel::Bus(bus)) => {
            message["payload"] = json!({"allOf": [
                {"$ref": "#/components/schemas/EventBridgeEvent"},
                {
                    "type": "object",
                    "properties": {
                        "source": {"const": bus.publisher.source()},
                        "detail-type": {"const": event_type.as_str()},
                        "detail": envelope,
                    },
                },
            ]});
            message["correlationId"] =
                json!({"$ref": "#/components/correlationIds/eventBridgeDetail"});
            let travel = format!(
                "Published by the {} service on the EventBridge bus `{}` (`Source` `{}`, \
                 `DetailType` `{}`, `Detail` the envelope) and delivered by its rules to {} as \
                 the EventBridge event, with the envelope in `detail` and no message attributes.",
                bus.publisher.name(),
                bus.name,
                bus.publisher.source(),
                event_type.as_str(),
                super::and_list(&queues),
            );
            let example = example.map(|detail| {
                json!({
                    "name": stem,
                    "summary": format!(
                        "contracts/examples/{stem}.json as a queue receives it; EventBridge's \
                         own fields (id, account, region, time) are illustrative"
                    ),
                    "payload": {
                        "version": "0",
                        "id": "6a7e3b1c-5f0d-4c2e-9a8b-7d6c5e4f3a2b",
                        "detail-type": event_type.as_str(),
                        "source": bus.publisher.source(),
                        "account": "123456789012",
                        "time": detail["time"].clone(),
                        "region": "us-east-1",
                        "resources": [],
                        "detail": detail,
                    },
                })
            });
            (travel, example)
        }
        None => (String::new(), None),
    };
    message["description"] = Value::from(
        [about, &travel, &status]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("\n\n"),
    );
    if let Some(example) = example {
        message["examples"] = json!([example]);
    }
    Ok(message)
}

/// The envelope of one event version: `source`, `type` and `dataversion`
/// fixed, `data` that version's schema.
fn envelope_of(event_type: EventType, version: u32) -> Value {
    json!({"allOf": [
        {"$ref": "#/components/schemas/Envelope"},
        {
            "type": "object",
            "properties": {
                "source": {"const": event_type.publisher().source()},
                "type": {"const": event_type.as_str()},
                "dataversion": {"const": version},
                "data": {
                    "$ref": format!(
                        "#/components/schemas/{}",
                        data_schema_key(event_type, version)
                    )
                },
            },
        },
    ]})
}

/// The SNS message attributes an event is published with (all of data type
/// `String`), which raw message delivery keeps as SQS message attributes.
fn sns_attributes(event_type: EventType) -> Value {
    json!({
        "type": "object",
        "description": "SNS message attributes of data type String; with raw message delivery \
            the queue's messages carry them as SQS message attributes.",
        "properties": {
            EVENT_TYPE_ATTRIBUTE: {
                "type": "string",
                "const": event_type.as_str(),
                "description": "The envelope's `type`, which the subscriptions' filter \
                    policies match on.",
            },
            "traceparent": trace_attribute("traceparent"),
            "tracestate": trace_attribute("tracestate"),
        },
        "required": [EVENT_TYPE_ATTRIBUTE],
    })
}

fn trace_attribute(name: &str) -> Value {
    json!({
        "type": "string",
        "description": format!(
            "The envelope's `{name}` (W3C Trace Context), when it has one: a consumer can \
             continue the trace without parsing the body."
        ),
    })
}

fn dead_letter_message(delivery: Delivery) -> Value {
    let reason = json!({
        "type": "string",
        "description": "Why the consumer refused the message, such as \"unknown event type \
            'OrderShipped'\". Absent when the redrive policy or EventBridge moved it.",
    });
    let (title, body, headers) = match delivery {
        Delivery::SnsRaw => (
            "A dead letter from a queue fed by SNS",
            "The body as the queue received it: normally an order event envelope, but anything \
             when it was refused for not being one (an empty body is sent as `(empty body)`).",
            json!({
                DLQ_REASON_ATTRIBUTE: reason,
                EVENT_TYPE_ATTRIBUTE: {"type": "string", "description": "As the message arrived."},
                "traceparent": {"type": "string", "description": "As the message arrived."},
                "tracestate": {"type": "string", "description": "As the message arrived."},
            }),
        ),
        Delivery::EventBridge => (
            "A dead letter from a queue fed by an EventBridge rule",
            "The body as the queue received it, or as EventBridge failed to deliver it: \
             normally an EventBridge event with an invoice event envelope in `detail`, but \
             anything when it was refused for not being one.",
            json!({
                DLQ_REASON_ATTRIBUTE: reason,
                "ERROR_CODE": {
                    "type": "string",
                    "description": "Set by EventBridge when it could not deliver the event \
                        to the queue.",
                },
                "ERROR_MESSAGE": {
                    "type": "string",
                    "description": "Set by EventBridge with `ERROR_CODE`.",
                },
            }),
        ),
    };
    json!({
        "name": "DeadLetter",
        "title": title,
        "summary": "A message its queue's consumer could not handle, kept for inspection \
            and redrive.",
        "description": "Every attribute is a string message attribute, and each may be absent: \
            which ones a dead letter carries says how it got here (see the DLQ channel).",
        "contentType": "application/json",
        "headers": {"type": "object", "properties": headers},
        "payload": {"description": body},
    })
}

/// EventBridge's event as a rule's SQS target receives it. Consumers read
/// only `detail` (the emulator leaves some of the other fields out).
fn eventbridge_event() -> Value {
    json!({
        "title": "EventBridge event",
        "description": "An event as EventBridge delivers it to a rule's target queue: \
            EventBridge's fields around the envelope, which is `detail`. Consumers read only \
            `detail`.",
        "type": "object",
        "properties": {
            "version": {"type": "string", "description": "EventBridge's event format, \"0\"."},
            "id": {
                "type": "string",
                "description": "EventBridge's id of this event, not the envelope's: \
                    deduplicate on `detail.id`.",
            },
            "detail-type": {"type": "string", "description": "The event type, as `detail.type`."},
            "source": {
                "type": "string",
                "description": "The publishing service, as `detail.source`.",
            },
            "account": {"type": "string"},
            "time": {"type": "string", "format": "date-time"},
            "region": {"type": "string"},
            "resources": {"type": "array", "items": {"type": "string"}},
            "detail": {"description": "The envelope."},
        },
        "required": ["detail-type", "source", "detail"],
    })
}
