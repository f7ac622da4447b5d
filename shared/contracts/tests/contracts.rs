//! The committed contracts under `contracts/` held against the Rust types.
//!
//! The schemas must be exactly what the types generate, so a change to an event
//! type cannot ship without its schema (and cannot silently alter a superseded
//! version). Every version consumers accept has an example envelope, written as
//! its producers wrote it, and each must still decode into the current types
//! with the values it carries.
//!
//! The AsyncAPI document must be exactly what the topology and the schemas
//! render; it must refer only to committed schemas, carry every accepted
//! version with its example, and read those schemas as they mean.

use std::fs;
use std::path::{Path, PathBuf};

use contracts::Service;
use contracts::asyncapi;
use contracts::events::schemas::{self, Contract};
use contracts::events::{
    Envelope, Event, EventType, InvoiceIssued, InvoiceVoided, OrderCancelled, OrderLine,
    OrderPlaced, ReceivedEvent,
};
use contracts::money::MinorUnits;
use contracts::topology::{Chain, Topology};
use serde_json::Value;
use uuid::Uuid;

const ORDER_ID: &str = "0195606f-e29d-7a1c-83e5-f7092b4d6f8a";
const INVOICE_ID: &str = "0195606f-e7e8-7b2d-84f6-081a3c5e7f9b";

fn contracts_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .join(schemas::FOLDER)
}

fn examples_folder() -> PathBuf {
    contracts_folder().join("examples")
}

/// The names of the files in `folder` that end with `suffix`, sorted.
fn file_names(folder: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(folder)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", folder.display()))
        .map(|entry| entry.expect("a directory entry").file_name())
        .filter_map(|name| name.into_string().ok())
        .filter(|name| name.ends_with(suffix))
        .collect();
    names.sort();
    names
}

