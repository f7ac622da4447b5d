//! The SQS consumer: long polling, an inbox transaction per message, delete
//! after commit.
//!
//! For each queue a service consumes, `CONSUMER_CONCURRENCY` poll tasks
//! (workers) each loop on one step (`poll_once`): receive up to ten messages
//! with long polling, and for each message
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
//! Each round trip to SQS is taken off a worker's path where that is safe: the
//! next receive is sent while a batch is handled (read-ahead, one poll ahead
//! at most, `CONSUMER_READ_AHEAD`), and the deletes go to the worker's deleter,
//! which sends them in batch calls beside the loop instead of the worker
//! waiting for each. On a FIFO queue this keeps each group in order: SQS hands
//! out no message of a group while an earlier one is in flight, and a handled
//! message counts as in flight until its delete is sent.
//!
//! A heartbeat extends the visibility of the messages a worker holds and has
//! not decided on (its batch and the read-ahead one) every half
//! `CONSUMER_VISIBILITY_TIMEOUT_SECS`, so a slow handler is not started a
//! second time by another consumer. When the service's database does not
//! answer, receiving pauses until it does. Receive errors are logged and
//! backed off; the loop never ends on a bad message, only on shutdown, and
//! then after the poll in flight is handled and every delete is sent.
//!
//! One part a file, each readable alone:
//!
//! - this file: the `Consumer`, its one step `poll_once` and the `run` loop;
//! - `handler`: what a service implements, and its three-way error;
//! - `read_ahead`: the next receive, driven beside the batch before it;
//! - `batch`: one received batch, message by message, then the deletes;
//! - `delivered`: a batch another driver received and deletes (a Lambda
//!   event source mapping): the same decisions, no deletes;
//! - `acks`: the deletes, batched and retried off the receive path;
//! - `attempt`: one message tried, in its span: decode, then apply;
//! - `decode`: the body to an event, and whether it belongs on this queue;
//! - `span`: the `consumer.process` span, whose parent is the publisher's;
//! - `apply`: the inbox transaction around the handler;
//! - `disposition`: the policy, pure: what to do with a message given what
//!   happened to it;
//! - `heartbeat`: the messages a worker holds kept invisible;
//! - `pause`: waiting for the database instead of receiving.
//!
//! The SQS calls themselves are `aws_adapter::sqs`'s, which the DLQ tools
//! share.

mod acks;
mod apply;
mod attempt;
mod batch;
mod decode;
mod delivered;
mod disposition;
mod handler;
mod heartbeat;
mod pause;
mod read_ahead;
mod span;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use aws_adapter::sqs::{self, Receive};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use backon::{BackoffBuilder, ExponentialBuilder};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use self::acks::Acks;
use self::heartbeat::InFlight;
use self::read_ahead::Poll;
use crate::config::ConsumerSettings;
use contracts::topology::QueueSpec;

