//! Listing a DLQ without consuming it.
//!
//! SQS has no "peek": a message can only be looked at by receiving it. So the
//! listing receives with a short visibility timeout, describes what it got,
//! and then makes every received message visible again at once
//! (`ChangeMessageVisibility` 0). If the command dies in between, the messages
//! come back by themselves after `PEEK_VISIBILITY_SECS`. Nothing is deleted.
//!
//! Looking has one visible cost: every receive adds one to a message's
//! `ApproximateReceiveCount`, so the count shown includes earlier listings.

use std::collections::{HashMap, HashSet};

use aws_adapter::sqs::{self, DLQ_REASON_ATTRIBUTE, Receive};
use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};
use chrono::{DateTime, Utc};
use contracts::topology::{QueueSpec, Topology};

use super::{Depth, DlqError, QueueAddress, address, depth};
use crate::retry::bounded;

/// How long a listed message stays hidden if the listing cannot release it.
pub const PEEK_VISIBILITY_SECS: i32 = 30;

/// Long polling, briefly: it asks every SQS server, where a short poll may
/// answer "empty" from a sample of them.
const PEEK_WAIT_SECS: i32 = 1;

/// What EventBridge sets on an event it could not deliver to a target.
const EVENTBRIDGE_ERROR_CODE: &str = "ERROR_CODE";
const EVENTBRIDGE_ERROR_MESSAGE: &str = "ERROR_MESSAGE";

/// How much of a body that is not an event is shown.
const BODY_PREVIEW_CHARS: usize = 160;

/// One DLQ: its depth and the messages looked at.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DlqListing {
    /// The source queue, where a redrive sends the messages.
    pub queue: String,
    pub dlq: String,
    pub depth: Depth,
    /// At most the limit asked for; fewer than `depth` when there are more.
    pub messages: Vec<DeadLetter>,
}

/// Who put a message in the DLQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeadLetteredBy {
    /// The consumer refused it and said why (`dlq_reason`).
    Consumer,
    /// SQS, after `maxReceiveCount` failed receives.
    RedrivePolicy,
    /// EventBridge, when it could not deliver to the rule's target.
    Eventbridge,
    /// None of the above left a trace: someone sent it to the DLQ directly.
    Unknown,
}

/// One message in a DLQ.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    pub message_id: String,
    /// From the envelope, when the body is one of our events.
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub order_id: Option<String>,
    pub dead_lettered_by: DeadLetteredBy,
    pub reason: String,
    /// `ApproximateReceiveCount` before this look: the receives in the source
    /// queue plus earlier listings.
    pub receive_count: u32,
    /// `SentTimestamp`: when the consumer sent it to the DLQ, or, for a
    /// message the redrive policy moved, when it was first sent to the source
    /// queue (SQS keeps the original timestamp).
    pub sent_at: Option<DateTime<Utc>>,
    /// The start of the body, when it is not an event.
    pub body_preview: Option<String>,
}

/// Lists every DLQ of `topology`, up to `limit` messages each.
pub async fn list_all(
    sqs: &aws_sdk_sqs::Client,
    topology: &Topology,
    limit: usize,
) -> Result<Vec<DlqListing>, DlqError> {
    let mut listings = Vec::with_capacity(topology.queues.len());
    for queue in &topology.queues {
        listings.push(list(sqs, queue, limit).await?);
    }
    Ok(listings)
}

/// Lists the DLQ of `queue`, up to `limit` messages, leaving them all in place.
#[tracing::instrument(skip_all, fields(queue = queue.name), err)]
pub async fn list(
    sqs: &aws_sdk_sqs::Client,
    queue: &QueueSpec,
    limit: usize,
) -> Result<DlqListing, DlqError> {
    let dlq = address(sqs, &queue.dlq_name()).await?;
    let depth = depth(sqs, &dlq).await?;
    let mut held = Vec::new();
    let peeked = peek(
        sqs,
        &dlq,
        limit,
        depth.visible,
        queue.max_receive_count,
        &mut held,
    )
    .await;
    // Released whatever happened: a listing must not hide messages.
    release(sqs, &dlq, &held).await;
    Ok(DlqListing {
        queue: queue.name.to_string(),
        dlq: dlq.name,
        depth,
        messages: peeked?,
    })
}

