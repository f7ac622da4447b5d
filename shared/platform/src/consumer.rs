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
//! slow handler is not started a second time by another consumer.
//!
//! Receive errors are logged and backed off; the loop never ends on a bad
//! message, only on shutdown.
//!
//! Each message is handled in a `process <queue>` span whose parent is the
//! publisher's span: from the message attributes (SNS raw delivery keeps
//! them), or else from the envelope (EventBridge delivers none, but the
//! envelope travels inside `detail`). Every disposition is counted in the
//! `consumer_*` metrics.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageAttributeValue, MessageSystemAttributeName,
};
use backon::{BackoffBuilder, ExponentialBuilder};
use sqlx::{PgConnection, PgPool};
use tokio::sync::Mutex as AsyncMutex;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing::field::Empty;

use crate::config::ConsumerSettings;
use crate::db;
use crate::failpoints;
use crate::inbox;
use crate::metrics::{
    self, FAILED_DEAD_LETTER, FAILED_RETRY, FAILED_UNAVAILABLE, FailureLabels, QueueLabels,
};
use crate::telemetry::propagation::{self, EnvelopeCarrier, SqsAttributeCarrier};
use contracts::events::{Envelope, ReceivedEvent};
use contracts::topology::{Delivery, QueueSpec};

pub use aws_adapter::sqs::DLQ_REASON_ATTRIBUTE;

/// Why a handler could not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// May succeed later (database down, a precondition not yet met): the
    /// message is retried with backoff, then redriven to the DLQ.
    #[error("{0}")]
    Retry(String),
    /// Can never succeed: the message goes to the DLQ now.
    #[error("{0}")]
    Reject(String),
    /// The service's own database does not answer: the message is retried,
    /// and the consumer receives nothing more until the database answers, so
    /// that an outage does not use up messages' receives and park them in the
    /// DLQ.
    #[error("{0}")]
    Unavailable(String),
}

impl From<sqlx::Error> for HandlerError {
    fn from(e: sqlx::Error) -> Self {
        if db::is_unavailable(&e) {
            HandlerError::Unavailable(format!("database unavailable: {e}"))
        } else {
            HandlerError::Retry(format!("database: {e}"))
        }
    }
}

