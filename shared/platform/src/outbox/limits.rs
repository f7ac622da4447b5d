//! The message limits AWS enforces and the emulator does not.
//!
//! moto accepts what AWS would refuse or, worse, silently drop: an SNS message
//! delivered raw to SQS with more than ten message attributes is discarded by
//! AWS without an error, and a message over 256 KiB (body and attributes
//! together) is refused at publish time, long after the state change it
//! announces has committed. So the outbox checks an event against these limits
//! before the insert, where the caller can still refuse the request cleanly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// SNS messages, SQS messages and EventBridge entries: 256 KiB, everything counted.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// SQS carries at most ten message attributes. One is kept free for the
/// consumer's `dlq_reason`, added when a message is dead-lettered.
pub const MAX_EVENT_ATTRIBUTES: usize = aws_adapter::sqs::MAX_MESSAGE_ATTRIBUTES - 1;

/// The fixed part of an EventBridge entry's size (its timestamp), as AWS counts it.
const EVENTBRIDGE_TIME_BYTES: usize = 14;

/// Why an event cannot travel as a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("message attribute '{0}' has an empty value, which SNS refuses")]
    EmptyValue(String),
    #[error(
        "message attribute name '{0}' is not valid (1-256 of A-Z a-z 0-9 _ - ., not starting with AWS. or Amazon.)"
    )]
    InvalidName(String),
    #[error(
        "{0} message attributes, over the limit of {MAX_EVENT_ATTRIBUTES} (SQS carries 10, one is kept for dlq_reason)"
    )]
    TooManyAttributes(usize),
}

/// The string message attributes an event travels with (the event type, which
/// subscription filter policies match on, and the W3C trace context: at most
/// three of the nine).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageAttributes(BTreeMap<String, String>);

impl MessageAttributes {
    /// Adds an attribute, refusing what SNS or SQS would refuse or drop.
    pub fn insert(&mut self, name: &str, value: &str) -> Result<(), LimitError> {
        if !valid_name(name) {
            return Err(LimitError::InvalidName(name.to_string()));
        }
        if value.is_empty() {
            return Err(LimitError::EmptyValue(name.to_string()));
        }
        if !self.0.contains_key(name) && self.0.len() >= MAX_EVENT_ATTRIBUTES {
            return Err(LimitError::TooManyAttributes(self.0.len() + 1));
        }
        self.0.insert(name.to_string(), value.to_string());
        Ok(())
    }

    /// Removes an attribute, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bytes the attributes add to a message: name, data type and value of each.
    pub fn size_bytes(&self) -> usize {
        self.0
            .iter()
            .map(|(k, v)| k.len() + "String".len() + v.len())
            .sum()
    }
}

/// The size of an SNS or SQS message as AWS counts it.
pub fn message_size(body: &str, attributes: &MessageAttributes) -> usize {
    body.len() + attributes.size_bytes()
}

/// The size of an EventBridge `PutEvents` entry as AWS counts it.
pub fn eventbridge_entry_size(source: &str, detail_type: &str, detail: &str) -> usize {
    EVENTBRIDGE_TIME_BYTES + source.len() + detail_type.len() + detail.len()
}

fn valid_name(name: &str) -> bool {
    (1..=256).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !name.to_ascii_lowercase().starts_with("aws.")
        && !name.to_ascii_lowercase().starts_with("amazon.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenth_attribute_is_refused_so_one_stays_free_for_the_dlq_reason() {
        let mut attrs = MessageAttributes::default();
        for i in 0..MAX_EVENT_ATTRIBUTES {
            attrs
                .insert(&format!("a{i}"), "v")
                .expect("within the limit");
        }
        assert_eq!(
            attrs.insert("one_more", "v"),
            Err(LimitError::TooManyAttributes(10))
        );
        // Replacing an existing attribute is not adding one.
        attrs.insert("a0", "w").expect("replace");
        assert_eq!(attrs.get("a0"), Some("w"));
    }

    #[test]
    fn empty_values_and_reserved_names_are_refused() {
        let mut attrs = MessageAttributes::default();
        assert_eq!(
            attrs.insert("tracestate", ""),
            Err(LimitError::EmptyValue("tracestate".into()))
        );
        for name in ["", "AWS.trace", "amazon.x", "has space", ".x", "a..b"] {
            assert!(
                matches!(attrs.insert(name, "v"), Err(LimitError::InvalidName(_))),
                "{name:?}"
            );
        }
        assert!(attrs.is_empty());
    }

    #[test]
    fn sizes_count_the_body_and_every_attribute() {
        let mut attrs = MessageAttributes::default();
        attrs.insert("event_type", "OrderPlaced").expect("valid");
        assert_eq!(attrs.size_bytes(), 10 + 6 + 11);
        assert_eq!(message_size("{}", &attrs), 2 + 27);
        assert_eq!(
            eventbridge_entry_size("invoice", "InvoiceIssued", "{}"),
            14 + 7 + 13 + 2
        );
    }
}