/// Receives up to `limit` messages (of the `expected` visible ones), keeping
/// each receipt handle in `held` so the caller can release them.
async fn peek(
    sqs: &aws_sdk_sqs::Client,
    dlq: &QueueAddress,
    limit: usize,
    expected: u64,
    max_receive_count: u32,
    held: &mut Vec<String>,
) -> Result<Vec<DeadLetter>, DlqError> {
    let step = format!("receive from {}", dlq.name);
    let mut seen = HashSet::new();
    let mut letters = Vec::new();
    // Each round adds at least one message or ends the loop; the bound only
    // guards against an endpoint that hands out the same message twice.
    for _ in 0..limit.div_ceil(sqs::MAX_BATCH) + 2 {
        if letters.len() >= limit || letters.len() as u64 >= expected {
            break;
        }
        let how = Receive {
            max_messages: (limit - letters.len()).min(sqs::MAX_BATCH) as i32,
            wait_secs: PEEK_WAIT_SECS,
            visibility_secs: PEEK_VISIBILITY_SECS,
            system_attributes: &[MessageSystemAttributeName::All],
        };
        let received = bounded(&step, || sqs::receive(sqs, &dlq.url, &how))
            .await
            .map_err(DlqError::sqs(&step))?;
        if received.is_empty() {
            break;
        }
        for message in &received {
            if let Some(receipt) = message.receipt_handle() {
                held.push(receipt.to_string());
            }
            if seen.insert(message.message_id().unwrap_or_default().to_string()) {
                letters.push(describe(message, max_receive_count));
            }
        }
    }
    Ok(letters)
}

/// Makes the received messages visible again; a failure only delays them.
async fn release(sqs: &aws_sdk_sqs::Client, dlq: &QueueAddress, receipts: &[String]) {
    let step = format!("release messages of {}", dlq.name);
    for chunk in receipts.chunks(sqs::MAX_BATCH) {
        let result = bounded(&step, || {
            sqs::change_visibility_batch(sqs, &dlq.url, chunk, 0)
        })
        .await
        .map(|out| out.failed.len())
        .map_err(|e| e.cause);
        match result {
            Ok(0) => {}
            Ok(failed) => tracing::warn!(
                failed,
                dlq = dlq.name,
                "some messages stay hidden for up to {PEEK_VISIBILITY_SECS} s"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                dlq = dlq.name,
                "messages stay hidden for up to {PEEK_VISIBILITY_SECS} s"
            ),
        }
    }
}

fn describe(message: &Message, max_receive_count: u32) -> DeadLetter {
    // This receive counted too.
    let receive_count = sqs::receive_count(message).unwrap_or(1).saturating_sub(1);
    let sent_at = sqs::system_attribute(message, MessageSystemAttributeName::SentTimestamp)
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(DateTime::from_timestamp_millis);
    let moved_from = sqs::system_attribute(
        message,
        MessageSystemAttributeName::DeadLetterQueueSourceArn,
    );
    let (dead_lettered_by, reason) = reason(
        message.message_attributes(),
        moved_from.is_some(),
        receive_count,
        max_receive_count,
    );
    let body = message.body().unwrap_or_default();
    let event = EventFields::of(body);
    DeadLetter {
        message_id: message.message_id().unwrap_or_default().to_string(),
        body_preview: event
            .is_none()
            .then(|| body.chars().take(BODY_PREVIEW_CHARS).collect()),
        event_id: event.as_ref().and_then(|e| e.id.clone()),
        event_type: event.as_ref().and_then(|e| e.event_type.clone()),
        order_id: event.and_then(|e| e.order_id),
        dead_lettered_by,
        reason,
        receive_count,
        sent_at,
    }
}

/// Why the message is in the DLQ, from the traces each path leaves. SQS marks
/// what its redrive policy moved with `DeadLetterQueueSourceArn`; emulators
/// that do not (moto) still leave the receive count.
fn reason(
    attributes: Option<&HashMap<String, MessageAttributeValue>>,
    moved_by_sqs: bool,
    receive_count: u32,
    max_receive_count: u32,
) -> (DeadLetteredBy, String) {
    let text = |name: &str| {
        attributes
            .and_then(|a| a.get(name))
            .and_then(|v| v.string_value())
            .map(str::to_string)
    };
    if let Some(reason) = text(DLQ_REASON_ATTRIBUTE) {
        return (DeadLetteredBy::Consumer, reason);
    }
    let code = text(EVENTBRIDGE_ERROR_CODE);
    let message = text(EVENTBRIDGE_ERROR_MESSAGE);
    if code.is_some() || message.is_some() {
        let detail = [code, message].into_iter().flatten().collect::<Vec<_>>();
        return (
            DeadLetteredBy::Eventbridge,
            format!("EventBridge could not deliver it: {}", detail.join(": ")),
        );
    }
    if moved_by_sqs || receive_count >= max_receive_count {
        return (
            DeadLetteredBy::RedrivePolicy,
            format!("exceeded maxReceiveCount (received {receive_count} times)"),
        );
    }
    (
        DeadLetteredBy::Unknown,
        format!(
            "no reason recorded, and received only {receive_count} time(s) of maxReceiveCount {max_receive_count}: sent to the DLQ directly"
        ),
    )
}