/// A service's reaction to the events it consumes. Runs inside the inbox
/// transaction: everything written through `tx` commits with the inbox row.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Applied and deleted.
    Processed,
    /// Already applied before: deleted, nothing changed.
    Duplicate,
    /// Left on the queue to come back after the given delay.
    Retry(String),
    /// Left on the queue like a retry because the service's database did not
    /// answer; the rest of the batch is released untried, and the consumer
    /// waits for the database before it receives again.
    Unavailable(String),
    /// Sent to the DLQ with the reason, then deleted.
    DeadLettered(String),
}

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
        self.handle_batch(received.messages()).await
    }

    /// One long-polling receive. Cancelling it loses nothing: a message the
    /// broker already handed out comes back after its visibility timeout.
    async fn receive(
        &self,
    ) -> Result<aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput, ConsumeError> {
        self.sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(self.wait_time_secs)
            .visibility_timeout(self.visibility_timeout_secs)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| {
                ConsumeError(format!(
                    "receive: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                ))
            })
    }

    /// Disposes of every message of a received batch, then deletes the done
    /// ones. Meanwhile a heartbeat keeps the messages not yet disposed of
    /// invisible: a handler slower than the visibility timeout must not let a
    /// second consumer start the same message.
    async fn handle_batch(
        &self,
        messages: &[aws_sdk_sqs::types::Message],
    ) -> Result<PollOutcome, ConsumeError> {
        let in_flight = AsyncMutex::new(
            messages
                .iter()
                .filter_map(|m| m.receipt_handle().map(str::to_string))
                .collect::<Vec<_>>(),
        );
        tokio::select! {
            outcome = self.dispose_batch(messages, &in_flight) => outcome,
            never = self.heartbeat(&in_flight) => match never {},
        }
    }

    /// Every half visibility timeout, extends the visibility of the messages
    /// of the batch not yet deleted or left for a retry by a whole timeout.
    /// Never returns.
    async fn heartbeat(&self, in_flight: &AsyncMutex<Vec<String>>) -> std::convert::Infallible {
        let period = Duration::from_secs(self.visibility_timeout_secs as u64) / 2;
        loop {
            tokio::time::sleep(period).await;
            // Held until the extension is sent: a message leaving for a retry
            // waits for it, so its own (later) visibility change wins.
            let receipts = in_flight.lock().await;
            if receipts.is_empty() {
                continue;
            }
            let entries: Result<Vec<_>, _> = receipts
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r)
                        .visibility_timeout(self.visibility_timeout_secs)
                        .build()
                })
                .collect();
            let Ok(entries) = entries else { continue };
            match self
                .sqs
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => tracing::debug!(
                    extended = out.successful().len(),
                    failed = out.failed().len(),
                    "visibility extended for slow messages"
                ),
                // The next beat tries again; at worst a message is redelivered
                // and the inbox makes it a duplicate.
                Err(e) => {
                    tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "cannot extend visibility")
                }
            }
        }
    }

    async fn dispose_batch(
        &self,
        messages: &[aws_sdk_sqs::types::Message],
        in_flight: &AsyncMutex<Vec<String>>,
    ) -> Result<PollOutcome, ConsumeError> {
        metrics::get()
            .consumer
            .received(self.queue.name, messages.len());
        let mut outcome = PollOutcome::default();
        let mut to_delete = Vec::new();
        // On a FIFO queue, the groups (orders) whose earlier message is being
        // retried: their later messages in this batch must wait too, or an
        // order's events would be applied out of order. (Each such wait counts
        // as a receive towards maxReceiveCount: the price of ordering.)
        let mut held_groups = std::collections::HashSet::new();
        // Once the database fails to answer, the rest of the batch is released
        // without trying each message against it.
        let mut database_down = false;
        for message in messages {
            let Some(receipt) = message.receipt_handle() else {
                continue;
            };
            let receive_count = message
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(1);
            let group = message
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                .cloned();
            let (disposition, span) = match &group {
                _ if database_down => (
                    Disposition::Unavailable("not tried: the database is unavailable".into()),
                    tracing::Span::none(),
                ),
                Some(group) if held_groups.contains(group) => (
                    Disposition::Retry(format!(
                        "an earlier message of group {group} is being retried"
                    )),
                    tracing::Span::none(),
                ),
                _ => self.dispose(message, receive_count).await,
            };
            // The DLQ send and the retry delay belong to the message's span.
            let disposition = async {
                match disposition {
                    Disposition::Processed | Disposition::Duplicate => {
                        to_delete.push(receipt.to_string());
                        disposition
                    }
                    Disposition::DeadLettered(reason) => {
                        match self.dead_letter(message, &reason).await {
                            Ok(()) => {
                                to_delete.push(receipt.to_string());
                                Disposition::DeadLettered(reason)
                            }
                            // Not deleted: it comes back after its visibility
                            // timeout, and the redrive policy moves it to the
                            // DLQ after maxReceiveCount.
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot send to the DLQ; leaving the message for redrive");
                                Disposition::Retry(format!("cannot send to the DLQ: {e}"))
                            }
                        }
                    }
                    Disposition::Retry(ref reason) | Disposition::Unavailable(ref reason) => {
                        // Its visibility is now the retry delay, not the heartbeat's.
                        in_flight.lock().await.retain(|r| r != receipt);
                        let delay = retry_delay(receive_count, self.retry_max_delay);
                        tracing::warn!(%reason, receive_count, retry_in = ?delay, "message will be retried");
                        if let Err(e) = self
                            .sqs
                            .change_message_visibility()
                            .queue_url(&self.queue_url)
                            .receipt_handle(receipt)
                            .visibility_timeout(delay.as_secs() as i32)
                            .send()
                            .await
                        {
                            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "cannot delay the retry");
                        }
                        disposition
                    }
                }
            }
            .instrument(span)
            .await;
            // Counted once its fate is known (a failed DLQ send is a retry).
            self.count(&disposition);
            if let (Disposition::Retry(_) | Disposition::Unavailable(_), Some(group)) =
                (&disposition, group)
            {
                held_groups.insert(group);
            }
            database_down |= matches!(disposition, Disposition::Unavailable(_));
            outcome.dispositions.push(disposition);
        }
        self.delete(to_delete).await?;
        Ok(outcome)
    }

    fn count(&self, disposition: &Disposition) {
        let consumer = &metrics::get().consumer;
        let queue = self.queue.name;
        let counter = match disposition {
            Disposition::Processed => consumer.processed.get_or_create(&QueueLabels { queue }),
            Disposition::Duplicate => consumer.duplicates.get_or_create(&QueueLabels { queue }),
            Disposition::Retry(_) => consumer.failed.get_or_create(&FailureLabels {
                queue,
                outcome: FAILED_RETRY,
            }),
            Disposition::Unavailable(_) => consumer.failed.get_or_create(&FailureLabels {
                queue,
                outcome: FAILED_UNAVAILABLE,
            }),
            Disposition::DeadLettered(_) => consumer.failed.get_or_create(&FailureLabels {
                queue,
                outcome: FAILED_DEAD_LETTER,
            }),
        };
        counter.inc();
    }

    /// Decides what to do with one message, applying it if it is good, in a
    /// span that continues the publisher's trace; returns the span too.
    async fn dispose(
        &self,
        message: &aws_sdk_sqs::types::Message,
        receive_count: u32,
    ) -> (Disposition, tracing::Span) {
        let decoded = self.decode(message.body().unwrap_or(""));
        let span = tracing::info_span!(
            "consumer.process",
            otel.name = format!("process {}", self.queue.name),
            otel.kind = "consumer",
            otel.status_description = Empty,
            messaging.system = "aws_sqs",
            messaging.destination.name = self.queue.name,
            messaging.operation.type = "process",
            messaging.operation.name = "process",
            messaging.message.id = message.message_id().unwrap_or_default(),
            messaging.message.conversation_id = Empty,
            queue = self.queue.name,
            event_id = Empty,
            event_type = Empty,
            order_id = Empty,
            correlation_id = Empty,
            receive_count,
        );
        // Set right after creating the span: its parent is fixed once it starts.
        let mut parent = propagation::extract(&SqsAttributeCarrier(message.message_attributes()));
        if !propagation::has_span(&parent)
            && let Ok((_, from_envelope)) = &decoded
        {
            parent = from_envelope.clone();
        }
        propagation::set_parent(&span, parent);
        let event = match decoded {
            Ok((event, _)) => event,
            Err(reason) => {
                span.record("otel.status_description", &reason);
                span.in_scope(|| tracing::error!(%reason, "poison message refused"));
                return (Disposition::DeadLettered(reason), span);
            }
        };
        span.record("event_id", tracing::field::display(event.id));
        span.record("event_type", event.event.event_type().as_str());
        span.record("order_id", tracing::field::display(event.event.order_id()));
        span.record("correlation_id", event.correlation_id.as_str());
        span.record(
            "messaging.message.conversation_id",
            event.correlation_id.as_str(),
        );
        let disposition = async {
            let started = Instant::now();
            let applied = self.apply(&event).await;
            metrics::get()
                .consumer
                .handled(self.queue.name, started.elapsed());
            match applied {
                Ok(true) => {
                    tracing::info!("event applied");
                    Disposition::Processed
                }
                Ok(false) => {
                    tracing::info!("duplicate event skipped");
                    Disposition::Duplicate
                }
                Err(HandlerError::Retry(reason)) => {
                    tracing::Span::current().record("otel.status_description", &reason);
                    Disposition::Retry(reason)
                }
                Err(HandlerError::Unavailable(reason)) => {
                    tracing::Span::current().record("otel.status_description", &reason);
                    Disposition::Unavailable(reason)
                }
                Err(HandlerError::Reject(reason)) => {
                    tracing::Span::current().record("otel.status_description", &reason);
                    tracing::error!(%reason, "handler rejected the event");
                    Disposition::DeadLettered(reason)
                }
            }
        }
        .instrument(span.clone())
        .await;
        (disposition, span)
    }

    /// The event in `body`, and the trace context its envelope carries.
    fn decode(&self, body: &str) -> Result<(ReceivedEvent, opentelemetry::Context), String> {
        let mut envelope: Envelope = match self.queue.delivery() {
            Delivery::SnsRaw => {
                serde_json::from_str(body).map_err(|e| format!("not an event envelope: {e}"))?
            }
            Delivery::EventBridge => {
                // moto's EventBridge events have no `account`: only `detail` is read.
                #[derive(serde::Deserialize)]
                struct EventBridgeEvent {
                    detail: Envelope,
                }
                let ev: EventBridgeEvent = serde_json::from_str(body)
                    .map_err(|e| format!("not an EventBridge event with an envelope: {e}"))?;
                ev.detail
            }
        };
        let trace = propagation::extract(&EnvelopeCarrier(&mut envelope));
        let event = ReceivedEvent::decode(envelope).map_err(|e| e.to_string())?;
        let ty = event.event.event_type();
        if !self.queue.event_types.contains(&ty) {
            return Err(format!(
                "{} does not belong on {}",
                ty.as_str(),
                self.queue.name
            ));
        }
        let expected = self.expected_source;
        if event.source != expected {
            return Err(format!(
                "source '{}' is not '{}', the only publisher for {}",
                event.source, expected, self.queue.name
            ));
        }
        Ok((event, trace))
    }

    /// The inbox transaction: `Ok(false)` for a duplicate.
    async fn apply(&self, event: &ReceivedEvent) -> Result<bool, HandlerError> {
        let mut tx = self.pool.begin().await?;
        if !inbox::record(&mut tx, event, self.queue.name).await? {
            tx.rollback().await?;
            // Only a statistic: failing to count is no reason to redeliver.
            if let Err(e) = async {
                let mut conn = self.pool.acquire().await?;
                inbox::count_duplicate(&mut conn, event.id).await
            }
            .await
            {
                tracing::warn!(error = %e, "cannot count the duplicate");
            }
            return Ok(false);
        }
        failpoints::delay_point(failpoints::CONSUMER_HANDLE).await;
        self.handler.handle(event, &mut tx).await?;
        tx.commit().await?;
        // A crash here: applied but not deleted. The message comes back after
        // its visibility timeout and the inbox turns it into a duplicate.
        failpoints::crash_point(failpoints::CONSUMER_AFTER_COMMIT);
        Ok(true)
    }

    /// Sends `message` to the DLQ with its attributes and the reason. The
    /// outbox keeps one attribute free for `dlq_reason` (SQS carries ten);
    /// from a message that came with more, the extra ones are dropped.
    async fn dead_letter(
        &self,
        message: &aws_sdk_sqs::types::Message,
        reason: &str,
    ) -> Result<(), String> {
        let mut reason = reason.to_string();
        if reason.len() > 1000 {
            // On a character boundary: reasons quote the message's own text.
            let cut = (0..=1000)
                .rev()
                .find(|i| reason.is_char_boundary(*i))
                .unwrap_or(0);
            reason.truncate(cut);
        }
        let mut attributes: std::collections::HashMap<String, MessageAttributeValue> = message
            .message_attributes()
            .into_iter()
            .flatten()
            .filter(|(name, _)| name.as_str() != DLQ_REASON_ATTRIBUTE)
            .take(crate::outbox::limits::MAX_EVENT_ATTRIBUTES)
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        attributes.insert(
            DLQ_REASON_ATTRIBUTE.to_string(),
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(reason)
                .build()
                .map_err(|e| e.to_string())?,
        );
        let body = message.body().unwrap_or_default();
        let mut send = self
            .sqs
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(if body.is_empty() {
                "(empty body)"
            } else {
                body
            })
            .set_message_attributes(Some(attributes));
        if self.queue.fifo {
            // A FIFO DLQ needs a group and a deduplication id: keep the
            // order's group, and deduplicate on the broker's message id so a
            // retried send does not park the message twice.
            let group = message
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                .map(String::as_str)
                .unwrap_or("dead-letters");
            send = send
                .message_group_id(group)
                .message_deduplication_id(message.message_id().unwrap_or("unknown"));
        }
        send.send()
            .await
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
        Ok(())
    }

    async fn delete(&self, receipts: Vec<String>) -> Result<(), ConsumeError> {
        if receipts.is_empty() {
            return Ok(());
        }
        let entries = receipts
            .iter()
            .enumerate()
            .map(|(i, r)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(r)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConsumeError(e.to_string()))?;
        let out = self
            .sqs
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                ConsumeError(format!(
                    "delete: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                ))
            })?;
        for failed in out.failed() {
            // The effect is committed; a redelivery will be skipped by the inbox.
            tracing::warn!(
                id = failed.id(),
                code = failed.code(),
                "delete failed; the redelivery will be a duplicate"
            );
        }
        Ok(())
    }

    /// Polls until `shutdown`; the message batch in progress is finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = new_backoff();
        loop {
            // Only the receive races shutdown: a batch already received is
            // handled and deleted before the loop looks at the token again.
            let step = match tokio::select! {
                _ = shutdown.cancelled() => break,
                received = self.receive() => received,
            } {
                Ok(received) => self.handle_batch(received.messages()).await,
                Err(e) => Err(e),
            };
            if matches!(&step, Ok(outcome) if outcome.database_unavailable())
                && !self.wait_for_database(&shutdown).await
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
}

