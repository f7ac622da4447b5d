//! Keeping the messages a worker holds invisible while it holds them.
//!
//! A handler slower than the visibility timeout must not let a second
//! consumer start the same message. So every half visibility timeout, the
//! messages the worker holds get a whole timeout more, in batch calls of ten.
//! A worker holds the batch it is handling and, with read-ahead, the batch
//! its next poll brought while the first was handled: both are in the set
//! from the moment their receive returns (the poll adds them itself), so a
//! read-ahead batch waiting behind a slow one is kept hidden as well. A
//! message leaves the set when its fate is decided: from then on its
//! visibility is the retry's, or it is on its way to being deleted.

use std::convert::Infallible;
use std::time::Duration;

use aws_adapter::sqs;
use aws_sdk_sqs::types::Message;
use tokio::sync::Mutex;

/// The receipts of the messages a worker holds and has not decided on yet.
#[derive(Default)]
pub(super) struct InFlight(Mutex<Vec<String>>);

impl InFlight {
    /// Starts extending `messages`.
    pub(super) async fn add(&self, messages: &[Message]) {
        self.0.lock().await.extend(
            messages
                .iter()
                .filter_map(|m| m.receipt_handle().map(str::to_string)),
        );
    }

    /// Stops extending `receipt`. Waits for an extension being sent, so that
    /// the caller's own (later) visibility change wins.
    pub(super) async fn remove(&self, receipt: &str) {
        self.0.lock().await.retain(|r| r != receipt);
    }

    #[cfg(test)]
    async fn held(&self) -> Vec<String> {
        self.0.lock().await.clone()
    }
}

/// Every half `visibility_secs`, extends the visibility of the messages
/// `in_flight` by `visibility_secs`. Never returns: the worker's end drops it.
pub(super) async fn beat(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    visibility_secs: i32,
    in_flight: &InFlight,
) -> Infallible {
    let period = Duration::from_secs(visibility_secs as u64) / 2;
    loop {
        tokio::time::sleep(period).await;
        // Held until the extension is sent: a message leaving for a retry
        // waits for it, so its own (later) visibility change wins.
        let receipts = in_flight.0.lock().await;
        for chunk in receipts.chunks(sqs::MAX_BATCH) {
            match sqs::change_visibility_batch(client, queue_url, chunk, visibility_secs).await {
                Ok(out) => tracing::debug!(
                    extended = out.succeeded,
                    failed = out.failed.len(),
                    "visibility extended for slow messages"
                ),
                // The next beat tries again; at worst a message is redelivered
                // and the inbox makes it a duplicate.
                Err(e) => tracing::warn!(error = %e.cause, "cannot extend visibility"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(receipt: &str) -> Message {
        Message::builder().receipt_handle(receipt).build()
    }

    #[tokio::test]
    async fn a_read_ahead_batch_joins_the_one_being_handled_until_each_is_decided() {
        let in_flight = InFlight::default();
        in_flight.add(&[message("a"), message("b")]).await;
        // The read-ahead poll returns while `a` and `b` are still handled.
        in_flight
            .add(&[message("c"), Message::builder().build()])
            .await;
        assert_eq!(in_flight.held().await, ["a", "b", "c"]);
        in_flight.remove("a").await;
        in_flight.remove("c").await;
        assert_eq!(in_flight.held().await, ["b"]);
    }
}
