//! Deletes, batched and off the receive path.
//!
//! A message is deleted only after its effect committed; waiting for that
//! delete before receiving again would add a round trip to every poll. So a
//! worker hands the receipts of a handled batch to its `Deleter` and goes on.
//! The deleter sends them in `DeleteMessageBatch` calls of up to ten,
//! one call at a time: what is handed over while a call is out is sent with
//! the next one, so under load one call carries the done messages of several
//! polls, and when the worker is idle a batch's deletes leave at once (no
//! linger: on a FIFO queue a handled message holds its group until deleted).
//!
//! A delete that fails is retried with backoff, a few times (about two
//! seconds in all): an entry SQS refuses as the sender's fault (an expired or
//! invalid receipt) is not retried, since sending it again cannot help. A
//! delete given up on loses nothing: the message comes back after its
//! visibility timeout and the inbox skips it as a duplicate. When the worker
//! stops it drops its `Acks`; the deleter sends everything still pending, then
//! ends, and the worker's task with it.

use std::time::Duration;

use aws_adapter::sqs::{self, BatchOutcome};
use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::mpsc;

use crate::metrics;

/// How many times a failed delete is sent again before it is given up on.
const RETRIES: usize = 4;

/// Where a worker hands over the receipts of the messages it is done with.
pub(super) struct Acks(mpsc::UnboundedSender<Vec<String>>);

impl Acks {
    /// Queues `receipts` for deletion; returns at once.
    pub(super) fn delete(&self, receipts: Vec<String>) {
        if receipts.is_empty() {
            return;
        }
        // The deleter ends only after every `Acks` is dropped, so the send
        // cannot fail while `self` lives.
        let _ = self.0.send(receipts);
    }
}

/// Sends the deletes handed to its `Acks`.
pub(super) struct Deleter<'a> {
    sqs: &'a aws_sdk_sqs::Client,
    queue_url: &'a str,
    queue: &'static str,
    handed: mpsc::UnboundedReceiver<Vec<String>>,
}

/// A worker's `Acks` and the `Deleter` that serves them.
pub(super) fn channel<'a>(
    sqs: &'a aws_sdk_sqs::Client,
    queue_url: &'a str,
    queue: &'static str,
) -> (Acks, Deleter<'a>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Acks(tx),
        Deleter {
            sqs,
            queue_url,
            queue,
            handed: rx,
        },
    )
}

impl Deleter<'_> {
    /// Deletes what is handed over until every `Acks` is dropped and nothing
    /// is left to send.
    pub(super) async fn run(mut self) {
        let mut pending: Vec<String> = Vec::new();
        let mut handed = Vec::new();
        loop {
            if pending.is_empty() {
                // Wait for work; `0` means every `Acks` is gone and the
                // channel is empty.
                if self.handed.recv_many(&mut handed, sqs::MAX_BATCH).await == 0 {
                    return;
                }
            } else {
                // Take whatever else has arrived meanwhile, without waiting.
                while let Ok(more) = self.handed.try_recv() {
                    handed.push(more);
                }
            }
            pending.extend(handed.drain(..).flatten());
            let take = pending.len().min(sqs::MAX_BATCH);
            let call: Vec<String> = pending.drain(..take).collect();
            self.delete_with_retries(call).await;
        }
    }

    /// One batch of up to ten, retried with backoff until done or given up.
    async fn delete_with_retries(&self, mut receipts: Vec<String>) {
        let consumer = &metrics::get().consumer;
        consumer.delete_batch(self.queue, receipts.len());
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(1))
            .with_jitter()
            .with_max_times(RETRIES)
            .build();
        loop {
            let sent = sqs::delete_batch(self.sqs, self.queue_url, &receipts).await;
            let (deleted, again, refused) = match sent {
                Ok(out) => sort_out(&receipts, out),
                Err(e) => {
                    tracing::debug!(error = %e.cause, queue = self.queue, "delete call failed");
                    (0, receipts.clone(), 0)
                }
            };
            consumer.deleted(self.queue, deleted);
            if refused > 0 {
                consumer.delete_lost(self.queue, refused);
                tracing::warn!(
                    queue = self.queue,
                    messages = refused,
                    "delete refused (receipt expired); the redelivery will be a duplicate"
                );
            }
            if again.is_empty() {
                return;
            }
            let Some(delay) = backoff.next() else {
                consumer.delete_lost(self.queue, again.len());
                tracing::warn!(
                    queue = self.queue,
                    messages = again.len(),
                    "deletes given up after retries; the messages come back after their visibility timeout and the inbox skips them as duplicates"
                );
                return;
            };
            receipts = again;
            tokio::time::sleep(delay).await;
        }
    }
}

/// What a delete call did to `receipts`: how many were deleted, the ones to
/// send again (SQS's own trouble), and how many SQS refused for good.
fn sort_out(receipts: &[String], out: BatchOutcome) -> (usize, Vec<String>, usize) {
    let mut again = Vec::new();
    let mut refused = 0;
    for failed in out.failed {
        match receipts.get(failed.index) {
            Some(receipt) if !failed.sender_fault => again.push(receipt.clone()),
            _ => refused += 1,
        }
    }
    (out.succeeded, again, refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_adapter::sqs::FailedEntry;

    fn receipts(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("r{i}")).collect()
    }

    #[test]
    fn a_delete_that_succeeded_leaves_nothing_to_do() {
        let out = BatchOutcome {
            succeeded: 3,
            failed: vec![],
        };
        assert_eq!(sort_out(&receipts(3), out), (3, vec![], 0));
    }

    #[test]
    fn sqs_trouble_is_sent_again_and_a_bad_receipt_is_not() {
        let out = BatchOutcome {
            succeeded: 1,
            failed: vec![
                FailedEntry {
                    index: 1,
                    code: "InternalError".into(),
                    sender_fault: false,
                },
                FailedEntry {
                    index: 2,
                    code: "ReceiptHandleIsInvalid".into(),
                    sender_fault: true,
                },
            ],
        };
        assert_eq!(sort_out(&receipts(3), out), (1, vec!["r1".into()], 1));
    }

    #[test]
    fn an_entry_sqs_names_wrongly_is_counted_lost_not_retried() {
        let out = BatchOutcome {
            succeeded: 0,
            failed: vec![FailedEntry {
                index: 7,
                code: "InternalError".into(),
                sender_fault: false,
            }],
        };
        assert_eq!(sort_out(&receipts(1), out), (0, vec![], 1));
    }

    #[tokio::test]
    async fn the_deleter_ends_once_every_acks_is_dropped_and_nothing_is_pending() {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .build();
        let client = aws_sdk_sqs::Client::from_conf(config);
        let (acks, deleter) = channel(&client, "http://unused", "q");
        acks.delete(vec![]);
        drop(acks);
        // Nothing was handed over, so no call is made and `run` returns.
        deleter.run().await;
    }
}
