//! The channels and operations, from the topology.
//!
//! A channel per topic, bus, queue and DLQ, keyed by its name (the standard
//! chain's names have no dots, so they are valid keys and readable
//! references). An operation per thing a service does on a channel: the
//! publisher sends on its topic or bus, each consumer receives from its queue
//! and sends what it refuses to that queue's DLQ. SQS's redrive policy and
//! EventBridge also move messages to a DLQ; they are not services, so they
//! appear in the descriptions, not as operations.

use serde_json::{Map, Value, json};

use super::messages;
use super::{EVENTBRIDGE_SERVER, SNS_SERVER, SQS_SERVER, and_list, server};
use crate::events::EventType;
use crate::service::Service;
use crate::topology::{
    BusSpec, Delivery, QueueSpec, Source, TopicSpec, Topology, filter_policy, rule_pattern,
};

/// The binding versions the AsyncAPI CLI's parser knows (it refuses newer ones).
const SNS_BINDING_VERSION: &str = "0.1.0";
const SQS_BINDING_VERSION: &str = "0.2.0";

pub(super) fn channels(topology: &Topology, fifo: &Topology) -> Value {
    let mut channels = Map::new();
    for topic in &topology.topics {
        channels.insert(
            topic.name.to_string(),
            topic_channel(topology, topic, fifo_topic(fifo, topic)),
        );
    }
    for bus in &topology.buses {
        channels.insert(bus.name.to_string(), bus_channel(topology, bus));
    }
    for queue in &topology.queues {
        let twin = fifo_queue(fifo, queue);
        channels.insert(queue.name.to_string(), queue_channel(queue, twin));
        channels.insert(queue.dlq_name(), dlq_channel(queue, twin));
    }
    Value::Object(channels)
}

pub(super) fn operations(topology: &Topology) -> Value {
    let mut operations = Map::new();
    for topic in &topology.topics {
        let consumers: Vec<Value> = topology
            .subscribers_of(topic.name)
            .map(|queue| {
                json!({
                    "protocol": "sqs",
                    "endpoint": {"name": queue.name},
                    "filterPolicy": filter_policy(queue),
                    "filterPolicyScope": "MessageAttributes",
                    "rawMessageDelivery": queue.delivery() == Delivery::SnsRaw,
                })
            })
            .collect();
        let mut operation = publish(
            topic.publisher,
            topic.name,
            format!(
                "Publishes each event as the raw body of one SNS message, with its type in \
                 the `event_type` message attribute that the subscriptions filter on. {}",
                outbox()
            ),
        );
        operation["bindings"] = json!({
            "sns": {"consumers": consumers, "bindingVersion": SNS_BINDING_VERSION}
        });
        operations.insert(
            format!("{}-sends-to-{}", topic.publisher.name(), topic.name),
            operation,
        );
    }
    for bus in &topology.buses {
        let operation = publish(
            bus.publisher,
            bus.name,
            format!(
                "Puts each event on the bus with `PutEvents`: `Source` `{}`, `DetailType` the \
                 event type, `Detail` the envelope. {}",
                bus.publisher.source(),
                outbox()
            ),
        );
        operations.insert(
            format!("{}-sends-to-{}", bus.publisher.name(), bus.name),
            operation,
        );
    }
    for queue in &topology.queues {
        operations.insert(
            format!("{}-receives-from-{}", queue.consumer.name(), queue.name),
            receive(queue),
        );
        operations.insert(
            format!(
                "{}-dead-letters-to-{}",
                queue.consumer.name(),
                queue.dlq_name()
            ),
            dead_letter(queue),
        );
    }
    Value::Object(operations)
}

/// A table of the addresses that differ on the FIFO order chain.
pub(super) fn fifo_addresses(topology: &Topology, fifo: &Topology) -> String {
    let mut rows = vec![
        "| standard chain (this document) | `ORDERS_CHAIN=fifo` |".to_string(),
        "|---|---|".to_string(),
    ];
    for topic in &topology.topics {
        if let Some(twin) = fifo_topic(fifo, topic) {
            rows.push(format!("| SNS topic `{}` | `{}` |", topic.name, twin.name));
        }
    }
    for queue in &topology.queues {
        if let Some(twin) = fifo_queue(fifo, queue) {
            rows.push(format!("| SQS queue `{}` | `{}` |", queue.name, twin.name));
            rows.push(format!(
                "| SQS queue `{}` | `{}` |",
                queue.dlq_name(),
                twin.dlq_name()
            ));
        }
    }
    rows.join("\n")
}

