//! A batch another driver received and deletes: an AWS Lambda event source
//! mapping, which invokes a function with up to ten messages and deletes the
//! ones the function does not report as failed (`ReportBatchItemFailures`).
//!
//! Each message meets the same decisions as under the long-polling worker
//! (`Consumer::dispose`): decoding and admission, the inbox transaction
//! around the handler, the DLQ with the reason, the retry's growing
//! visibility. Only the driver's part differs: the mapping deletes the
//! successes, no heartbeat runs (the mapping hides the batch for the queue's
//! visibility timeout, which must outlast the function's timeout), and a
//! database that does not answer is the caller's to turn into a failed
//! invocation.
//!
//! That failed invocation is where the drivers part ways, so it is handled
//! here. The long-polling worker pauses until the database answers: the
//! messages it released are not received again meanwhile, so their receive
//! counts stand still. A mapping keeps polling, and every receive counts
//! towards the redrive policy's `maxReceiveCount`: released after the
//! retry's first few seconds, sound messages would reach the DLQ within a
//! minute of an outage. So the messages not done are hidden for the longest
//! retry delay (`CONSUMER_RETRY_MAX_DELAY_SECS`), which makes the outage a
//! message survives `maxReceiveCount` times that (25 minutes by default).
//! And as the mapping deletes nothing after a failed invocation, the
//! messages done before the database stopped answering are deleted here:
//! otherwise a poison message's DLQ copy would be sent again.

use aws_adapter::sqs;
use aws_sdk_sqs::types::Message;

use super::acks;
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
    /// Handles `messages`, in order, and says what became of each. Deletes
    /// none of them, unless the database stopped answering (see the module
    /// docs): then it deletes the ones done and hides the rest for the
    /// longest retry delay.
    pub async fn handle_delivered(&self, messages: &[Message]) -> Vec<Delivered> {
        // Nothing is added to it: the driver keeps the messages hidden.
        let in_flight = InFlight::default();
        let (outcome, done) = self.dispose(messages, &in_flight).await;
        let database_unavailable = outcome.database_unavailable();
        let mut dispositions = outcome.dispositions.into_iter();
        let delivered: Vec<Delivered> = messages
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
            .collect();
        if database_unavailable {
            self.hold_back(messages, &delivered, done).await;
        }
        delivered
    }

    /// After the database stopped answering: deletes `done` and hides every
    /// other message for the longest retry delay.
    async fn hold_back(&self, messages: &[Message], delivered: &[Delivered], done: Vec<String>) {
        let (acks, deleter) = acks::channel(&self.sqs, &self.queue_url, self.queue.name);
        acks.delete(done);
        drop(acks);
        deleter.run().await;
        let secs = self.retry_max_delay.as_secs().min(i32::MAX as u64) as i32;
        for (message, delivered) in messages.iter().zip(delivered) {
            let Some(receipt) = message.receipt_handle() else {
                continue;
            };
            if delivered.is_done() {
                continue;
            }
            if let Err(e) = sqs::change_visibility(&self.sqs, &self.queue_url, receipt, secs).await
            {
                tracing::warn!(error = %e.cause, "cannot hold the message back; it comes back with its retry delay");
            }
        }
    }
}