/// Why the committed file `file_name` differs from the `generated` text, or
/// `None` when it does not. Line endings are ignored, so a checkout with CRLF
/// still passes.
fn drift(file_name: &str, generated: &str, folder: &Path) -> Option<String> {
    let name = format!("{}/{file_name}", schemas::FOLDER);
    let committed = match fs::read_to_string(folder.join(file_name)) {
        Ok(text) => text.replace("\r\n", "\n"),
        Err(e) => return Some(format!("{name} cannot be read: {e}")),
    };
    if committed == generated {
        return None;
    }
    let first_difference = committed
        .lines()
        .zip(generated.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
    Some(format!(
        "{name} differs from what the code generates, from line {}:\n      committed: {}\n      generated: {}",
        first_difference + 1,
        committed
            .lines()
            .nth(first_difference)
            .unwrap_or("<end of file>"),
        generated
            .lines()
            .nth(first_difference)
            .unwrap_or("<end of file>"),
    ))
}

fn schema_drift(contract: &Contract, folder: &Path) -> Option<String> {
    let generated = contract.file_contents().expect("a schema serialises");
    drift(&contract.file_name, &generated, folder)
}

fn decode_example(stem: &str) -> ReceivedEvent {
    let path = examples_folder().join(format!("{stem}.json"));
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let envelope: Envelope = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{stem}.json is not an envelope: {e}"));
    ReceivedEvent::decode(envelope).unwrap_or_else(|e| panic!("{stem}.json does not decode: {e}"))
}

fn uuid(s: &str) -> Uuid {
    s.parse().expect("a UUID")
}

fn minor(amount: i64) -> MinorUnits {
    MinorUnits::try_from(amount).expect("a valid amount")
}

fn example_lines() -> Vec<OrderLine> {
    vec![
        OrderLine {
            sku: "BOOK-42".into(),
            quantity: 2,
            unit_price_minor: minor(1999),
        },
        OrderLine {
            sku: "PEN-7".into(),
            quantity: 3,
            unit_price_minor: minor(150),
        },
    ]
}

#[test]
fn every_committed_schema_matches_the_rust_types() {
    let folder = contracts_folder();
    let drifted: Vec<String> = schemas::all()
        .iter()
        .filter_map(|contract| schema_drift(contract, &folder))
        .collect();
    assert!(
        drifted.is_empty(),
        "the committed contracts no longer match the Rust types:\n  - {}\n\
         Regenerate them with `{}` and commit the result. A superseded version's \
         schema must not change: give the changed payload a new dataversion instead \
         (see contracts/README.md).",
        drifted.join("\n  - "),
        schemas::REGENERATE,
    );
}

#[test]
fn every_committed_schema_is_generated_by_a_type() {
    let generated: Vec<String> = schemas::all().into_iter().map(|c| c.file_name).collect();
    let orphans: Vec<String> = file_names(&contracts_folder(), ".schema.json")
        .into_iter()
        .filter(|name| !generated.contains(name))
        .collect();
    assert!(
        orphans.is_empty(),
        "no Rust type generates {orphans:?}: delete the file(s), or restore the type \
         if consumers still accept that version, then run `{}`",
        schemas::REGENERATE,
    );
}

#[test]
fn every_version_consumers_accept_has_a_schema_and_an_example() {
    let schemas: Vec<String> = schemas::all().into_iter().map(|c| c.file_name).collect();
    let examples = file_names(&examples_folder(), ".json");
    for event_type in EventType::ALL {
        for version in 1..=event_type.current_version() {
            let schema = schemas::schema_file(event_type, version);
            assert!(schemas.contains(&schema), "no type generates {schema}");
            let example = format!("{}.json", schemas::file_stem(event_type, version));
            assert!(
                examples.contains(&example),
                "contracts/examples/{example} is missing"
            );
        }
    }
}

#[test]
fn every_example_decodes_as_the_type_and_version_its_file_is_named_after() {
    for name in file_names(&examples_folder(), ".json") {
        let path = examples_folder().join(&name);
        let text = fs::read_to_string(&path).expect("a readable example");
        let envelope: Envelope =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let event_type = EventType::parse(&envelope.event_type)
            .unwrap_or_else(|| panic!("{name}: unknown type {}", envelope.event_type));
        let expected = format!(
            "{}.json",
            schemas::file_stem(event_type, envelope.dataversion)
        );
        assert_eq!(
            name, expected,
            "an example is named after its type and version"
        );
        let received = ReceivedEvent::decode(envelope).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(received.event.event_type(), event_type);
    }
}

#[test]
fn an_order_placed_v1_decodes_with_the_total_of_its_lines() {
    let received = decode_example("order-placed.v1");
    assert_eq!(
        received.event,
        Event::OrderPlaced(OrderPlaced {
            order_id: uuid(ORDER_ID),
            customer_id: "alice".into(),
            currency: "EUR".parse().expect("EUR"),
            lines: example_lines(),
            total_minor: minor(2 * 1999 + 3 * 150),
        })
    );
    assert_eq!(received.id, uuid("0195606f-e29d-7c3e-8507-1a2b4c6d8e0f"));
    assert_eq!(received.source, "order-service");
    assert_eq!(received.correlation_id, ORDER_ID);
}

#[test]
fn an_order_placed_v2_decodes_with_the_total_its_producer_wrote() {
    let received = decode_example("order-placed.v2");
    assert_eq!(
        received.event,
        Event::OrderPlaced(OrderPlaced {
            order_id: uuid(ORDER_ID),
            customer_id: "alice".into(),
            currency: "EUR".parse().expect("EUR"),
            lines: example_lines(),
            total_minor: minor(4448),
        })
    );
}

#[test]
fn the_same_order_decodes_alike_from_version_1_and_version_2() {
    assert_eq!(
        decode_example("order-placed.v1").event,
        decode_example("order-placed.v2").event
    );
}

#[test]
fn the_other_events_decode_with_their_values() {
    let expected = [
        (
            "order-cancelled.v1",
            Event::OrderCancelled(OrderCancelled {
                order_id: uuid(ORDER_ID),
                customer_id: "alice".into(),
            }),
        ),
        (
            "invoice-issued.v1",
            Event::InvoiceIssued(InvoiceIssued {
                invoice_id: uuid(INVOICE_ID),
                order_id: uuid(ORDER_ID),
                customer_id: "alice".into(),
                total_minor: minor(4448),
                currency: "EUR".parse().expect("EUR"),
            }),
        ),
        (
            "invoice-voided.v1",
            Event::InvoiceVoided(InvoiceVoided {
                invoice_id: uuid(INVOICE_ID),
                order_id: uuid(ORDER_ID),
                customer_id: "alice".into(),
            }),
        ),
    ];
    for (stem, event) in expected {
        let received = decode_example(stem);
        assert_eq!(received.event, event, "{stem}");
        assert_eq!(received.correlation_id, ORDER_ID, "{stem}");
    }
}

// --- The AsyncAPI document ---------------------------------------------------

fn committed_asyncapi() -> Value {
    let path = contracts_folder().join(asyncapi::FILE);
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", asyncapi::FILE))
}

/// Every string value of a `$ref` anywhere in `value`.
fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(target)) => found.push(target.clone()),
                    _ => references(inner, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, found)),
        _ => {}
    }
}