pub use aws_adapter::sqs::DLQ_REASON_ATTRIBUTE;
pub use delivered::Delivered;
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
    /// Whether the next receive is sent while a batch is handled.
    read_ahead: bool,
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
            read_ahead: settings.read_ahead,
        })
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Receives one batch with long polling, disposes of every message in it
    /// and sends its deletes: the step `run` repeats, taken once.
    #[tracing::instrument(name = "consumer.poll", skip_all, fields(queue = self.queue.name), err)]
    pub async fn poll_once(&self) -> Result<PollOutcome, ConsumeError> {
        let in_flight = InFlight::default();
        let received = self.receive(&in_flight).await?;
        let (acks, deleter) = acks::channel(&self.sqs, &self.queue_url, self.queue.name);
        let handle = async {
            let outcome = self.handle_batch(&received, &in_flight, &acks).await;
            // The deleter ends once its `Acks` is gone and all is sent.
            drop(acks);
            outcome
        };
        let heartbeat = heartbeat::beat(
            &self.sqs,
            &self.queue_url,
            self.visibility_timeout_secs,
            &in_flight,
        );
        tokio::select! {
            (outcome, ()) = async { tokio::join!(handle, deleter.run()) } => Ok(outcome),
            never = heartbeat => match never {},
        }
    }

    /// One long-polling receive; what it brings is held (`in_flight`, which
    /// the heartbeat extends) from the moment it returns. Cancelling it loses
    /// nothing: a message the broker already handed out comes back after its
    /// visibility timeout.
    async fn receive(&self, in_flight: &InFlight) -> Result<Vec<Message>, ConsumeError> {
        let how = Receive {
            max_messages: sqs::MAX_BATCH as i32,
            wait_secs: self.wait_time_secs,
            visibility_secs: self.visibility_timeout_secs,
            system_attributes: RECEIVE_ATTRIBUTES,
        };
        let received = sqs::receive(&self.sqs, &self.queue_url, &how)
            .await
            .map_err(|e| ConsumeError(format!("receive: {}", e.cause)))?;
        in_flight.add(&received).await;
        Ok(received)
    }

    /// Polls until `shutdown`, with the heartbeat over what the worker holds
    /// and its deleter sending the deletes beside the loop. After the loop,
    /// every delete still pending is sent before `run` returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let in_flight = InFlight::default();
        let (acks, deleter) = acks::channel(&self.sqs, &self.queue_url, self.queue.name);
        let polling = self.poll_loop(&in_flight, acks, &shutdown);
        let heartbeat = heartbeat::beat(
            &self.sqs,
            &self.queue_url,
            self.visibility_timeout_secs,
            &in_flight,
        );
        tokio::select! {
            ((), ()) = async { tokio::join!(polling, deleter.run()) } => {}
            never = heartbeat => match never {},
        }
        tracing::info!(queue = self.queue.name, "consumer stopped");
    }

    /// The loop: take a poll's batch, start the next poll (read-ahead), handle
    /// the batch while that poll is out, hand its deletes to `acks`. A batch
    /// already received is handled before the loop looks at the token again.
    /// A stop does not abandon the long poll in flight either: the broker may
    /// already have handed it messages, and a poll nobody reads hides them
    /// from every consumer for their visibility timeout, the stall each
    /// rolling restart would otherwise add to the journeys under way. The poll
    /// returns within `SQS_WAIT_TIME_SECONDS`, and what it brought is handled
    /// like any batch. `acks` is dropped at the end, which lets the deleter
    /// finish.
    async fn poll_loop(&self, in_flight: &InFlight, acks: Acks, shutdown: &CancellationToken) {
        let mut backoff = new_backoff();
        let mut next: Option<Poll<'_, Received>> = None;
        loop {
            let mut poll = match next.take() {
                Some(poll) => poll,
                None if shutdown.is_cancelled() => break,
                None => Poll::start(self.receive(in_flight)),
            };
            let received = if shutdown.is_cancelled() {
                None
            } else {
                tokio::select! {
                    biased;
                    received = poll.take() => Some(received),
                    _ = shutdown.cancelled() => None,
                }
            };
            let Some(received) = received else {
                self.finish_poll_in_flight(poll, in_flight, &acks).await;
                break;
            };
            let messages = match received {
                Ok(messages) => {
                    backoff = new_backoff();
                    messages
                }
                Err(e) => {
                    let delay = backoff.next().unwrap_or(RECEIVE_BACKOFF_MAX);
                    tracing::warn!(error = %e, queue = self.queue.name, retry_in = ?delay, "receive failed; backing off");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    continue;
                }
            };
            let outcome = if self.read_ahead && !shutdown.is_cancelled() {
                let ahead = next.insert(Poll::start(self.receive(in_flight)));
                ahead
                    .beside(self.handle_batch(&messages, in_flight, &acks))
                    .await
            } else {
                self.handle_batch(&messages, in_flight, &acks).await
            };
            if outcome.database_unavailable() {
                let pause = pause::wait_for_database(&self.pool, self.queue.name, shutdown);
                // What the read-ahead poll brings meanwhile is held (and kept
                // hidden) until the database answers, then handled.
                let resumed = match next.as_mut() {
                    Some(ahead) => ahead.beside(pause).await,
                    None => pause.await,
                };
                if !resumed && next.is_none() {
                    break;
                }
            }
        }
        drop(acks);
    }

    /// On shutdown: waits for the long poll in flight to return (bounded by
    /// its wait time and a margin, for a broker that does not answer at all)
    /// and handles what it brought.
    async fn finish_poll_in_flight(
        &self,
        mut poll: Poll<'_, Received>,
        in_flight: &InFlight,
        acks: &Acks,
    ) {
        let bound = Duration::from_secs(self.wait_time_secs.max(0) as u64 + POLL_MARGIN_SECS);
        match tokio::time::timeout(bound, poll.take()).await {
            Ok(Ok(received)) if received.is_empty() => {}
            Ok(Ok(received)) => {
                tracing::info!(
                    queue = self.queue.name,
                    messages = received.len(),
                    "handling what the last long poll brought before stopping"
                );
                self.handle_batch(&received, in_flight, acks).await;
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

/// What a receive returns.
type Received = Result<Vec<Message>, ConsumeError>;

/// Looks up a queue's URL by its name.
pub async fn queue_url(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<String, ConsumeError> {
    sqs::queue_url(sqs, name)
        .await
        .map_err(|e| ConsumeError(e.to_string()))
}

/// How much longer than its wait time a long poll may take to return on
/// shutdown before it is abandoned: the round trip and the broker's own delay.
const POLL_MARGIN_SECS: u64 = 3;

/// The cap of the backoff after a failed receive. Short, because it is also
/// how long a consumer may sit idle after the broker is back: with a 30 s cap
/// (up to 60 s with the jitter) the notification consumers slept 30 s past a
/// two-minute broker restart (`emulator-restart`, docs/emulators.md).
/// Against a broker that stays down it costs one failing receive every
/// 5–10 s per worker (the jitter adds up to the delay again).
const RECEIVE_BACKOFF_MAX: Duration = Duration::from_secs(5);

fn new_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(RECEIVE_BACKOFF_MAX)
        .with_jitter()
        .without_max_times()
        .build()
}