impl<H: Handler> Consumer<H> {
    /// Waits until the service's database answers, probing it with backoff
    /// (capped, for as long as it takes) rather than receiving messages that
    /// could only fail. `false` when shutdown came first.
    async fn wait_for_database(&self, shutdown: &CancellationToken) -> bool {
        tracing::warn!(
            queue = self.queue.name,
            "database unavailable; receiving paused until it answers"
        );
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(5))
            .with_jitter()
            .without_max_times()
            .build();
        let paused = tokio::time::Instant::now();
        let mut last_said = paused;
        loop {
            let probe = tokio::time::timeout(
                Duration::from_secs(2),
                sqlx::query("SELECT 1").execute(&self.pool),
            );
            let why = match probe.await {
                Ok(Ok(_)) => {
                    tracing::info!(queue = self.queue.name, paused_for = ?paused.elapsed(), "database answers; receiving again");
                    return true;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => "no answer within 2 s".to_string(),
            };
            // Say why now and then: a database that is up but refuses this
            // service (a rotated password) keeps it paused too.
            if last_said.elapsed() >= Duration::from_secs(30) {
                last_said = tokio::time::Instant::now();
                tracing::warn!(queue = self.queue.name, error = %why, paused_for = ?paused.elapsed(), "still waiting for the database");
            }
            let delay = backoff.next().unwrap_or(Duration::from_secs(5));
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// Looks up a queue's URL by its name.
pub async fn queue_url(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<String, ConsumeError> {
    aws_adapter::sqs::queue_url(sqs, name)
        .await
        .map_err(|e| ConsumeError(e.to_string()))
}

fn new_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build()
}

/// How long a failed message stays invisible before its next attempt: doubles
/// with the receive count (2 s, 4 s, 8 s...), capped at `max`.
pub fn retry_delay(receive_count: u32, max: Duration) -> Duration {
    Duration::from_secs(2u64.saturating_pow(receive_count.min(16))).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_per_receive_and_is_capped() {
        let cap = Duration::from_secs(300);
        assert_eq!(retry_delay(1, cap), Duration::from_secs(2));
        assert_eq!(retry_delay(3, cap), Duration::from_secs(8));
        assert_eq!(retry_delay(100, cap), cap);
        assert_eq!(
            retry_delay(3, Duration::from_secs(1)),
            Duration::from_secs(1)
        );
    }
}
