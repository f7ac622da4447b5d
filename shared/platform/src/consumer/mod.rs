//! The SQS consumer: long polling, an inbox transaction per message, delete
//! after commit.
//!
//! For each queue a service consumes, `CONSUMER_CONCURRENCY` poll tasks each
//! loop on one step (`poll_once`): receive up to ten messages with long
//! polling, and for each message
//!
//! 1. unwrap the body (raw SNS delivery, or an EventBridge event whose `detail`
//!    is our envelope) and decode the event;
//! 2. refuse what can never succeed (not an envelope, an unknown type or
//!    version, a source or type this queue must not carry): it is sent to the
//!    DLQ at once with the reason, without burning retries;
//! 3. open a transaction, record the event id in the inbox, run the handler,
//!    commit: the effect and the inbox row commit together, so a duplicate finds
//!    its id and changes nothing;
//! 4. delete the message only after the commit. A handler error leaves it on
//!    the queue with a growing visibility timeout; after `maxReceiveCount`
//!    receives the redrive policy moves it to the DLQ.
//!
//! While a batch is being handled, a heartbeat extends the visibility of the
//! messages not yet done every half `CONSUMER_VISIBILITY_TIMEOUT_SECS`, so a
//! slow handler is not started a second time by another consumer. When the
//! service's database does not answer, receiving pauses until it does.
//! Receive errors are logged and backed off; the loop never ends on a bad
//! message, only on shutdown.
//!
//! One part a file, each readable alone:
//!
//! - this file: the `Consumer`, its one step `poll_once` and the `run` loop;
//! - `handler`: what a service implements, and its three-way error;
//! - `batch`: one received batch, message by message, then the deletes;
//! - `attempt`: one message tried, in its span: decode, then apply;
//! - `decode`: the body to an event, and whether it belongs on this queue;
//! - `span`: the `consumer.process` span, whose parent is the publisher's;
//! - `apply`: the inbox transaction around the handler;
//! - `disposition`: the policy, pure: what to do with a message given what
//!   happened to it;
//! - `heartbeat`: a slow batch's messages kept invisible;
//! - `pause`: waiting for the database instead of receiving.
//!
//! The SQS calls themselves are `aws_adapter::sqs`'s, which the DLQ tools
//! share.

mod apply;
mod attempt;
mod batch;
mod decode;
mod disposition;
mod handler;
mod heartbeat;
mod pause;
mod span;

use std::sync::Arc;
use std::time::Duration;

use aws_adapter::sqs::{self, Receive};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use backon::{BackoffBuilder, ExponentialBuilder};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::ConsumerSettings;
use contracts::topology::QueueSpec;

pub use aws_adapter::sqs::DLQ_REASON_ATTRIBUTE;
pub use disposition::{Disposition, retry_delay};
pub use handler::{Handler, HandlerError};

/// The system attributes the consumer reads: the receive count sets a retry's
/// delay, the group keeps a FIFO order's events in order.
const RECEIVE_ATTRIBUTES: &[MessageSystemAttributeName] = &[
    MessageSystemAttributeName::ApproximateReceiveCount,
    MessageSystemAttributeName::MessageGroupId,
];

/// What one `poll_once` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollOutcome {
    pub dispositions: Vec<Disposition>,
}

