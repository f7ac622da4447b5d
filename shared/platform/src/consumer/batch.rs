//! One received batch, message by message, then the deletes.
//!
//! For each message `disposition` decides (first whether to try it, then what
//! its outcome asks for) and this file carries the decision out: the DLQ copy,
//! the retry's visibility, the delete, and a count of every outcome in the
//! `consumer_*` metrics. The done messages are handed to the worker's deleter
//! together at the end, each only after its effect committed; the worker does
//! not wait for the delete call. The heartbeat keeps the messages not yet
//! decided invisible meanwhile.

use aws_adapter::sqs;
use aws_sdk_sqs::types::Message;
use tracing::{Instrument, Span};

use super::acks::Acks;
use super::disposition::{Batch, Decision, Disposition, Happened, Step, decide};
use super::heartbeat::InFlight;
use super::{Consumer, Handler, PollOutcome};
use crate::metrics::{
    self, FAILED_DEAD_LETTER, FAILED_RETRY, FAILED_UNAVAILABLE, FailureLabels, QueueLabels,
};

impl<H: Handler> Consumer<H> {
    /// Disposes of every message of a received batch, then hands the done
    /// ones to `acks` to be deleted. Each message leaves `in_flight` (the
    /// heartbeat's set) once its fate is decided.
    pub(super) async fn handle_batch(
        &self,
        messages: &[Message],
        in_flight: &InFlight,
        acks: &Acks,
    ) -> PollOutcome {
        let (outcome, to_delete) = self.dispose(messages, in_flight).await;
        // Deleted together, after every effect of the batch committed; on a
        // FIFO queue a done message holds its group until then, as it did
        // when the worker waited for the delete.
        for receipt in &to_delete {
            in_flight.remove(receipt).await;
        }
        acks.delete(to_delete);
        outcome
    }

    /// Decides on and carries out every message of a batch, in order, but
    /// deletes none: returns what became of each message that has a receipt
    /// handle (in the batch's order) and the receipts of those done with.
    /// The long-polling worker hands those to its deleter; a Lambda event
    /// source mapping deletes the successes itself (`handle_delivered`).
    pub(super) async fn dispose(
        &self,
        messages: &[Message],
        in_flight: &InFlight,
    ) -> (PollOutcome, Vec<String>) {
        metrics::get()
            .consumer
            .received(self.queue.name, messages.len());
        let mut outcome = PollOutcome::default();
        let mut to_delete = Vec::new();
        let mut batch = Batch::default();
        for message in messages {
            let Some(receipt) = message.receipt_handle() else {
                continue;
            };
            let receive_count = sqs::receive_count(message).unwrap_or(1);
            let group = sqs::group_id(message);
            let (decision, span) = match batch.untried(group, receive_count, self.retry_max_delay) {
                Some(decision) => (decision, Span::none()),
                None => {
                    let (happened, span) = self.attempt(message, receive_count).await;
                    (decide(happened, receive_count, self.retry_max_delay), span)
                }
            };
            // The DLQ send and the retry delay belong to the message's span.
            let disposition = self
                .carry_out(
                    decision,
                    message,
                    receipt,
                    receive_count,
                    in_flight,
                    &mut to_delete,
                )
                .instrument(span)
                .await;
            // Counted once its fate is known (a failed DLQ send is a retry).
            count(self.queue.name, &disposition);
            batch.record(group, &disposition);
            outcome.dispositions.push(disposition);
        }
        (outcome, to_delete)
    }

    /// Does what `decision` says to `message`, adding its receipt to
    /// `to_delete` when it is done with; returns what became of it.
    async fn carry_out(
        &self,
        decision: Decision,
        message: &Message,
        receipt: &str,
        receive_count: u32,
        in_flight: &InFlight,
        to_delete: &mut Vec<String>,
    ) -> Disposition {
        let Decision { disposition, step } = decision;
        match step {
            Step::Delete => {
                to_delete.push(receipt.to_string());
                disposition
            }
            Step::Leave => {
                // It comes back when its visibility timeout ends.
                in_flight.remove(receipt).await;
                disposition
            }
            Step::DeadLetter => {
                let reason = disposition.reason().unwrap_or_default();
                match sqs::send_dead_letter(
                    &self.sqs,
                    &self.dlq_url,
                    message,
                    reason,
                    self.queue.fifo,
                )
                .await
                {
                    Ok(()) => {
                        to_delete.push(receipt.to_string());
                        disposition
                    }
                    Err(e) => {
                        in_flight.remove(receipt).await;
                        tracing::warn!(error = %e.cause, "cannot send to the DLQ; leaving the message for redrive");
                        // Decided again: a retry left as it is (`Step::Leave`),
                        // so nothing more to do here.
                        decide(
                            Happened::DeadLetterFailed(e.cause),
                            receive_count,
                            self.retry_max_delay,
                        )
                        .disposition
                    }
                }
            }
            Step::HideFor(delay) => {
                // Its visibility is now the retry delay, not the heartbeat's.
                in_flight.remove(receipt).await;
                let reason = disposition.reason().unwrap_or_default();
                tracing::warn!(%reason, receive_count, retry_in = ?delay, "message will be retried");
                let secs = delay.as_secs() as i32;
                if let Err(e) =
                    sqs::change_visibility(&self.sqs, &self.queue_url, receipt, secs).await
                {
                    tracing::warn!(error = %e.cause, "cannot delay the retry");
                }
                disposition
            }
        }
    }
}

/// Counts what became of one message.
fn count(queue: &'static str, disposition: &Disposition) {
    let consumer = &metrics::get().consumer;
    let failed = |outcome| {
        consumer
            .failed
            .get_or_create(&FailureLabels { queue, outcome })
    };
    let counter = match disposition {
        Disposition::Processed => consumer.processed.get_or_create(&QueueLabels { queue }),
        Disposition::Duplicate => consumer.duplicates.get_or_create(&QueueLabels { queue }),
        Disposition::Retry(_) => failed(FAILED_RETRY),
        Disposition::Unavailable(_) => failed(FAILED_UNAVAILABLE),
        Disposition::DeadLettered(_) => failed(FAILED_DEAD_LETTER),
    };
    counter.inc();
}
