//! Keeping a batch's messages invisible while it is being handled.
//!
//! A handler slower than the visibility timeout must not let a second
//! consumer start the same message. So every half visibility timeout, the
//! messages of the batch not yet deleted or left for a retry get a whole
//! timeout more, in one batch call. A message leaves the set when its fate is
//! decided: from then on its visibility is the retry's, or it is deleted.

use std::convert::Infallible;
use std::time::Duration;

use aws_adapter::sqs;
use aws_sdk_sqs::types::Message;
use tokio::sync::Mutex;

/// The receipts of the batch's messages still being handled.
pub(super) struct InFlight(Mutex<Vec<String>>);

impl InFlight {
    pub(super) fn of(messages: &[Message]) -> Self {
        InFlight(Mutex::new(
            messages
                .iter()
                .filter_map(|m| m.receipt_handle().map(str::to_string))
                .collect(),
        ))
    }

    /// Stops extending `receipt`. Waits for an extension being sent, so that
    /// the caller's own (later) visibility change wins.
    pub(super) async fn remove(&self, receipt: &str) {
        self.0.lock().await.retain(|r| r != receipt);
    }
}

/// Every half `visibility_secs`, extends the visibility of the messages
/// `in_flight` by `visibility_secs`. Never returns: the batch's end drops it.
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
        if receipts.is_empty() {
            continue;
        }
        match sqs::change_visibility_batch(client, queue_url, &receipts, visibility_secs).await {
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