/// The FIFO chain's counterpart of `topic`, when its address differs.
fn fifo_topic<'a>(fifo: &'a Topology, topic: &TopicSpec) -> Option<&'a TopicSpec> {
    fifo.topics
        .iter()
        .find(|t| t.publisher == topic.publisher)
        .filter(|t| t.name != topic.name)
}

/// The FIFO chain's counterpart of `queue` (same consumer, same kind of
/// source), when its address differs.
fn fifo_queue<'a>(fifo: &'a Topology, queue: &QueueSpec) -> Option<&'a QueueSpec> {
    fifo.queues
        .iter()
        .find(|q| q.consumer == queue.consumer && q.delivery() == queue.delivery())
        .filter(|q| q.name != queue.name)
}

fn topic_channel(topology: &Topology, topic: &TopicSpec, twin: Option<&TopicSpec>) -> Value {
    let subscribers: Vec<String> = topology
        .subscribers_of(topic.name)
        .map(|q| format!("`{}` ({})", q.name, type_list(q.event_types)))
        .collect();
    let mut description = format!(
        "The SNS {} topic the {} service publishes its events on. It fans them out, with raw \
         message delivery and a filter policy on the `event_type` message attribute, to the \
         SQS queues {}.",
        if topic.fifo { "FIFO" } else { "standard" },
        topic.publisher.name(),
        and_list(&subscribers),
    );
    if let Some(twin) = twin {
        description.push_str(&format!(
            "\n\nWith `ORDERS_CHAIN=fifo` it is the SNS FIFO topic `{}`.",
            twin.name
        ));
    }
    json!({
        "address": topic.name,
        "title": format!("SNS topic {}", topic.name),
        "description": description,
        "servers": [server(SNS_SERVER)],
        "messages": channel_messages(&published_by(topic.publisher)),
        "bindings": {
            "sns": {
                "name": topic.name,
                "ordering": {"type": if topic.fifo { "FIFO" } else { "standard" }},
                "bindingVersion": SNS_BINDING_VERSION,
            }
        },
    })
}

fn bus_channel(topology: &Topology, bus: &BusSpec) -> Value {
    let rules: Vec<Value> = topology
        .rule_targets_on(bus.name)
        .filter_map(|queue| match queue.source {
            Source::Rule { rule, .. } => Some(json!({
                "name": rule,
                "eventPattern": rule_pattern(queue),
                "target": queue.name,
                "deadLetterQueue": queue.dlq_name(),
            })),
            Source::Subscription { .. } => None,
        })
        .collect();
    let targets: Vec<String> = topology
        .rule_targets_on(bus.name)
        .map(|q| format!("`{}` ({})", q.name, type_list(q.event_types)))
        .collect();
    json!({
        "address": bus.name,
        "title": format!("EventBridge bus {}", bus.name),
        "description": format!(
            "The EventBridge bus the {} service publishes its events on. One rule per \
             consuming queue (in `x-eventbridge-rules`) matches the events by `source` and \
             `detail-type` and delivers each, as the EventBridge event with the envelope in \
             `detail`, to the SQS queues {}; an event EventBridge cannot deliver goes to the \
             target queue's DLQ. The archive `{}` keeps every event for {} days, so a time \
             window can be replayed onto the bus: replayed events keep their envelope `id`.",
            bus.publisher.name(),
            and_list(&targets),
            bus.archive,
            bus.archive_retention_days,
        ),
        "servers": [server(EVENTBRIDGE_SERVER)],
        "messages": channel_messages(&published_by(bus.publisher)),
        "x-eventbridge-rules": rules,
        "x-eventbridge-archive": {
            "name": bus.archive,
            "retentionDays": bus.archive_retention_days,
        },
    })
}

