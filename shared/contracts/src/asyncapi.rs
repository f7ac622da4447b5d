//! The AsyncAPI 3.0 document of every channel and every message version,
//! rendered from the topology and the event schemas.
//!
//! It is what a team consuming these events asks for, in the form AsyncAPI
//! tools (validators, documentation and code generators) read. It is committed
//! as `contracts/asyncapi.json` beside the JSON Schemas and, like them, is an
//! output: [`REGENERATE`] rewrites it, the drift test fails when it and the
//! code part, and `scripts/hygiene.sh` validates it with the AsyncAPI CLI.
//!
//! What it holds, and why so:
//! - The standard order chain, the default. The FIFO chain has the same
//!   channels under other addresses, and a deployment runs one chain or the
//!   other; so the FIFO addresses are given in the descriptions, from
//!   `Topology::declare(Chain::Fifo)`, instead of as a second set of channels
//!   a code generator would wire up beside the first.
//! - The payloads refer to the committed schema files by relative path rather
//!   than copying them, so each version has one schema. They are written as
//!   AsyncAPI schemas (the default format, a superset of JSON Schema draft 07)
//!   because that is the format the AsyncAPI validator checks; the files are
//!   draft 2020-12 but use only keywords that read the same in draft 07, which
//!   the test `tests/contracts.rs` holds them to.
//!
//! - `channels`: the channels and operations, from the topology.
//! - `messages`: one message per event type and `dataversion` (payload,
//!   headers, correlation id, example) and the dead-letter messages.
//!
//! The text is deterministic: the top level is a struct in the order readers
//! expect, and everything below it is `serde_json::Value`, whose objects are
//! `BTreeMap`s in this workspace (no `preserve_order`), so their keys are
//! sorted.

mod channels;
mod messages;

use serde::Serialize;
use serde_json::{Value, json};

use crate::topology::{Chain, Topology};

pub use crate::events::schemas::REGENERATE;

/// The document's file, in `events::schemas::FOLDER` beside the schemas.
pub const FILE: &str = "asyncapi.json";

/// The AsyncAPI specification version the document follows.
pub const ASYNCAPI_VERSION: &str = "3.0.0";

/// The keys of `servers`, one per AWS service.
const SNS_SERVER: &str = "sns";
const SQS_SERVER: &str = "sqs";
const EVENTBRIDGE_SERVER: &str = "eventbridge";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    asyncapi: &'static str,
    info: Value,
    servers: Value,
    default_content_type: &'static str,
    channels: Value,
    operations: Value,
    components: Value,
}

/// The file's text: pretty-printed JSON with a final newline. Fails only when
/// a committed example it embeds is not JSON.
pub fn file_contents() -> Result<String, serde_json::Error> {
    let topology = Topology::declare(Chain::Standard);
    let fifo = Topology::declare(Chain::Fifo);
    let document = Document {
        asyncapi: ASYNCAPI_VERSION,
        info: info(&topology, &fifo),
        servers: servers(),
        default_content_type: "application/json",
        channels: channels::channels(&topology, &fifo),
        operations: channels::operations(&topology),
        components: json!({
            "messages": messages::messages(&topology)?,
            "schemas": messages::schemas(),
            "correlationIds": messages::correlation_ids(),
        }),
    };
    let mut text = serde_json::to_string_pretty(&document)?;
    text.push('\n');
    Ok(text)
}

fn info(topology: &Topology, fifo: &Topology) -> Value {
    json!({
        "title": "Order, invoice and notification events",
        "version": env!("CARGO_PKG_VERSION"),
        "license": {"name": env!("CARGO_PKG_LICENSE")},
        "description": description(topology, fifo),
    })
}

