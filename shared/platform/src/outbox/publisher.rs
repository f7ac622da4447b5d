//! The broker side of the relay: SNS for the order service, EventBridge for the
//! invoice service. Both publish up to ten events per call and report each
//! entry's outcome, so one bad entry does not hold back the others.
//!
//! AWS also refuses a whole `PublishBatch` or `PutEvents` call whose entries
//! add up to more than 256 KiB (moto does not check; fakecloud does), and each
//! event may be up to that size. A batch therefore goes out in as many calls
//! as its sizes need; otherwise ten large events claimed together would be
//! refused together on every attempt, and the relay would never get past them.

use std::future::Future;
use std::ops::Range;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};

use super::limits::{self, MAX_MESSAGE_BYTES};
use super::store::OutboxMessage;

/// The whole call failed (broker unreachable, throttled, credentials): nothing
/// in the batch is known to be published.
#[derive(Debug, thiserror::Error)]
#[error("publish call failed: {0}")]
pub struct PublishError(pub String);

/// The outcome of one entry of a batch, in the order of the batch: the id
/// the broker gave the message (when it says), or why it refused it.
pub type EntryOutcome = Result<Option<String>, String>;

/// Splits entries of these sizes, in order, into runs whose sizes add up to
/// at most 256 KiB (an entry larger than that on its own gets a call of its
/// own, for the broker to refuse).
fn calls_within_limit(sizes: &[usize]) -> Vec<Range<usize>> {
    let mut calls = Vec::new();
    let (mut start, mut total) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && total + size > MAX_MESSAGE_BYTES {
            calls.push(start..i);
            (start, total) = (i, 0);
        }
        total += size;
    }
    if start < sizes.len() {
        calls.push(start..sizes.len());
    }
    calls
}

/// Sends `batch` through `send` in calls within the size limit. When the
/// first call fails as a whole, nothing is known to be published and the
/// error is returned, as for a broker that is down (the relay retries the
/// batch later). When a later call fails, the earlier ones are published, so
/// that call's entries fail one by one and are retried on their own.
async fn publish_in_calls<'a, Call, Answer>(
    batch: &'a [OutboxMessage],
    size: impl Fn(&OutboxMessage) -> usize,
    send: Call,
) -> Result<Vec<EntryOutcome>, PublishError>
where
    Call: Fn(&'a [OutboxMessage]) -> Answer,
    Answer: Future<Output = Result<Vec<EntryOutcome>, PublishError>>,
{
    let sizes: Vec<usize> = batch.iter().map(size).collect();
    let mut outcomes = Vec::with_capacity(batch.len());
    for call in calls_within_limit(&sizes) {
        let entries = call.len();
        match send(&batch[call]).await {
            Ok(sent) => outcomes.extend(sent),
            Err(e) if outcomes.is_empty() => return Err(e),
            Err(e) => outcomes.extend((0..entries).map(|_| Err(e.to_string()))),
        }
    }
    Ok(outcomes)
}

pub trait Publisher: Send + Sync + 'static {
    /// Publishes up to ten messages; returns one outcome per message, in order.
    fn publish(
        &self,
        batch: &[OutboxMessage],
    ) -> impl Future<Output = Result<Vec<EntryOutcome>, PublishError>> + Send;

    /// The destination, for logs.
    fn destination(&self) -> &str;

    /// The destination's name (a topic or bus name, not an ARN), for spans
    /// and metrics.
    fn destination_name(&self) -> &str {
        self.destination()
    }

    /// The messaging system, as OpenTelemetry's `messaging.system`.
    fn messaging_system(&self) -> &'static str;

    /// Whether the destination keeps each order's events in order (a FIFO
    /// topic). The relay then never publishes an event of an order while an
    /// earlier one of the same order is still unpublished.
    fn keeps_order(&self) -> bool {
        false
    }
}

/// Publishes to an SNS topic with the row's message attributes (the event
/// type, which subscription filter policies match on, among them). On a FIFO
/// topic each message is in its order's group (`MessageGroupId` = the order
/// id, the envelope's subject) and is deduplicated by its event id.
#[derive(Clone, Debug)]
pub struct SnsPublisher {
    client: aws_sdk_sns::Client,
    topic_arn: String,
    topic_name: String,
    fifo: bool,
}

impl SnsPublisher {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: String, fifo: bool) -> Self {
        let topic_name = topic_arn
            .rsplit(':')
            .next()
            .unwrap_or(&topic_arn)
            .to_string();
        SnsPublisher {
            client,
            topic_arn,
            topic_name,
            fifo,
        }
    }
}

impl Publisher for SnsPublisher {
    async fn publish(&self, batch: &[OutboxMessage]) -> Result<Vec<EntryOutcome>, PublishError> {
        publish_in_calls(
            batch,
            |m| limits::message_size(&m.payload, &m.attributes),
            |call| self.publish_call(call),
        )
        .await
    }

    fn destination(&self) -> &str {
        &self.topic_arn
    }