fn queue_channel(queue: &QueueSpec, twin: Option<&QueueSpec>) -> Value {
    let source = match queue.source {
        Source::Subscription { topic } => format!(
            "from its subscription to the SNS topic `{topic}`, with raw message delivery: the \
             body is the envelope, and the SNS message attributes are SQS message attributes"
        ),
        Source::Rule { bus, rule } => format!(
            "from the rule `{rule}` on the EventBridge bus `{bus}`: the body is the \
             EventBridge event, with the envelope in `detail`, and carries no message attributes"
        ),
    };
    let mut description = format!(
        "The {} service's queue of {} events, {source}. A message still not handled after {} \
         receives moves to `{}`.",
        queue.consumer.name(),
        type_list(queue.event_types),
        queue.max_receive_count,
        queue.dlq_name(),
    );
    if let Some(twin) = twin {
        description.push_str(&format!(
            "\n\nWith `ORDERS_CHAIN=fifo` it is the SQS FIFO queue `{}`.",
            twin.name
        ));
    }
    json!({
        "address": queue.name,
        "title": format!("SQS queue {}", queue.name),
        "description": description,
        "servers": [server(SQS_SERVER)],
        "messages": channel_messages(queue.event_types),
        "bindings": {
            "sqs": {
                "queue": {
                    "name": queue.name,
                    "fifoQueue": queue.fifo,
                    "visibilityTimeout": queue.visibility_timeout_secs,
                    "redrivePolicy": {
                        "deadLetterQueue": {"name": queue.dlq_name()},
                        "maxReceiveCount": queue.max_receive_count,
                    },
                },
                "deadLetterQueue": {"name": queue.dlq_name(), "fifoQueue": queue.fifo},
                "bindingVersion": SQS_BINDING_VERSION,
            }
        },
    })
}

fn dlq_channel(queue: &QueueSpec, twin: Option<&QueueSpec>) -> Value {
    let mut description = format!(
        "The dead-letter queue of `{}`. The {} service sends here at once, as received and \
         with a `dlq_reason` attribute, a message it can never handle; the redrive policy \
         moves here, unchanged, one not handled within {} receives.",
        queue.name,
        queue.consumer.name(),
        queue.max_receive_count,
    );
    if queue.delivery() == Delivery::EventBridge {
        description.push_str(
            " EventBridge sends here an event it could not deliver to the queue, with its \
             `ERROR_CODE` and `ERROR_MESSAGE` attributes.",
        );
    }
    description.push_str(&format!(
        " The operator tool `ops` (crate `infra`) lists it with `ops dlq list --queue {0}` \
         and moves its messages back with `ops dlq redrive --queue {0}` once the cause is \
         fixed.",
        queue.name
    ));
    if let Some(twin) = twin {
        description.push_str(&format!(
            "\n\nWith `ORDERS_CHAIN=fifo` it is the SQS FIFO queue `{}`.",
            twin.dlq_name()
        ));
    }
    json!({
        "address": queue.dlq_name(),
        "title": format!("SQS dead-letter queue {}", queue.dlq_name()),
        "description": description,
        "servers": [server(SQS_SERVER)],
        "messages": dead_letter_messages(queue.delivery()),
        "bindings": {
            "sqs": {
                "queue": {"name": queue.dlq_name(), "fifoQueue": queue.fifo},
                "bindingVersion": SQS_BINDING_VERSION,
            }
        },
    })
}

fn publish(publisher: Service, channel: &str, description: String) -> Value {
    let types = published_by(publisher);
    json!({
        "action": "send",
        "channel": channel_ref(channel),
        "title": format!("The {} service publishes its events", publisher.name()),
        "summary": format!(
            "{} on `{channel}`, at the version producers write today.",
            type_list(&types)
        ),
        "description": description,
        "messages": operation_messages(channel, &types, true),
        "tags": [{"name": publisher.source()}],
    })
}

fn outbox() -> &'static str {
    "Each event is written to the service's outbox in the transaction of the state change and \
     published after the commit, at least once. Only the current `dataversion` of each type is \
     written; the channel also lists the older versions that may still be in flight."
}

fn receive(queue: &QueueSpec) -> Value {
    json!({
        "action": "receive",
        "channel": channel_ref(queue.name),
        "title": format!("The {} service consumes {}", queue.consumer.name(), queue.name),
        "summary": format!(
            "{} events, every version consumers accept.",
            type_list(queue.event_types)
        ),
        "description": format!(
            "Long polling. For each message: decode the envelope and check its `type`, \
             `dataversion` and `source` (`{}`); record the envelope `id` in the inbox and apply \
             the event in one transaction, so a duplicate changes nothing; delete the message \
             only after the commit. A message that can never succeed is sent to `{}` with a \
             `dlq_reason`; one whose handler fails is received again after its visibility \
             timeout.",
            queue.expected_source().source(),
            queue.dlq_name(),
        ),
        "messages": operation_messages(queue.name, queue.event_types, false),
        "tags": [{"name": queue.consumer.source()}],
    })
}