/// The document's introduction: what it covers and the delivery guarantees
/// every consumer must design for.
fn description(topology: &Topology, fifo: &Topology) -> String {
    let archives: Vec<String> = topology
        .buses
        .iter()
        .map(|b| {
            format!(
                "the `{}` bus keeps every event in the archive `{}` for {} days, to be replayed",
                b.name, b.archive, b.archive_retention_days
            )
        })
        .collect();
    let archives = and_list(&archives);
    let max_receive_count = topology
        .queues
        .iter()
        .map(|q| q.max_receive_count)
        .max()
        .unwrap_or_default();
    format!(
        "The events the order, invoice and notification services exchange, and every channel \
they travel on: an SNS topic and an EventBridge bus, the SQS queues they feed, and each \
queue's dead-letter queue. Rendered from `shared/contracts` (the topology and the Rust event \
types) by `{REGENERATE}`; do not edit it by hand.

Every event is one JSON envelope with CloudEvents 1.0 attribute names; its `type` and \
`dataversion` name the schema of its `data`. The schemas are the files beside this document \
(`envelope.schema.json`, `<type>.v<dataversion>.schema.json`), referred to by relative path. \
Producers write the newest version of each type; consumers accept every version listed here \
and move any other to the DLQ.

## Delivery guarantees

- **At least once, never exactly once.** An event can arrive more than once: the producers \
publish from a transactional outbox and publish again after a crash between publishing and \
marking the event sent; SNS, EventBridge and SQS redeliver; a DLQ is redriven; and {archives}. \
**Deduplicate on the envelope's `id`**, a UUID v7 the producer gives the event once and every \
copy keeps, never on a broker's message id. This project's consumers record it in an inbox in \
the same transaction as the effect, and delete the message only after that commit.
- **No order.** On the standard chain described here events may arrive in any order, also \
across types (an `OrderCancelled` before its `OrderPlaced`); consumers decide by their own \
state. The FIFO order chain (below) keeps one order's events in order.
- **Dead letters.** Every queue has a dead-letter queue `<queue>-dlq`. A message a consumer \
can never handle (not an envelope; an unknown `type` or `dataversion`; a type or `source` the \
queue must not carry; a handler's refusal) is sent there at once, body and message attributes \
as received, with the reason in the string message attribute `dlq_reason`. A message whose \
handler keeps failing is moved there unchanged by the queue's redrive policy after \
{max_receive_count} receives, without a `dlq_reason`. An event EventBridge could not deliver \
to a rule's queue goes to that queue's DLQ with EventBridge's `ERROR_CODE` and \
`ERROR_MESSAGE` attributes. A redriven message comes back to its queue with its body \
unchanged; a consumer ignores a `dlq_reason` it may still carry.
- **Trace context.** The envelope carries the W3C `traceparent` and `tracestate` of the span \
that published it (CloudEvents Distributed Tracing); on SNS they are also message attributes, \
which raw message delivery keeps on SQS. EventBridge delivers no attributes: read them from \
the envelope in `detail`.

## The FIFO order chain

With `ORDERS_CHAIN=fifo` the order events travel on SNS FIFO and SQS FIFO instead, under \
these addresses; everything else in this document holds. The publisher sets \
`MessageGroupId` to the envelope's `subject` (the order id) and `MessageDeduplicationId` to \
its `id`, so one order's events arrive in the order they were written and a copy published \
again within five minutes is dropped; a message being retried holds back the rest of its \
order's group. The invoice chain stays on EventBridge, which has no FIFO delivery.

{}",
        channels::fifo_addresses(topology, fifo),
    )
}

fn servers() -> Value {
    let region = json!({
        "region": {
            "description": "The AWS region the stack is deployed in: the services' `AWS_REGION` \
                (`us-east-1` with the local emulator).",
            "examples": ["us-east-1"],
        }
    });
    let signed = "Requests are signed with AWS Signature Version 4 (IAM credentials). Locally, \
        the emulator at `AWS_ENDPOINT_URL` stands in for SNS, SQS and EventBridge alike.";
    json!({
        SNS_SERVER: {
            "host": "sns.{region}.amazonaws.com",
            "protocol": "sns",
            "title": "Amazon SNS",
            "description": format!("The SNS API of the account the stack runs in. {signed}"),
            "variables": region,
        },
        SQS_SERVER: {
            "host": "sqs.{region}.amazonaws.com",
            "protocol": "sqs",
            "title": "Amazon SQS",
            "description": format!("The SQS API of the account the stack runs in. {signed}"),
            "variables": region,
        },
        EVENTBRIDGE_SERVER: {
            "host": "events.{region}.amazonaws.com",
            "protocol": "eventbridge",
            "title": "Amazon EventBridge",
            "description": format!(
                "The EventBridge API (`PutEvents`) of the account the stack runs in. Nobody \
                receives from EventBridge directly: its rules deliver to SQS queues. {signed}"
            ),
            "variables": region,
        },
    })
}

/// A reference to the server `key`.
fn server(key: &str) -> Value {
    json!({"$ref": format!("#/servers/{key}")})
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_as_prose() {
        let items = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(and_list(&items(&[])), "");
        assert_eq!(and_list(&items(&["a"])), "a");
        assert_eq!(and_list(&items(&["a", "b"])), "a and b");
        assert_eq!(and_list(&items(&["a", "b", "c"])), "a, b and c");
    }
}