    fn destination_name(&self) -> &str {
        &self.topic_name
    }

    fn messaging_system(&self) -> &'static str {
        "aws_sns"
    }

    fn keeps_order(&self) -> bool {
        self.fifo
    }
}

impl SnsPublisher {
    /// One `PublishBatch` call.
    async fn publish_call(
        &self,
        batch: &[OutboxMessage],
    ) -> Result<Vec<EntryOutcome>, PublishError> {
        let mut entries = Vec::with_capacity(batch.len());
        for (i, m) in batch.iter().enumerate() {
            let mut entry = PublishBatchRequestEntry::builder()
                .id(i.to_string())
                .message(&m.payload);
            if self.fifo {
                entry = entry
                    .message_group_id(&m.subject)
                    .message_deduplication_id(m.id.to_string());
            }
            for (name, value) in m.attributes.iter() {
                let attr = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(value)
                    .build()
                    .map_err(|e| PublishError(e.to_string()))?;
                entry = entry.message_attributes(name, attr);
            }
            entries.push(entry.build().map_err(|e| PublishError(e.to_string()))?);
        }
        let out = self
            .client
            .publish_batch()
            .topic_arn(&self.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await
            .map_err(|e| PublishError(aws_sdk_sns::error::DisplayErrorContext(e).to_string()))?;
        let mut outcomes: Vec<EntryOutcome> =
            vec![Err("no result for entry".to_string()); batch.len()];
        for ok in out.successful() {
            if let Some(i) = ok
                .id()
                .and_then(|id| id.parse::<usize>().ok())
                .filter(|i| *i < batch.len())
            {
                outcomes[i] = Ok(ok.message_id().map(str::to_string));
            }
        }
        for failed in out.failed() {
            if let Ok(i) = failed.id().parse::<usize>()
                && i < batch.len()
            {
                outcomes[i] = Err(format!(
                    "{}: {}",
                    failed.code(),
                    failed.message().unwrap_or("")
                ));
            }
        }
        Ok(outcomes)
    }
}

/// Puts events on an EventBridge bus: `source` is the producing service,
/// `detail-type` the event type and `detail` the whole envelope.
#[derive(Clone, Debug)]
pub struct EventBridgePublisher {
    client: aws_sdk_eventbridge::Client,
    bus: String,
    source: String,
}

impl EventBridgePublisher {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: String, source: String) -> Self {
        EventBridgePublisher {
            client,
            bus,
            source,
        }
    }
}

impl Publisher for EventBridgePublisher {
    async fn publish(&self, batch: &[OutboxMessage]) -> Result<Vec<EntryOutcome>, PublishError> {
        publish_in_calls(
            batch,
            |m| limits::eventbridge_entry_size(&self.source, &m.event_type, &m.payload),
            |call| self.put_events_call(call),
        )
        .await
    }

    fn destination(&self) -> &str {
        &self.bus
    }

    fn messaging_system(&self) -> &'static str {
        "aws_eventbridge"
    }
}

impl EventBridgePublisher {
    /// One `PutEvents` call.
    async fn put_events_call(
        &self,
        batch: &[OutboxMessage],
    ) -> Result<Vec<EntryOutcome>, PublishError> {
        let entries = batch
            .iter()
            .map(|m| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(&self.source)
                    .detail_type(&m.event_type)
                    .detail(&m.payload)
                    .build()
            })
            .collect();
        let out = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                PublishError(aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string())
            })?;
        // PutEvents answers one result entry per request entry, in order.
        let results = out.entries();
        Ok((0..batch.len())
            .map(|i| match results.get(i) {
                Some(r) if r.error_code().is_none() => Ok(r.event_id().map(str::to_string)),
                Some(r) => Err(format!(
                    "{}: {}",
                    r.error_code().unwrap_or(""),
                    r.error_message().unwrap_or("")
                )),
                None => Err("no result for entry".to_string()),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: usize = 1024;

    #[test]
    fn small_entries_go_out_in_one_call() {
        assert_eq!(calls_within_limit(&[500; 10]), vec![0..10]);
        assert_eq!(calls_within_limit(&[]), Vec::<Range<usize>>::new());
    }

    #[test]
    fn entries_that_add_up_past_256_kib_are_split_in_order() {
        // Ten events of 60 KiB: four fit in 256 KiB, the fifth does not.
        assert_eq!(calls_within_limit(&[60 * KIB; 10]), vec![0..4, 4..8, 8..10]);
        // Exactly the limit still fits in one call.
        assert_eq!(calls_within_limit(&[128 * KIB, 128 * KIB]), vec![0..2]);
        assert_eq!(
            calls_within_limit(&[128 * KIB, 128 * KIB, 1]),
            vec![0..2, 2..3]
        );
    }

    #[test]
    fn an_entry_over_the_limit_is_alone_in_its_call() {
        assert_eq!(
            calls_within_limit(&[KIB, 300 * KIB, KIB, KIB]),
            vec![0..1, 1..2, 2..4]
        );
    }
}
