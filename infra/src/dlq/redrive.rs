//! Moving messages from a DLQ back to its source queue.
//!
//! SQS has an API for this, `StartMessageMoveTask`: it moves every message of
//! a DLQ back in the background. The redrive uses it first and waits for the
//! task to finish. Some endpoints do not have it (moto 5.2.5 answers HTTP 500
//! "not implemented"), and it cannot stop after a number of messages; then the
//! command moves the messages itself, one by one:
//!
//! 1. receive from the DLQ (the message stays hidden while it is moved);
//! 2. send it to the source queue: body unchanged, message attributes kept
//!    except `dlq_reason`, which no longer holds once the cause is fixed;
//! 3. delete it from the DLQ, only after the send succeeded.
//!
//! A crash between 2 and 3 leaves the message in both queues: redriving
//! duplicates, never loses. The consumers' inboxes absorb the duplicate.
//! `StartMessageMoveTask` moves messages unchanged, so on AWS the redriven
//! message still carries its `dlq_reason`; the consumer ignores it.
//!
//! Without `--max` the command moves as many messages as the DLQ held when it
//! began, so a message that fails again at once and comes back cannot keep it
//! busy forever. Every SQS call is retried a bounded number of times with
//! backoff; when one still fails, the command stops and says how many
//! messages it moved.

use std::collections::HashMap;
use std::time::Duration;

use aws_adapter::sqs::{self, DLQ_REASON_ATTRIBUTE, Receive};
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};
use backon::{BackoffBuilder, ExponentialBuilder};
use contracts::topology::QueueSpec;

use super::{DlqError, QueueAddress, address, depth};
use crate::retry::bounded;

/// How long a message being moved stays hidden in the DLQ. If the command
/// dies mid-move, the message is back in the DLQ after this.
const MOVE_VISIBILITY_SECS: i32 = 60;

/// Error codes with which an endpoint says it does not have an operation.
const UNSUPPORTED_CODES: &[&str] = &[
    "UnsupportedOperation",
    "AWS.SimpleQueueService.UnsupportedOperation",
    "InvalidAction",
    "UnknownOperationException",
    "NotImplemented",
    "NotImplementedException",
];

#[derive(Debug, Clone)]
pub struct RedriveOptions {
    /// Move at most this many messages. `None`: as many as the DLQ held when
    /// the redrive began.
    pub max: Option<u64>,
    /// How long to wait for a `StartMessageMoveTask` to finish.
    pub task_deadline: Duration,
}

impl Default for RedriveOptions {
    fn default() -> Self {
        RedriveOptions {
            max: None,
            task_deadline: Duration::from_secs(15 * 60),
        }
    }
}

/// How the messages were moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedriveMethod {
    /// SQS moved them (`StartMessageMoveTask`).
    MessageMoveTask,
    /// This command moved them one by one.
    MessageByMessage,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RedriveReport {
    pub queue: String,
    pub dlq: String,
    pub method: RedriveMethod,
    /// Messages now on the source queue.
    pub moved: u64,
    /// Of those, how many could not be deleted from the DLQ afterwards: they
    /// are in both queues, and a second redrive delivers them again (the
    /// inbox absorbs it).
    pub also_left_in_dlq: u64,
    /// Why the messages were moved one by one, when they were.
    pub note: Option<String>,
}

/// Moves messages from `queue`'s DLQ back to `queue`.
#[tracing::instrument(skip_all, fields(queue = queue.name), err)]
pub async fn redrive(
    sqs: &aws_sdk_sqs::Client,
    queue: &QueueSpec,
    options: &RedriveOptions,
) -> Result<RedriveReport, DlqError> {
    let source = address(sqs, queue.name).await?;
    let dlq = address(sqs, &queue.dlq_name()).await?;
    let note = match options.max {
        Some(max) => format!(
            "--max {max}: StartMessageMoveTask cannot stop after a number of messages, so they were moved one by one"
        ),
        None => match start_move_task(sqs, &source, &dlq).await? {
            MoveTask::Started(handle) => {
                let moved = await_move_task(sqs, &dlq, &handle, options.task_deadline).await?;
                return Ok(RedriveReport {
                    queue: source.name,
                    dlq: dlq.name,
                    method: RedriveMethod::MessageMoveTask,
                    moved,
                    also_left_in_dlq: 0,
                    note: None,
                });
            }
            MoveTask::Unavailable(why) => why,
        },
    };
    tracing::info!(%note, "moving messages one by one");
    let limit = match options.max {
        Some(max) => max,
        None => depth(sqs, &dlq).await?.total(),
    };
    let moved = move_by_hand(sqs, &source, &dlq, limit).await?;
    Ok(RedriveReport {
        queue: source.name,
        dlq: dlq.name,
        method: RedriveMethod::MessageByMessage,
        moved: moved.moved,
        also_left_in_dlq: moved.also_left_in_dlq,
        note: Some(note),
    })
}

enum MoveTask {
    Started(String),
    /// The endpoint does not have the API; why, in words.
    Unavailable(String),
}

