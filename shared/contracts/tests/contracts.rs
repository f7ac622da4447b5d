//! The committed contracts under `contracts/` held against the Rust types.
//!
//! The schemas must be exactly what the types generate, so a change to an event
//! type cannot ship without its schema (and cannot silently alter a superseded
//! version). Every version consumers accept has an example envelope, written as
//! its producers wrote it, and each must still decode into the current types
//! with the values it carries.

use std::fs;
use std::path::{Path, PathBuf};

use contracts::events::schemas::{self, Contract};
use contracts::events::{
    Envelope, Event, EventType, InvoiceIssued, InvoiceVoided, OrderCancelled, OrderLine,
    OrderPlaced, ReceivedEvent,
};
use contracts::money::MinorUnits;
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

/// Why the committed file differs from the generated text, or `None` when it
/// does not. Line endings are ignored, so a checkout with CRLF still passes.
fn drift(contract: &Contract, folder: &Path) -> Option<String> {
    let name = format!("{}/{}", schemas::FOLDER, contract.file_name);
    let generated = contract.file_contents().expect("a schema serialises");
    let committed = match fs::read_to_string(folder.join(&contract.file_name)) {
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
        "{name} differs from what the types generate, from line {}:\n      committed: {}\n      generated: {}",
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
        .filter_map(|contract| drift(contract, &folder))
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
