//! The envelope decoding the consumer does (`consumer::decode`: the body as
//! an envelope, or inside an EventBridge event's `detail`, then the event of
//! a known type and version), on arbitrary and mutated bodies: it refuses
//! with a reason or decodes, and never panics.

use contracts::events::{Envelope, Event, OrderCancelled, ReceivedEvent};
use contracts::topology::Service;
use proptest::prelude::*;
use uuid::Uuid;

/// What the consumer does with a raw SNS body and an EventBridge one.
fn decode_both(body: &str) {
    if let Ok(envelope) = serde_json::from_str::<Envelope>(body) {
        let _ = ReceivedEvent::decode(envelope);
    }
    #[derive(serde::Deserialize)]
    struct EventBridgeEvent {
        detail: Envelope,
    }
    if let Ok(event) = serde_json::from_str::<EventBridgeEvent>(body) {
        let _ = ReceivedEvent::decode(event.detail);
    }
}

fn valid_body() -> String {
    let event = Event::OrderCancelled(OrderCancelled {
        order_id: Uuid::nil(),
        customer_id: "c-1".into(),
    });
    serde_json::to_string(&Envelope::new(Service::Order, &event, "corr")).expect("encode")
}

proptest! {
    #[test]
    fn arbitrary_bodies_never_panic(body in any::<String>()) {
        decode_both(&body);
    }

    #[test]
    fn mutated_envelopes_never_panic(
        at in any::<prop::sample::Index>(),
        replacement in prop::collection::vec(any::<char>(), 0..8),
        cut in any::<bool>(),
    ) {
        let body = valid_body();
        let chars: Vec<char> = body.chars().collect();
        let i = at.index(chars.len());
        let mut mutated: String = chars[..i].iter().collect();
        mutated.extend(replacement);
        if !cut {
            mutated.extend(&chars[(i + 1).min(chars.len())..]);
        }
        decode_both(&mutated);
        decode_both(&format!("{{\"detail\":{mutated}}}"));
    }

    #[test]
    fn any_json_field_value_is_refused_or_decoded(
        field in prop::sample::select(vec!["specversion", "type", "source", "id", "time", "data", "datacontenttype", "correlationid"]),
        value in prop_oneof![
            Just(serde_json::Value::Null),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            any::<String>().prop_map(serde_json::Value::from),
            Just(serde_json::json!({"nested": [1, 2, {"x": null}]})),
        ],
    ) {
        let mut envelope: serde_json::Value = serde_json::from_str(&valid_body()).expect("json");
        envelope[field] = value;
        decode_both(&envelope.to_string());
    }
}
