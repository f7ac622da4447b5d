//! A batch another driver received and deletes: an AWS Lambda event source
//! mapping, which invokes a function with up to ten messages and deletes the
//! ones the function does not report as failed (`ReportBatchItemFailures`).
//!
//! Each message meets the same decisions as under the long-polling worker
//! (`Consumer::dispose`): decoding and admission, the inbox transaction
//! around the handler, the DLQ with the reason, the retry's growing
//! visibility. Only the driver's part differs: nothing is deleted here, no
//! heartbeat runs (the mapping hides the batch for the queue's visibility
//! timeout, which must outlast the function's timeout), and a database that
//! does not answer is the caller's to turn into a failed invocation.

use aws_sdk_sqs::types::Message;

use super::heartbeat::InFlight;
use super::{Consumer, Disposition, Handler};

/// What became of one delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub message_id: String,
    pub disposition: Disposition,
}

impl Delivered {
    /// Whether the driver may delete the message: it was applied (now or
    /// before) or its DLQ copy was sent. Anything else must come back.
    pub fn is_done(&self) -> bool {
        matches!(
            self.disposition,
            Disposition::Processed | Disposition::Duplicate | Disposition::DeadLettered(_)
        )
    }
}

impl<H: Handler> Consumer<H> {
    /// Handles `messages`, in order, and says what became of each; deletes
    /// none of them.
    pub async fn handle_delivered(&self, messages: &[Message]) -> Vec<Delivered> {
        // Nothing is added to it: the driver keeps the messages hidden.
        let in_flight = InFlight::default();
        let (outcome, _done) = self.dispose(messages, &in_flight).await;
        let mut dispositions = outcome.dispositions.into_iter();
        messages
            .iter()
            .map(|message| Delivered {
                message_id: message.message_id().unwrap_or_default().to_string(),
                // `dispose` skips a message without a receipt handle: it
                // cannot be changed or deleted, so it can only come back.
                disposition: match message.receipt_handle() {
                    Some(_) => dispositions
                        .next()
                        .unwrap_or_else(|| Disposition::Retry("not handled".into())),
                    None => Disposition::Retry("no receipt handle".into()),
                },
            })
            .collect()
    }
}
