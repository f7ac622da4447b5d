//! The JSON Schemas of the envelope and of every payload version, generated
//! from the Rust types.
//!
//! They are committed under `contracts/` at the repository root so that anyone
//! can read the contract, or validate an event, without reading Rust. The
//! committed files are an output of this module: [`REGENERATE`] rewrites them,
//! and the test `shared/contracts/tests/contracts.rs` fails when they and the types drift
//! apart. A superseded version keeps its file for as long as consumers decode
//! it.

use schemars::{Schema, schema_for};
use serde_json::Value;

use super::{
    Envelope, EventType, InvoiceIssued, InvoiceVoided, OrderCancelled, OrderPlaced, OrderPlacedV1,
    Payload,
};

/// The command that rewrites the committed schemas from the types.
pub const REGENERATE: &str = "cargo run -p contracts --bin write-contracts";

/// The folder, relative to the repository root, that holds the schemas.
pub const FOLDER: &str = "contracts";

/// The envelope's schema file.
pub const ENVELOPE_FILE: &str = "envelope.schema.json";

/// One schema and the file it is committed as.
#[derive(Debug, Clone)]
pub struct Contract {
    pub file_name: String,
    pub schema: Schema,
    /// The event type and `dataversion` whose `data` this schema describes;
    /// `None` for the envelope.
    pub payload_of: Option<(EventType, u32)>,
}

impl Contract {
    /// The file's text: pretty-printed JSON with a final newline.
    pub fn file_contents(&self) -> Result<String, serde_json::Error> {
        let mut text = serde_json::to_string_pretty(&self.schema)?;
        text.push('\n');
        Ok(text)
    }
}

/// Every contract: the envelope, then each event type's versions, oldest first.
pub fn all() -> Vec<Contract> {
    vec![
        envelope(),
        payload::<OrderPlacedV1>(),
        payload::<OrderPlaced>(),
        payload::<OrderCancelled>(),
        payload::<InvoiceIssued>(),
        payload::<InvoiceVoided>(),
    ]
}

/// The name shared by an event version's schema and example files, such as
/// `order-placed.v2`.
pub fn file_stem(event_type: EventType, version: u32) -> String {
    let kebab = match event_type {
        EventType::OrderPlaced => "order-placed",
        EventType::OrderCancelled => "order-cancelled",
        EventType::InvoiceIssued => "invoice-issued",
        EventType::InvoiceVoided => "invoice-voided",
    };
    format!("{kebab}.v{version}")
}

/// The schema file of an event version, such as `order-placed.v2.schema.json`.
pub fn schema_file(event_type: EventType, version: u32) -> String {
    format!("{}.schema.json", file_stem(event_type, version))
}

fn envelope() -> Contract {
    let mut schema = schema_for!(Envelope);
    // The generated title names the type parameter (`data` is any JSON here).
    schema.insert("title".into(), Value::from("Envelope"));
    Contract {
        file_name: ENVELOPE_FILE.to_string(),
        schema,
        payload_of: None,
    }
}

fn payload<P: Payload>() -> Contract {
    let mut schema = schema_for!(P);
    // A title that says which envelope attributes this `data` goes with,
    // whatever the Rust type of that version is called.
    let title = format!("{} data, dataversion {}", P::TYPE.as_str(), P::VERSION);
    schema.insert("title".into(), Value::from(title));
    Contract {
        file_name: schema_file(P::TYPE, P::VERSION),
        schema,
        payload_of: Some((P::TYPE, P::VERSION)),
    }
}
