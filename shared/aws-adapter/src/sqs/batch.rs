//! The batch calls: one call for up to ten messages, each entry succeeding
//! or failing on its own.
//!
//! The consumer deletes a batch's done messages and extends its slow ones'
//! visibility this way; the DLQ listing releases what it looked at. Each
//! entry's id is its index among the receipts given, so a failure points back
//! to its message.

use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
};

use super::SqsError;

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
    /// SQS's `SenderFault`: the entry itself is wrong (a receipt handle that
    /// expired or is invalid) and sending it again cannot help. `false` is
    /// SQS's own trouble, worth another try.
    pub sender_fault: bool,
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
    let entries = numbered(CALL, receipts, |id, receipt| {
        DeleteMessageBatchRequestEntry::builder()
            .id(id)
            .receipt_handle(receipt)
            .build()
    })?;
    let out = sqs
        .delete_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|e| SqsError::call(CALL, e))?;
    Ok(outcome(out.successful().len(), out.failed()))
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
    let entries = numbered(CALL, receipts, |id, receipt| {
        ChangeMessageVisibilityBatchRequestEntry::builder()
            .id(id)
            .receipt_handle(receipt)
            .visibility_timeout(visibility_secs)
            .build()
    })?;
    let out = sqs
        .change_message_visibility_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|e| SqsError::call(CALL, e))?;
    Ok(outcome(out.successful().len(), out.failed()))
}

/// One entry per receipt, its id its index (so a failure points back to it).
fn numbered<E>(
    call: &str,
    receipts: &[String],
    entry: impl Fn(String, &str) -> Result<E, aws_sdk_sqs::error::BuildError>,
) -> Result<Vec<E>, SqsError> {
    receipts
        .iter()
        .enumerate()
        .map(|(i, receipt)| entry(i.to_string(), receipt))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SqsError::new(call, e))
}

fn outcome(succeeded: usize, failed: &[BatchResultErrorEntry]) -> BatchOutcome {
    BatchOutcome {
        succeeded,
        failed: failed_entries(failed),
    }
}

/// The failed entries of a batch answer, by their index (our entry ids).
fn failed_entries(failed: &[BatchResultErrorEntry]) -> Vec<FailedEntry> {
    failed
        .iter()
        .map(|f| FailedEntry {
            index: f.id().parse().unwrap_or(usize::MAX),
            code: f.code().to_string(),
            sender_fault: f.sender_fault(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
                code: "ReceiptHandleIsInvalid".into(),
                sender_fault: true,
            }]
        );
    }
}