/// The references of an operation's `messages`, in order.
fn message_refs(operation: &Value) -> Vec<String> {
    operation["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("an operation without messages: {operation}"))
        .iter()
        .map(|m| m["$ref"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn the_committed_asyncapi_document_matches_the_topology_and_the_schemas() {
    let generated = asyncapi::file_contents().expect("the AsyncAPI document renders");
    if let Some(drifted) = drift(asyncapi::FILE, &generated, &contracts_folder()) {
        panic!(
            "the committed AsyncAPI document no longer matches the code:\n  - {drifted}\n\
             Regenerate it with `{}` and commit the result.",
            asyncapi::REGENERATE,
        );
    }
}

#[test]
fn every_reference_inside_the_asyncapi_document_resolves() {
    let document = committed_asyncapi();
    let mut found = Vec::new();
    references(&document, &mut found);
    let dangling: Vec<&String> = found
        .iter()
        .filter(|r| r.starts_with('#'))
        .filter(|r| document.pointer(&r[1..]).is_none())
        .collect();
    assert!(dangling.is_empty(), "dangling references: {dangling:?}");
}

#[test]
fn every_file_the_asyncapi_document_refers_to_is_a_committed_schema() {
    let mut found = Vec::new();
    references(&committed_asyncapi(), &mut found);
    let schema_files: Vec<String> = schemas::all().into_iter().map(|c| c.file_name).collect();
    let files: Vec<&str> = found
        .iter()
        .filter(|r| !r.starts_with('#'))
        .map(|r| r.strip_prefix("./").unwrap_or(r))
        .collect();
    for file in &files {
        assert!(
            schema_files.iter().any(|f| f == file),
            "{} refers to {file}, which no type generates",
            asyncapi::FILE
        );
    }
    for schema in &schema_files {
        assert!(
            files.contains(&schema.as_str()),
            "{} does not refer to {schema}",
            asyncapi::FILE
        );
    }
}

#[test]
fn every_version_consumers_accept_is_a_message_with_its_committed_example() {
    let document = committed_asyncapi();
    for event_type in EventType::ALL {
        for version in 1..=event_type.current_version() {
            let key = format!("{}.v{version}", event_type.as_str());
            let message = &document["components"]["messages"][&key];
            assert_eq!(message["name"], event_type.as_str(), "{key}");
            let payload = &message["examples"][0]["payload"];
            // On EventBridge the envelope is the event's `detail`.
            let envelope = payload.get("detail").unwrap_or(payload);
            let stem = schemas::file_stem(event_type, version);
            let path = examples_folder().join(format!("{stem}.json"));
            let committed: Value =
                serde_json::from_str(&fs::read_to_string(&path).expect("a readable example"))
                    .expect("a JSON example");
            assert_eq!(envelope, &committed, "the example of {key}");
        }
    }
}

#[test]
fn publishers_send_the_version_they_write_and_consumers_receive_every_version_they_accept() {
    let document = committed_asyncapi();
    let topology = Topology::declare(Chain::Standard);
    let keys = |channel: &str, types: &[EventType], all: bool| -> Vec<String> {
        types
            .iter()
            .flat_map(|t| {
                let oldest = if all { 1 } else { t.current_version() };
                (oldest..=t.current_version())
                    .map(move |v| format!("#/channels/{channel}/messages/{}.v{v}", t.as_str()))
            })
            .collect()
    };
    for service in Service::ALL {
        let published: Vec<EventType> = EventType::ALL
            .into_iter()
            .filter(|t| t.publisher() == service)
            .collect();
        if let Some(channel) = topology.channel_of(service) {
            let name = format!("{}-sends-to-{}", service.name(), channel.name());
            let operation = &document["operations"][&name];
            assert_eq!(operation["action"], "send", "{name}");
            assert_eq!(
                message_refs(operation),
                keys(channel.name(), &published, false),
                "{name}"
            );
        }
        for queue in topology.queues_of(service) {
            let name = format!("{}-receives-from-{}", service.name(), queue.name);
            let operation = &document["operations"][&name];
            assert_eq!(operation["action"], "receive", "{name}");
            assert_eq!(
                message_refs(operation),
                keys(queue.name, queue.event_types, true),
                "{name}"
            );
            let dlq = &document["channels"][queue.dlq_name()];
            assert_eq!(dlq["address"], queue.dlq_name().as_str());
        }
    }
}

/// The keywords the committed schemas may use: those that mean the same in
/// JSON Schema draft 2020-12, which the files declare, and in draft 07, as
/// which the AsyncAPI document's payloads read them. `$defs` is no draft-07
/// keyword, but the references into it are plain JSON pointers that resolve
/// alike.
const DRAFT_07_ALIKE: &[&str] = &[
    "$schema",
    "$defs",
    "$ref",
    "title",
    "description",
    "examples",
    "type",
    "format",
    "enum",
    "const",
    "pattern",
    "minimum",
    "maximum",
    "properties",
    "required",
    "items",
];

fn draft_07_differences(schema: &Value, at: &str, found: &mut Vec<String>) {
    let Some(object) = schema.as_object() else {
        return;
    };
    for (keyword, value) in object {
        if !DRAFT_07_ALIKE.contains(&keyword.as_str()) {
            found.push(format!("{at}: `{keyword}`"));
        }
        // Draft 07 ignores everything beside a `$ref`; only annotations may be there.
        if object.contains_key("$ref") && !["$ref", "description", "title"].contains(&&**keyword) {
            found.push(format!("{at}: `{keyword}` beside `$ref`"));
        }
        match keyword.as_str() {
            "properties" | "$defs" => {
                for (name, inner) in value.as_object().into_iter().flatten() {
                    draft_07_differences(inner, &format!("{at}/{keyword}/{name}"), found);
                }
            }
            "items" => draft_07_differences(value, &format!("{at}/items"), found),
            _ => {}
        }
    }
}

#[test]
fn every_committed_schema_reads_the_same_as_json_schema_draft_07() {
    let mut found = Vec::new();
    for contract in schemas::all() {
        let schema = serde_json::to_value(&contract.schema).expect("a schema serialises");
        draft_07_differences(&schema, &contract.file_name, &mut found);
    }
    assert!(
        found.is_empty(),
        "the AsyncAPI document reads the schemas as draft 07, where these differ: {found:?}"
    );
}