async fn start_move_task(
    sqs: &aws_sdk_sqs::Client,
    source: &QueueAddress,
    dlq: &QueueAddress,
) -> Result<MoveTask, DlqError> {
    // Not wrapped in our retry: the SDK already retries what is transient,
    // and "not implemented" does not get better.
    match sqs
        .start_message_move_task()
        .source_arn(&dlq.arn)
        .destination_arn(&source.arn)
        .send()
        .await
    {
        Ok(out) => {
            let handle = out.task_handle().unwrap_or_default().to_string();
            tracing::info!(%handle, "message move task started");
            Ok(MoveTask::Started(handle))
        }
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            let code = e.code().map(str::to_string);
            let unsupported = e
                .as_service_error()
                .is_some_and(|s| s.is_unsupported_operation())
                || move_task_unavailable(status, code.as_deref());
            if unsupported {
                let answer = match (status, code) {
                    (Some(s), Some(c)) => format!("HTTP {s}, {c}"),
                    (Some(s), None) => format!("HTTP {s}"),
                    (None, Some(c)) => c,
                    (None, None) => "no answer".to_string(),
                };
                Ok(MoveTask::Unavailable(format!(
                    "StartMessageMoveTask is not available at this endpoint ({answer}), so the messages were moved one by one"
                )))
            } else {
                Err(DlqError::aws(format!(
                    "StartMessageMoveTask on {}",
                    dlq.name
                ))(e))
            }
        }
    }
}

/// Whether an error answer to `StartMessageMoveTask` means the endpoint does
/// not have the operation: an "unsupported" error code, HTTP 501, or an HTTP
/// 404/500 that is not an AWS error at all (moto's "not implemented" page).
pub fn move_task_unavailable(status: Option<u16>, code: Option<&str>) -> bool {
    match code {
        Some(code) => UNSUPPORTED_CODES.contains(&code) || status == Some(501),
        None => matches!(status, Some(404 | 500 | 501)),
    }
}

/// Polls `ListMessageMoveTasks` until the task ends or `deadline` passes.
async fn await_move_task(
    sqs: &aws_sdk_sqs::Client,
    dlq: &QueueAddress,
    handle: &str,
    deadline: Duration,
) -> Result<u64, DlqError> {
    let started = tokio::time::Instant::now();
    // A task that began before this call is not ours; a minute of slack for
    // the difference between this clock and AWS's.
    let not_before_ms = chrono::Utc::now().timestamp_millis() - 60_000;
    let mut backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(10))
        .without_max_times()
        .build();
    let step = format!("ListMessageMoveTasks on {}", dlq.name);
    loop {
        let listed = bounded(&step, || {
            sqs.list_message_move_tasks()
                .source_arn(&dlq.arn)
                .max_results(10)
                .send()
        })
        .await
        .map_err(DlqError::aws(&step))?;
        // SQS shows the handle only while a task runs, and runs one task per
        // source queue at a time: once ours is done it is the newest one, if
        // it started after our call (an older finished task is not ours).
        let task = listed
            .results()
            .iter()
            .find(|t| t.task_handle() == Some(handle))
            .or_else(|| {
                listed
                    .results()
                    .first()
                    .filter(|t| t.started_timestamp() >= not_before_ms)
            });
        let status = task.and_then(|t| t.status()).unwrap_or("not listed yet");
        match (status, task) {
            ("COMPLETED", Some(task)) => {
                return Ok(u64::try_from(task.approximate_number_of_messages_moved()).unwrap_or(0));
            }
            ("FAILED" | "CANCELLED", _) => {
                return Err(DlqError::MoveTask {
                    queue: dlq.name.clone(),
                    status: status.to_string(),
                    reason: task
                        .and_then(|t| t.failure_reason())
                        .unwrap_or("no reason given")
                        .to_string(),
                });
            }
            _ => {}
        }
        if started.elapsed() >= deadline {
            return Err(DlqError::MoveTask {
                queue: dlq.name.clone(),
                status: format!("still {status}"),
                reason: format!(
                    "not finished after {deadline:?}; it goes on in the background (ListMessageMoveTasks shows it)"
                ),
            });
        }
        tokio::time::sleep(backoff.next().unwrap_or(Duration::from_secs(10))).await;
    }
}

#[derive(Debug, Default)]
struct Moved {
    moved: u64,
    also_left_in_dlq: u64,
}

