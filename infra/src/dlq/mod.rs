//! Dead-letter queues: what is in them, why, and moving it back.
//!
//! Every queue of the topology has a DLQ `<queue>-dlq`. A message gets there
//! in one of three ways, and each leaves a different trace:
//!
//! - the consumer refused it (poison, or a handler's `Reject`) and sent it
//!   itself, with the reason in the `dlq_reason` message attribute;
//! - the handler kept failing and SQS's redrive policy moved it after
//!   `maxReceiveCount` receives: no reason attribute, a receive count instead;
//! - EventBridge could not deliver to the rule's target queue and used the
//!   target's `DeadLetterConfig`: `ERROR_CODE` / `ERROR_MESSAGE` attributes.
//!
//! - `inspect`: lists a DLQ without consuming it (receive, then make the
//!   messages visible again at once).
//! - `redrive`: moves messages back to their source queue once the cause is
//!   fixed, with `StartMessageMoveTask` where the endpoint has it and message
//!   by message where it does not (moto). Consumers are idempotent, so a
//!   message that arrives twice changes nothing.

mod inspect;
mod redrive;

pub use inspect::{DeadLetter, DeadLetteredBy, DlqListing, PEEK_VISIBILITY_SECS, list, list_all};
pub use redrive::{RedriveMethod, RedriveOptions, RedriveReport, move_task_unavailable, redrive};

use aws_adapter::sqs::{self, SqsError};
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::QueueAttributeName;
use contracts::topology::{QueueSpec, Topology};

/// What went wrong in a DLQ command.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("unknown queue '{name}'; the topology has: {known}")]
    UnknownQueue { name: String, known: String },
    #[error("{step}: {message}")]
    Aws { step: String, message: String },
    /// A redrive stopped part way: `moved` messages are back on the source
    /// queue, the rest are still in the DLQ.
    #[error("redrive of {queue} stopped after {moved} message(s): {cause}")]
    Interrupted {
        queue: String,
        moved: u64,
        cause: String,
    },
    /// `StartMessageMoveTask` ran but did not complete.
    #[error("message move task for {queue} ended {status}: {reason}")]
    MoveTask {
        queue: String,
        status: String,
        reason: String,
    },
}

impl DlqError {
    pub(crate) fn aws<E>(step: impl Into<String>) -> impl FnOnce(E) -> DlqError
    where
        E: std::error::Error,
    {
        let step = step.into();
        move |e| DlqError::Aws {
            step,
            message: DisplayErrorContext(e).to_string(),
        }
    }

    /// An adapter call that failed during `step`, which names it for the
    /// operator.
    pub(crate) fn sqs(step: impl Into<String>) -> impl FnOnce(SqsError) -> DlqError {
        let step = step.into();
        move |e| DlqError::Aws {
            step,
            message: e.cause,
        }
    }
}

/// The queue named `name` in `topology`, by its source name (`invoice-orders`)
/// or its DLQ's (`invoice-orders-dlq`).
pub fn find_queue(topology: &Topology, name: &str) -> Result<QueueSpec, DlqError> {
    topology
        .queues
        .iter()
        .find(|q| q.name == name || q.dlq_name() == name)
        .cloned()
        .ok_or_else(|| DlqError::UnknownQueue {
            name: name.to_string(),
            known: topology
                .queues
                .iter()
                .map(|q| q.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// A queue's URL and ARN.
#[derive(Debug, Clone)]
pub(crate) struct QueueAddress {
    pub name: String,
    pub url: String,
    pub arn: String,
}

pub(crate) async fn address(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
) -> Result<QueueAddress, DlqError> {
    let step = format!("queue {name}");
    let url = crate::retry::bounded(&step, || sqs::queue_url(sqs, name))
        .await
        .map_err(DlqError::sqs(&step))?;
    let attributes = crate::retry::bounded(&step, || {
        sqs.get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
    })
    .await
    .map_err(DlqError::aws(&step))?;
    let arn = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .unwrap_or_default();
    Ok(QueueAddress {
        name: name.to_string(),
        url,
        arn,
    })
}

/// How many messages a queue holds, as SQS estimates it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Depth {
    /// Waiting to be received.
    pub visible: u64,
    /// Received and not yet deleted or released (someone is looking at them).
    pub in_flight: u64,
}

impl Depth {
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight
    }
}

/// The depth of the queue named `name`.
pub async fn depth_of(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<Depth, DlqError> {
    depth(sqs, &address(sqs, name).await?).await
}

pub(crate) async fn depth(
    sqs: &aws_sdk_sqs::Client,
    queue: &QueueAddress,
) -> Result<Depth, DlqError> {
    let step = format!("depth of {}", queue.name);
    let out = crate::retry::bounded(&step, || {
        sqs.get_queue_attributes()
            .queue_url(&queue.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
    })
    .await
    .map_err(DlqError::aws(&step))?;
    let get = |name: QueueAttributeName| -> u64 {
        out.attributes()
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Depth {
        visible: get(QueueAttributeName::ApproximateNumberOfMessages),
        in_flight: get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::topology::topology;

    #[test]
    fn a_queue_is_found_by_its_name_or_its_dlq_name() {
        let t = topology();
        assert_eq!(
            find_queue(&t, "notification-orders").map(|q| q.name).ok(),
            Some("notification-orders")
        );
        assert_eq!(
            find_queue(&t, "notification-orders-dlq")
                .map(|q| q.name)
                .ok(),
            Some("notification-orders")
        );
    }

    #[test]
    fn an_unknown_queue_lists_the_known_ones() {
        let err = find_queue(&topology(), "nope").expect_err("unknown");
        let text = err.to_string();
        assert!(text.starts_with("unknown queue 'nope'"), "{text}");
        assert!(text.contains("invoice-orders"), "{text}");
    }
}