/// The envelope fields worth showing, from a raw SNS body (the envelope) or an
/// EventBridge event (the envelope is its `detail`).
#[derive(Debug, PartialEq, Eq)]
struct EventFields {
    id: Option<String>,
    event_type: Option<String>,
    order_id: Option<String>,
}

impl EventFields {
    fn of(body: &str) -> Option<EventFields> {
        let value: serde_json::Value = serde_json::from_str(body).ok()?;
        let envelope = match value.get("detail") {
            Some(detail) if detail.is_object() => detail,
            _ => &value,
        };
        let field = |name: &str| {
            envelope
                .get(name)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let fields = EventFields {
            id: field("id"),
            event_type: field("type"),
            order_id: field("subject"),
        };
        (fields.id.is_some() || fields.event_type.is_some()).then_some(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes(pairs: &[(&str, &str)]) -> HashMap<String, MessageAttributeValue> {
        pairs
            .iter()
            .map(|(k, v)| {
                let value = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(*v)
                    .build()
                    .expect("valid attribute");
                (k.to_string(), value)
            })
            .collect()
    }

    #[test]
    fn the_consumer_reason_wins() {
        let a = attributes(&[("dlq_reason", "unknown event type 'X'")]);
        assert_eq!(
            reason(Some(&a), false, 1, 5),
            (
                DeadLetteredBy::Consumer,
                "unknown event type 'X'".to_string()
            )
        );
    }

    #[test]
    fn without_a_reason_the_redrive_policy_moved_it() {
        let expected = |n: u32| {
            (
                DeadLetteredBy::RedrivePolicy,
                format!("exceeded maxReceiveCount (received {n} times)"),
            )
        };
        // moto: no source ARN, but the receive count reached the maximum.
        assert_eq!(reason(None, false, 5, 5), expected(5));
        // AWS: the source ARN says so, whatever the count.
        assert_eq!(reason(None, true, 2, 5), expected(2));
    }

    #[test]
    fn a_message_without_any_trace_is_not_blamed_on_the_redrive_policy() {
        let (by, text) = reason(None, false, 0, 5);
        assert_eq!(by, DeadLetteredBy::Unknown);
        assert!(text.starts_with("no reason recorded"), "{text}");
    }

    #[test]
    fn eventbridge_delivery_failures_show_their_code_and_message() {
        let a = attributes(&[
            ("ERROR_CODE", "SDK_CLIENT_ERROR"),
            ("ERROR_MESSAGE", "no access"),
        ]);
        let (by, text) = reason(Some(&a), false, 0, 5);
        assert_eq!(by, DeadLetteredBy::Eventbridge);
        assert_eq!(
            text,
            "EventBridge could not deliver it: SDK_CLIENT_ERROR: no access"
        );
    }

    #[test]
    fn event_fields_come_from_a_raw_envelope_or_an_eventbridge_detail() {
        let envelope = r#"{"id":"e1","type":"OrderPlaced","subject":"o1","data":{}}"#;
        let expected = Some(EventFields {
            id: Some("e1".into()),
            event_type: Some("OrderPlaced".into()),
            order_id: Some("o1".into()),
        });
        assert_eq!(EventFields::of(envelope), expected);
        let wrapped = format!(r#"{{"detail-type":"OrderPlaced","detail":{envelope}}}"#);
        assert_eq!(EventFields::of(&wrapped), expected);
    }

    #[test]
    fn a_body_that_is_not_an_event_has_no_fields() {
        assert_eq!(EventFields::of("not json"), None);
        assert_eq!(EventFields::of(r#"{"hello":"world"}"#), None);
    }
}