impl PollOutcome {
    /// Whether the service's database failed to answer during the batch.
    pub fn database_unavailable(&self) -> bool {
        self.dispositions
            .iter()
            .any(|d| matches!(d, Disposition::Unavailable(_)))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConsumeError(String);

pub struct Consumer<H> {
    sqs: aws_sdk_sqs::Client,
    pool: PgPool,
    handler: Arc<H>,
    queue: QueueSpec,
    /// The only service whose events belong on this queue (looked up once).
    expected_source: &'static str,
    queue_url: String,
    dlq_url: String,
    wait_time_secs: i32,
    visibility_timeout_secs: i32,
    retry_max_delay: Duration,
}

impl<H: Handler> Consumer<H> {
    /// Resolves the queue and DLQ URLs by name.
    pub async fn new(
        sqs: aws_sdk_sqs::Client,
        pool: PgPool,
        handler: Arc<H>,
        queue: QueueSpec,
        settings: &ConsumerSettings,
    ) -> Result<Self, ConsumeError> {
        let url = queue_url(&sqs, queue.name).await?;
        let dlq_url = queue_url(&sqs, &queue.dlq_name()).await?;
        Ok(Consumer {
            sqs,
            pool,
            handler,
            expected_source: queue.expected_source().source(),
            queue,
            queue_url: url,
            dlq_url,
            wait_time_secs: settings.wait_time_secs,
            visibility_timeout_secs: settings.visibility_timeout_secs,
            retry_max_delay: settings.retry_max_delay,
        })
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Receives one batch with long polling and disposes of every message in it.
    #[tracing::instrument(name = "consumer.poll", skip_all, fields(queue = self.queue.name), err)]
    pub async fn poll_once(&self) -> Result<PollOutcome, ConsumeError> {
        let received = self.receive().await?;
        self.handle_batch(&received).await
    }

    /// One long-polling receive. Cancelling it loses nothing: a message the
    /// broker already handed out comes back after its visibility timeout.
    async fn receive(&self) -> Result<Vec<Message>, ConsumeError> {
        let how = Receive {
            max_messages: sqs::MAX_BATCH as i32,
            wait_secs: self.wait_time_secs,
            visibility_secs: self.visibility_timeout_secs,
            system_attributes: RECEIVE_ATTRIBUTES,
        };
        sqs::receive(&self.sqs, &self.queue_url, &how)
            .await
            .map_err(|e| ConsumeError(format!("receive: {}", e.cause)))
    }

    /// Polls until `shutdown`. A batch already received is handled and
    /// deleted before the loop looks at the token again. A stop does not
    /// abandon the long poll in flight either: the broker may already have
    /// handed it messages, and a poll nobody reads hides them from every
    /// consumer for their visibility timeout, the stall each rolling restart
    /// would otherwise add to the journeys under way. The poll returns within
    /// `SQS_WAIT_TIME_SECONDS`, and what it brought is handled like any batch.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = new_backoff();
        while !shutdown.is_cancelled() {
            let receive = self.receive();
            tokio::pin!(receive);
            let received = tokio::select! {
                received = &mut receive => received,
                _ = shutdown.cancelled() => {
                    self.finish_poll_in_flight(receive).await;
                    break;
                }
            };
            let step = match received {
                Ok(received) => self.handle_batch(&received).await,
                Err(e) => Err(e),
            };
            if matches!(&step, Ok(outcome) if outcome.database_unavailable())
                && !pause::wait_for_database(&self.pool, self.queue.name, &shutdown).await
            {
                break;
            }
            if let Err(e) = step {
                let delay = backoff.next().unwrap_or(Duration::from_secs(30));
                tracing::warn!(error = %e, queue = self.queue.name, retry_in = ?delay, "receive failed; backing off");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            } else {
                backoff = new_backoff();
            }
        }
        tracing::info!(queue = self.queue.name, "consumer stopped");
    }

    /// On shutdown: waits for the long poll in flight to return (bounded by
    /// its wait time and a margin, for a broker that does not answer at all)
    /// and handles what it brought.
    async fn finish_poll_in_flight(
        &self,
        receive: impl Future<Output = Result<Vec<Message>, ConsumeError>>,
    ) {
        let bound = Duration::from_secs(self.wait_time_secs.max(0) as u64 + POLL_MARGIN_SECS);
        match tokio::time::timeout(bound, receive).await {
            Ok(Ok(received)) if received.is_empty() => {}
            Ok(Ok(received)) => {
                tracing::info!(
                    queue = self.queue.name,
                    messages = received.len(),
                    "handling what the last long poll brought before stopping"
                );
                if let Err(e) = self.handle_batch(&received).await {
                    tracing::warn!(error = %e, queue = self.queue.name, "the last batch was not finished; its messages come back after their visibility timeout");
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, queue = self.queue.name, "the last long poll failed")
            }
            Err(_) => tracing::warn!(
                queue = self.queue.name,
                ?bound,
                "the last long poll did not return; messages it may have got come back after their visibility timeout"
            ),
        }
    }
}

/// Looks up a queue's URL by its name.
pub async fn queue_url(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<String, ConsumeError> {
    sqs::queue_url(sqs, name)
        .await
        .map_err(|e| ConsumeError(e.to_string()))
}

/// How much longer than its wait time a long poll may take to return on
/// shutdown before it is abandoned: the round trip and the broker's own delay.
const POLL_MARGIN_SECS: u64 = 3;

fn new_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build()
}
