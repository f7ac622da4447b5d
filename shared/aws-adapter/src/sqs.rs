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
//! - `delete_batch`, `change_visibility_batch` (in `batch`): one batch call,
//!   reporting the entries that failed (the consumer's deletes and heartbeat,
//!   the DLQ listing's release);
//! - `change_visibility`: one message's (a retry's delay, a give-back at 0);
//! - `send_dead_letter` (in `dead_letter`): a copy of a message to a DLQ with
//!   the reason, in the room SQS's attribute limit leaves;
//! - `receive_count`, `group_id`, `system_attribute`: what a received message
//!   says about itself.

mod batch;
mod dead_letter;

pub use batch::{BatchOutcome, FailedEntry, change_visibility_batch, delete_batch};
pub use dead_letter::{dead_letter_attributes, send_dead_letter};

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};

/// The message attribute that says why a message was sent to a DLQ.
pub const DLQ_REASON_ATTRIBUTE: &str = "dlq_reason";

/// SQS carries at most ten message attributes on a message (and AWS silently
/// drops an SNS raw delivery with more). A dead-letter copy needs one of them
/// for its reason, so publishers keep one free.
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;

/// The most messages one receive returns and one batch call carries.
pub const MAX_BATCH: usize = 10;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
