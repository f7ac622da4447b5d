//! The SQS calls the consumer and the DLQ tools share.
//!
//! Each function is one SQS call made the one way this project makes it, and
//! fails with an `SqsError` that names the call. What a failure means (back
//! off, retry a bounded number of times, log and go on) stays with the caller:
//! the consumer and the operator commands answer it differently.
//!
//! - `queue_url`: a queue's URL from its name;
//! - `receive`: one batch, with every message attribute (the trace context
//!   travels there) and the system attributes the caller asks for;
//! - `delete_batch`, `change_visibility_batch`: one batch call, reporting the
//!   entries that failed (the consumer's deletes and heartbeat, the DLQ
//!   listing's release);
//! - `change_visibility`: one message's (a retry's delay, a give-back at 0);
//! - `send_dead_letter`: a copy of a message to a DLQ with the reason, in the
//!   room SQS's attribute limit leaves;
//! - `receive_count`, `group_id`, `system_attribute`: what a received message
//!   says about itself.

use std::collections::HashMap;

use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry,
    DeleteMessageBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName,
};

/// The message attribute that says why a message was sent to a DLQ.
pub const DLQ_REASON_ATTRIBUTE: &str = "dlq_reason";

/// SQS carries at most ten message attributes on a message (and AWS silently
/// drops an SNS raw delivery with more). A dead-letter copy needs one of them
/// for its reason, so publishers keep one free.
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;

/// The most messages one receive returns and one batch call carries.
pub const MAX_BATCH: usize = 10;

/// How much of a reason a dead-letter copy keeps: reasons quote the message's
/// own text, and the attribute counts towards the 256 KiB message limit.
const MAX_REASON_BYTES: usize = 1000;

/// An SQS call that failed: which, and the SDK's whole error chain in one line.
#[derive(Debug, thiserror::Error)]
#[error("{call}: {cause}")]
pub struct SqsError {
    /// The call, or what it was for (`queue invoice-orders`).
    pub call: String,
    /// Why it failed; a caller naming the step in its own words shows this.
    pub cause: String,
}

impl SqsError {
    /// `what` failed because of the SDK error `e`.
    pub fn call<E: std::error::Error + 'static>(what: &str, e: E) -> Self {
        SqsError {
            call: what.to_string(),
            cause: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
        }
    }

    fn new(call: &str, cause: impl ToString) -> Self {
        SqsError {
            call: call.to_string(),
            cause: cause.to_string(),
        }
    }
}

/// Looks up a queue's URL by its name.
pub async fn queue_url(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<String, SqsError> {
    let what = format!("queue {name}");
    sqs.get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| SqsError::call(&what, e))?
        .queue_url
        .ok_or_else(|| SqsError::new(&what, "has no URL"))
}

/// How one receive asks.
#[derive(Debug, Clone, Copy)]
pub struct Receive<'a> {
    /// At most `MAX_BATCH`.
    pub max_messages: i32,
    /// Long polling: how long to wait for a message when there is none.
    pub wait_secs: i32,
    /// How long the received messages stay hidden from other receives.
    pub visibility_secs: i32,
    /// The system attributes to return (the receive count, the FIFO group).
    pub system_attributes: &'a [MessageSystemAttributeName],
}

/// Receives up to `how.max_messages` messages, with all their message
/// attributes. Cancelling it loses nothing: a message the broker already
/// handed out comes back after its visibility timeout.
pub async fn receive(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    how: &Receive<'_>,
) -> Result<Vec<Message>, SqsError> {
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(how.max_messages)
        .wait_time_seconds(how.wait_secs)
        .visibility_timeout(how.visibility_secs)
        .set_message_system_attribute_names(
            (!how.system_attributes.is_empty()).then(|| how.system_attributes.to_vec()),
        )
        .message_attribute_names("All")
        .send()
        .await
        .map_err(|e| SqsError::call("ReceiveMessage", e))?;
    Ok(out.messages.unwrap_or_default())
}

/// What a batch call did to its entries.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub succeeded: usize,
    pub failed: Vec<FailedEntry>,
}

/// An entry of a batch call that SQS refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    /// Its position among the receipts given.
    pub index: usize,
    pub code: String,
}