/// Moves up to `limit` messages from `dlq` to `source`, one by one.
async fn move_by_hand(
    sqs: &aws_sdk_sqs::Client,
    source: &QueueAddress,
    dlq: &QueueAddress,
    limit: u64,
) -> Result<Moved, DlqError> {
    let mut done = Moved::default();
    let step = format!("receive from {}", dlq.name);
    // Every round moves at least one message, or ends the redrive.
    for _ in 0..=limit {
        if done.moved >= limit {
            break;
        }
        let how = Receive {
            max_messages: (limit - done.moved).min(sqs::MAX_BATCH as u64) as i32,
            wait_secs: 1,
            visibility_secs: MOVE_VISIBILITY_SECS,
            system_attributes: &[MessageSystemAttributeName::MessageGroupId],
        };
        let received = bounded(&step, || sqs::receive(sqs, &dlq.url, &how))
            .await
            .map_err(|e| DlqError::Interrupted {
                queue: source.name.clone(),
                moved: done.moved,
                cause: format!("{step}: {}", e.cause),
            })?;
        if received.is_empty() {
            break;
        }
        for message in &received {
            let deleted = move_one(sqs, source, dlq, message).await.map_err(|cause| {
                DlqError::Interrupted {
                    queue: source.name.clone(),
                    moved: done.moved,
                    cause,
                }
            })?;
            done.moved += 1;
            if !deleted {
                done.also_left_in_dlq += 1;
            }
        }
    }
    Ok(done)
}

/// Sends one message to the source queue, then deletes it from the DLQ.
/// `Ok(false)`: sent, but still in the DLQ too.
async fn move_one(
    sqs: &aws_sdk_sqs::Client,
    source: &QueueAddress,
    dlq: &QueueAddress,
    message: &Message,
) -> Result<bool, String> {
    let receipt = message
        .receipt_handle()
        .ok_or("a received message has no receipt handle")?;
    let attributes = kept_attributes(message.message_attributes());
    // A FIFO queue needs the message's group (its order) and a deduplication
    // id: the DLQ message id, so a send retried within five minutes is
    // dropped by SQS instead of delivered twice.
    let fifo = source.name.ends_with(".fifo");
    let group = fifo.then(|| sqs::group_id(message).unwrap_or("redriven").to_string());
    let dedup = fifo.then(|| message.message_id().unwrap_or(receipt).to_string());
    let sent = bounded(&format!("send to {}", source.name), || {
        sqs.send_message()
            .queue_url(&source.url)
            .message_body(message.body().unwrap_or_default())
            .set_message_attributes(attributes.clone())
            .set_message_group_id(group.clone())
            .set_message_deduplication_id(dedup.clone())
            .send()
    })
    .await;
    if let Err(e) = sent {
        // Give it back at once rather than after the visibility timeout; if
        // that fails too, the timeout gives it back.
        let _ = sqs::change_visibility(sqs, &dlq.url, receipt, 0).await;
        return Err(format!(
            "send to {}: {}",
            source.name,
            DisplayErrorContext(e)
        ));
    }
    let deleted = bounded(&format!("delete from {}", dlq.name), || {
        sqs.delete_message()
            .queue_url(&dlq.url)
            .receipt_handle(receipt)
            .send()
    })
    .await;
    match deleted {
        Ok(_) => Ok(true),
        Err(e) => {
            tracing::warn!(
                error = %DisplayErrorContext(e),
                message_id = message.message_id(),
                "sent back but not deleted from the DLQ: it is in both queues"
            );
            Ok(false)
        }
    }
}

/// The message attributes a redriven message keeps: all but `dlq_reason`.
fn kept_attributes(
    attributes: Option<&HashMap<String, MessageAttributeValue>>,
) -> Option<HashMap<String, MessageAttributeValue>> {
    let kept: HashMap<_, _> = attributes?
        .iter()
        .filter(|(name, _)| name.as_str() != DLQ_REASON_ATTRIBUTE)
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    (!kept.is_empty()).then_some(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moto_not_implemented_page_and_unsupported_codes_mean_unavailable() {
        // moto 5.2.5: an HTML "500 Internal Server Error" page, no AWS error code.
        assert!(move_task_unavailable(Some(500), None));
        assert!(move_task_unavailable(Some(501), None));
        assert!(move_task_unavailable(
            Some(400),
            Some("UnsupportedOperation")
        ));
        assert!(move_task_unavailable(Some(400), Some("InvalidAction")));
        assert!(move_task_unavailable(Some(501), Some("InternalFailure")));
    }

    #[test]
    fn real_errors_are_not_taken_for_a_missing_api() {
        assert!(!move_task_unavailable(Some(500), Some("InternalError")));
        assert!(!move_task_unavailable(Some(403), Some("AccessDenied")));
        assert!(!move_task_unavailable(
            Some(400),
            Some("ResourceNotFoundException")
        ));
        assert!(!move_task_unavailable(None, None));
    }

    fn text(value: &str) -> MessageAttributeValue {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .expect("valid attribute")
    }

    #[test]
    fn the_dlq_reason_is_dropped_and_every_other_attribute_kept() {
        let attributes = HashMap::from([
            ("dlq_reason".to_string(), text("webhook answered 503")),
            ("event_type".to_string(), text("OrderPlaced")),
        ]);
        let kept = kept_attributes(Some(&attributes)).expect("one attribute left");
        assert_eq!(kept.len(), 1);
        assert_eq!(kept["event_type"].string_value(), Some("OrderPlaced"));
        let only_reason = HashMap::from([("dlq_reason".to_string(), text("x"))]);
        assert_eq!(kept_attributes(Some(&only_reason)), None);
    }
}
