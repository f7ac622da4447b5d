//! What a function is invoked with, and an SQS record as the consumer's
//! `Message`.
//!
//! Two kinds of invocation reach the function: an SQS event from an event
//! source mapping, and the EventBridge schedule's event that asks for a sweep
//! of the outbox. Anything else is refused with a clear error rather than
//! guessed at. A record becomes the `aws_sdk_sqs` `Message` the long-running
//! consumer receives (body, ids, the system attributes it reads, the message
//! attributes that carry the trace context), so that both drivers hand the
//! consumer the same thing.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};
use serde_json::Value;

/// One invocation's event.
#[derive(Debug)]
pub enum Invocation {
    /// Messages from one queue's event source mapping.
    Sqs {
        queue: String,
        records: Vec<SqsMessage>,
    },
    /// The schedule's event: sweep the outbox.
    Sweep,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvocationError {
    #[error("not an SQS event: {0}")]
    NotSqs(String),
    #[error("an SQS event must come from one queue; it has records from {0:?}")]
    SeveralQueues(Vec<String>),
    #[error("an SQS event with no records")]
    NoRecords,
    #[error(
        "an event this function does not handle: neither SQS records nor an EventBridge scheduled event"
    )]
    Unknown,
}

impl Invocation {
    pub fn parse(event: Value) -> Result<Invocation, InvocationError> {
        if event.get("Records").is_some() {
            let sqs: SqsEvent = serde_json::from_value(event)
                .map_err(|e| InvocationError::NotSqs(e.to_string()))?;
            if sqs.records.is_empty() {
                return Err(InvocationError::NoRecords);
            }
            let mut queues: Vec<String> = sqs
                .records
                .iter()
                .map(|r| queue_name(r.event_source_arn.as_deref().unwrap_or_default()))
                .collect();
            queues.dedup();
            return match <[String; 1]>::try_from(queues) {
                Ok([queue]) => Ok(Invocation::Sqs {
                    queue,
                    records: sqs.records,
                }),
                Err(queues) => Err(InvocationError::SeveralQueues(queues)),
            };
        }
        let scheduled = event.get("source").and_then(Value::as_str) == Some("aws.events")
            && event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event");
        if scheduled {
            Ok(Invocation::Sweep)
        } else {
            Err(InvocationError::Unknown)
        }
    }
}

/// The queue's name: the last part of its ARN (`arn:aws:sqs:region:account:name`).
fn queue_name(arn: &str) -> String {
    arn.rsplit(':').next().unwrap_or_default().to_string()
}

/// A record as the message a receive would have returned.
pub fn message_of(record: &SqsMessage) -> Message {
    let attributes: HashMap<MessageSystemAttributeName, String> = record
        .attributes
        .iter()
        .map(|(name, value)| {
            (
                MessageSystemAttributeName::from(name.as_str()),
                value.clone(),
            )
        })
        .collect();
    let message_attributes: HashMap<String, MessageAttributeValue> = record
        .message_attributes
        .iter()
        .filter_map(|(name, value)| {
            let built = MessageAttributeValue::builder()
                .set_string_value(value.string_value.clone())
                .set_data_type(value.data_type.clone())
                .build()
                .ok()?;
            Some((name.clone(), built))
        })
        .collect();
    Message::builder()
        .set_message_id(record.message_id.clone())
        .set_receipt_handle(record.receipt_handle.clone())
        .set_body(record.body.clone())
        .set_attributes(Some(attributes))
        .set_message_attributes(Some(message_attributes))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(id: &str, queue: &str) -> Value {
        json!({
            "messageId": id,
            "receiptHandle": format!("rh-{id}"),
            "body": "{\"id\":1}",
            "attributes": {"ApproximateReceiveCount": "3", "MessageGroupId": "order-1"},
            "messageAttributes": {
                "traceparent": {"stringValue": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "dataType": "String"}
            },
            "eventSource": "aws:sqs",
            "eventSourceARN": format!("arn:aws:sqs:us-east-1:000000000000:{queue}"),
            "awsRegion": "us-east-1"
        })
    }

    #[test]
    fn an_sqs_event_names_its_queue_and_its_records_become_messages() {
        let event =
            json!({"Records": [record("m-1", "invoice-orders"), record("m-2", "invoice-orders")]});
        let Ok(Invocation::Sqs { queue, records }) = Invocation::parse(event) else {
            panic!("an SQS event");
        };
        assert_eq!(queue, "invoice-orders");
        let message = message_of(&records[0]);
        assert_eq!(message.message_id(), Some("m-1"));
        assert_eq!(message.receipt_handle(), Some("rh-m-1"));
        assert_eq!(message.body(), Some("{\"id\":1}"));
        assert_eq!(platform_receive_count(&message), Some("3"));
        assert_eq!(
            message
                .message_attributes()
                .and_then(|a| a.get("traceparent"))
                .and_then(|v| v.string_value()),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
    }

    fn platform_receive_count(message: &Message) -> Option<&str> {
        message
            .attributes()?
            .get(&MessageSystemAttributeName::ApproximateReceiveCount)
            .map(String::as_str)
    }

    #[test]
    fn records_from_two_queues_are_refused() {
        let event =
            json!({"Records": [record("m-1", "invoice-orders"), record("m-2", "order-invoices")]});
        assert_eq!(
            Invocation::parse(event).expect_err("two queues"),
            InvocationError::SeveralQueues(vec!["invoice-orders".into(), "order-invoices".into()])
        );
        assert_eq!(
            Invocation::parse(json!({"Records": []})).expect_err("no records"),
            InvocationError::NoRecords
        );
    }

    #[test]
    fn the_schedule_asks_for_a_sweep_and_anything_else_is_refused() {
        let schedule =
            json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        assert!(matches!(Invocation::parse(schedule), Ok(Invocation::Sweep)));
        let other = json!({"source": "aws.s3", "detail-type": "Object Created"});
        assert_eq!(
            Invocation::parse(other).expect_err("not ours"),
            InvocationError::Unknown
        );
        let bad = json!({"Records": "not a list"});
        assert!(matches!(
            Invocation::parse(bad),
            Err(InvocationError::NotSqs(_))
        ));
    }
}