/// Deletes the messages of `receipts` (at most `MAX_BATCH`) in one call.
/// Nothing to delete is no call: SQS refuses an empty batch.
pub async fn delete_batch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    receipts: &[String],
) -> Result<BatchOutcome, SqsError> {
    const CALL: &str = "DeleteMessageBatch";
    if receipts.is_empty() {
        return Ok(BatchOutcome::default());
    }
    let entries = receipts
        .iter()
        .enumerate()
        .map(|(i, r)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(r)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SqsError::new(CALL, e))?;
    let out = sqs
        .delete_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|e| SqsError::call(CALL, e))?;
    Ok(BatchOutcome {
        succeeded: out.successful().len(),
        failed: failed_entries(out.failed()),
    })
}

/// Sets the visibility timeout of the messages of `receipts` (at most
/// `MAX_BATCH`) to `visibility_secs` in one call; 0 makes them visible now.
pub async fn change_visibility_batch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    receipts: &[String],
    visibility_secs: i32,
) -> Result<BatchOutcome, SqsError> {
    const CALL: &str = "ChangeMessageVisibilityBatch";
    if receipts.is_empty() {
        return Ok(BatchOutcome::default());
    }
    let entries = receipts
        .iter()
        .enumerate()
        .map(|(i, r)| {
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(r)
                .visibility_timeout(visibility_secs)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SqsError::new(CALL, e))?;
    let out = sqs
        .change_message_visibility_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|e| SqsError::call(CALL, e))?;
    Ok(BatchOutcome {
        succeeded: out.successful().len(),
        failed: failed_entries(out.failed()),
    })
}

/// Sets one message's visibility timeout to `visibility_secs`.
pub async fn change_visibility(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    receipt: &str,
    visibility_secs: i32,
) -> Result<(), SqsError> {
    sqs.change_message_visibility()
        .queue_url(queue_url)
        .receipt_handle(receipt)
        .visibility_timeout(visibility_secs)
        .send()
        .await
        .map_err(|e| SqsError::call("ChangeMessageVisibility", e))?;
    Ok(())
}

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

/// A system attribute of a received message, when the receive asked for it.
pub fn system_attribute(message: &Message, name: MessageSystemAttributeName) -> Option<&str> {
    message
        .attributes()
        .and_then(|a| a.get(&name))
        .map(String::as_str)
}

/// `ApproximateReceiveCount`: this receive included.
pub fn receive_count(message: &Message) -> Option<u32> {
    system_attribute(message, MessageSystemAttributeName::ApproximateReceiveCount)
        .and_then(|v| v.parse().ok())
}

/// `MessageGroupId`: set on the messages of a FIFO queue.
pub fn group_id(message: &Message) -> Option<&str> {
    system_attribute(message, MessageSystemAttributeName::MessageGroupId)
}

/// The failed entries of a batch answer, by their index (our entry ids).
fn failed_entries(failed: &[BatchResultErrorEntry]) -> Vec<FailedEntry> {
    failed
        .iter()
        .map(|f| FailedEntry {
            index: f.id().parse().unwrap_or(usize::MAX),
            code: f.code().to_string(),
        })
        .collect()
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

    #[test]
    fn a_message_reads_its_receive_count_and_group() {
        let message = Message::builder()
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "3")
            .attributes(MessageSystemAttributeName::MessageGroupId, "order-1")
            .build();
        assert_eq!(receive_count(&message), Some(3));
        assert_eq!(group_id(&message), Some("order-1"));
        let bare = Message::builder().build();
        assert_eq!(receive_count(&bare), None);
        assert_eq!(group_id(&bare), None);
    }

    #[test]
    fn failed_batch_entries_point_back_to_their_receipts() {
        let failed = BatchResultErrorEntry::builder()
            .id("2")
            .code("ReceiptHandleIsInvalid")
            .sender_fault(true)
            .build()
            .expect("valid entry");
        assert_eq!(
            failed_entries(&[failed]),
            vec![FailedEntry {
                index: 2,
                code: "ReceiptHandleIsInvalid".into()
            }]
        );
    }
}
