//! The SQS calls the consumer and the DLQ tools share.

/// The message attribute that says why a message was sent to a DLQ.
pub const DLQ_REASON_ATTRIBUTE: &str = "dlq_reason";

/// An SQS call that failed, with the SDK's whole error chain in one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SqsError(pub String);

impl SqsError {
    /// `what` failed because of the SDK error `e`.
    pub fn call<E: std::error::Error + 'static>(what: &str, e: E) -> Self {
        SqsError(format!(
            "{what}: {}",
            aws_sdk_sqs::error::DisplayErrorContext(e)
        ))
    }
}

/// Looks up a queue's URL by its name.
pub async fn queue_url(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<String, SqsError> {
    sqs.get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| SqsError::call(&format!("queue {name}"), e))?
        .queue_url
        .ok_or_else(|| SqsError(format!("queue {name} has no URL")))
}
