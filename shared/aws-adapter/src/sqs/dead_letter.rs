//! The dead-letter copy: a message sent to its DLQ by the consumer, with the
//! reason it can never succeed.
//!
//! The copy keeps the message's body and attributes so that a redrive can
//! send it back unchanged, and adds `DLQ_REASON_ATTRIBUTE` for the operator.
//! SQS carries at most `MAX_MESSAGE_ATTRIBUTES`, so the reason needs a free
//! one: publishers keep it free, and from a message that came with too many
//! the copy drops the extra ones rather than fail.

use std::collections::HashMap;

use aws_sdk_sqs::types::{Message, MessageAttributeValue};

use super::{DLQ_REASON_ATTRIBUTE, MAX_MESSAGE_ATTRIBUTES, SqsError, group_id};

/// How much of a reason a dead-letter copy keeps: reasons quote the message's
/// own text, and the attribute counts towards the 256 KiB message limit.
const MAX_REASON_BYTES: usize = 1000;

/// Sends a copy of `message` to the DLQ at `dlq_url`, with the reason in
/// `DLQ_REASON_ATTRIBUTE` (see `dead_letter_attributes`). To a FIFO DLQ the
/// copy keeps the message's group (its order), and is deduplicated on the
/// broker's message id so that a retried send does not park it twice.
pub async fn send_dead_letter(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    message: &Message,
    reason: &str,
    fifo: bool,
) -> Result<(), SqsError> {
    const CALL: &str = "SendMessage";
    let attributes = dead_letter_attributes(message.message_attributes(), reason)
        .map_err(|e| SqsError::new(CALL, e))?;
    // SQS refuses an empty body; the copy must still land.
    let body = match message.body().unwrap_or_default() {
        "" => "(empty body)",
        body => body,
    };
    let mut send = sqs
        .send_message()
        .queue_url(dlq_url)
        .message_body(body)
        .set_message_attributes(Some(attributes));
    if fifo {
        send = send
            .message_group_id(group_id(message).unwrap_or("dead-letters"))
            .message_deduplication_id(message.message_id().unwrap_or("unknown"));
    }
    send.send().await.map_err(|e| SqsError::call(CALL, e))?;
    Ok(())
}

/// The attributes of a dead-letter copy: the message's own (an earlier
/// reason dropped; from a message that came with too many, the extra ones)
/// and the reason, cut to `MAX_REASON_BYTES` on a character boundary.
pub fn dead_letter_attributes(
    attributes: Option<&HashMap<String, MessageAttributeValue>>,
    reason: &str,
) -> Result<HashMap<String, MessageAttributeValue>, aws_sdk_sqs::error::BuildError> {
    let mut kept: HashMap<String, MessageAttributeValue> = attributes
        .into_iter()
        .flatten()
        .filter(|(name, _)| name.as_str() != DLQ_REASON_ATTRIBUTE)
        .take(MAX_MESSAGE_ATTRIBUTES - 1)
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let cut = (0..=MAX_REASON_BYTES.min(reason.len()))
        .rev()
        .find(|i| reason.is_char_boundary(*i))
        .unwrap_or(0);
    kept.insert(
        DLQ_REASON_ATTRIBUTE.to_string(),
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(&reason[..cut])
            .build()?,
    );
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str) -> MessageAttributeValue {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .expect("valid attribute")
    }

    #[test]
    fn a_dead_letter_copy_replaces_an_earlier_reason_and_keeps_the_rest() {
        let attributes = HashMap::from([
            (DLQ_REASON_ATTRIBUTE.to_string(), text("an older reason")),
            ("event_type".to_string(), text("OrderPlaced")),
        ]);
        let copy = dead_letter_attributes(Some(&attributes), "handler rejected it")
            .expect("valid attributes");
        assert_eq!(copy.len(), 2);
        assert_eq!(copy["event_type"].string_value(), Some("OrderPlaced"));
        assert_eq!(
            copy[DLQ_REASON_ATTRIBUTE].string_value(),
            Some("handler rejected it")
        );
    }

    #[test]
    fn a_dead_letter_copy_stays_within_the_sqs_attribute_limit() {
        let attributes: HashMap<_, _> = (0..MAX_MESSAGE_ATTRIBUTES + 2)
            .map(|i| (format!("a{i}"), text("v")))
            .collect();
        let copy = dead_letter_attributes(Some(&attributes), "why").expect("valid attributes");
        assert_eq!(copy.len(), MAX_MESSAGE_ATTRIBUTES);
        assert!(copy.contains_key(DLQ_REASON_ATTRIBUTE));
    }

    #[test]
    fn a_long_reason_is_cut_on_a_character_boundary() {
        // 999 bytes, then a two-byte character across the cut.
        let reason = format!("{}é and more", "x".repeat(MAX_REASON_BYTES - 1));
        let copy = dead_letter_attributes(None, &reason).expect("valid attributes");
        let kept = copy[DLQ_REASON_ATTRIBUTE]
            .string_value()
            .unwrap_or_default();
        assert_eq!(kept, "x".repeat(MAX_REASON_BYTES - 1));
    }
}