fn dead_letter(queue: &QueueSpec) -> Value {
    let dlq = queue.dlq_name();
    let mut description = format!(
        "A message from `{}` that can never succeed (not an envelope; an unknown type or \
         version; a type or source this queue must not carry; a handler's refusal) is sent \
         here with its body and message attributes as received, plus `dlq_reason`, then \
         deleted from `{}`.",
        queue.name, queue.name
    );
    if queue.fifo {
        description.push_str(
            " On a FIFO queue it keeps the message's group id and deduplicates on the SQS \
             message id.",
        );
    }
    json!({
        "action": "send",
        "channel": channel_ref(&dlq),
        "title": format!(
            "The {} service dead-letters what it refuses from {}",
            queue.consumer.name(),
            queue.name
        ),
        "summary": "A message that can never succeed, with the reason in `dlq_reason`.",
        "description": description,
        "messages": [{
            "$ref": format!(
                "#/channels/{dlq}/messages/{}",
                messages::dead_letter_key(queue.delivery())
            )
        }],
        "tags": [{"name": queue.consumer.source()}],
    })
}

/// The event types `service` publishes.
fn published_by(service: Service) -> Vec<EventType> {
    EventType::ALL
        .into_iter()
        .filter(|t| t.publisher() == service)
        .collect()
}

fn channel_ref(channel: &str) -> Value {
    json!({"$ref": format!("#/channels/{channel}")})
}

/// A channel's messages: every version of each type, as references to the
/// components.
fn channel_messages(types: &[EventType]) -> Value {
    let mut messages = Map::new();
    for key in message_keys(types, false) {
        messages.insert(
            key.clone(),
            json!({"$ref": format!("#/components/messages/{key}")}),
        );
    }
    Value::Object(messages)
}

fn dead_letter_messages(delivery: Delivery) -> Value {
    let key = messages::dead_letter_key(delivery);
    json!({key: {"$ref": format!("#/components/messages/{key}")}})
}

/// An operation's messages: references to those of its channel; with
/// `current_only`, only the version producers write of each type.
fn operation_messages(channel: &str, types: &[EventType], current_only: bool) -> Value {
    message_keys(types, current_only)
        .into_iter()
        .map(|key| json!({"$ref": format!("#/channels/{channel}/messages/{key}")}))
        .collect()
}

fn message_keys(types: &[EventType], current_only: bool) -> Vec<String> {
    types
        .iter()
        .flat_map(|&t| {
            messages::versions(t)
                .into_iter()
                .filter(move |&v| !current_only || v == t.current_version())
                .map(move |v| messages::key(t, v))
        })
        .collect()
}

fn type_list(types: &[EventType]) -> String {
    let names: Vec<String> = types.iter().map(|t| format!("`{}`", t.as_str())).collect();
    and_list(&names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Chain;

    #[test]
    fn the_fifo_table_names_every_order_chain_address_and_nothing_of_the_invoice_chain() {
        let table = fifo_addresses(
            &Topology::declare(Chain::Standard),
            &Topology::declare(Chain::Fifo),
        );
        let fifo = Topology::declare(Chain::Fifo);
        assert!(table.contains(&format!("`{}`", fifo.topics[0].name)));
        for queue in fifo.queues.iter().filter(|q| q.fifo) {
            assert!(table.contains(&format!("`{}`", queue.name)), "{table}");
            assert!(
                table.contains(&format!("`{}`", queue.dlq_name())),
                "{table}"
            );
        }
        assert!(!table.contains("invoices"), "{table}");
    }

    #[test]
    fn a_publisher_sends_only_the_versions_producers_write() {
        let keys = message_keys(&[EventType::OrderPlaced], true);
        assert_eq!(keys, ["OrderPlaced.v2"]);
        let keys = message_keys(&[EventType::OrderPlaced, EventType::OrderCancelled], false);
        assert_eq!(
            keys,
            ["OrderPlaced.v1", "OrderPlaced.v2", "OrderCancelled.v1"]
        );
    }
}
