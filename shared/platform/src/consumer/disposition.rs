//! The consumer's policy: what to do with a message, given what happened to it.
//!
//! Pure, so that every outcome is tested here without an emulator or a
//! database; `batch` carries the decisions out. Two questions, in order:
//!
//! 1. Try the message at all? Not once the database has failed earlier in the
//!    batch (the rest is released untried, and receiving pauses), nor when an
//!    earlier message of its FIFO group is being retried (an order's events
//!    must not be applied out of order). `Batch` remembers both.
//! 2. Once tried, `decide`: delete what is applied (now or before),
//!    dead-letter what can never succeed, hide what may succeed later for
//!    `retry_delay`. A dead-letter copy that cannot be sent is decided again as
//!    a retry the redrive policy will end.

use std::collections::HashSet;
use std::time::Duration;

use super::HandlerError;

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

impl Disposition {
    /// Why the message was not applied; `None` when it was.
    pub(crate) fn reason(&self) -> Option<&str> {
        match self {
            Disposition::Processed | Disposition::Duplicate => None,
            Disposition::Retry(reason)
            | Disposition::Unavailable(reason)
            | Disposition::DeadLettered(reason) => Some(reason),
        }
    }
}

/// What happened to a message that was tried.
#[derive(Debug)]
pub(crate) enum Happened {
    /// Decoding or admission refused it: it can never succeed.
    Refused(String),
    /// The inbox transaction committed its effect.
    Applied,
    /// The inbox already had its event: nothing changed.
    Duplicate,
    /// The handler, or the inbox transaction around it, failed.
    Failed(HandlerError),
    /// It was to be dead-lettered, and the DLQ send failed with this error.
    DeadLetterFailed(String),
}

/// What to do with a message on the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Delete it with the batch.
    Delete,
    /// Send a copy to the DLQ with the disposition's reason; delete it once
    /// sent.
    DeadLetter,
    /// Make it visible again after this delay.
    HideFor(Duration),
    /// Do nothing: it comes back when its visibility timeout ends, and the
    /// redrive policy moves it to the DLQ after `maxReceiveCount` receives.
    Leave,
}

/// A message's disposition and the step that carries it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub disposition: Disposition,
    pub step: Step,
}

/// What to do with a tried message on its `receive_count`th receive.
pub(crate) fn decide(happened: Happened, receive_count: u32, max_delay: Duration) -> Decision {
    let later = Step::HideFor(retry_delay(receive_count, max_delay));
    let (disposition, step) = match happened {
        Happened::Applied => (Disposition::Processed, Step::Delete),
        Happened::Duplicate => (Disposition::Duplicate, Step::Delete),
        Happened::Refused(reason) | Happened::Failed(HandlerError::Reject(reason)) => {
            (Disposition::DeadLettered(reason), Step::DeadLetter)
        }
        Happened::Failed(HandlerError::Retry(reason)) => (Disposition::Retry(reason), later),
        Happened::Failed(HandlerError::Unavailable(reason)) => {
            (Disposition::Unavailable(reason), later)
        }
        Happened::DeadLetterFailed(error) => (
            Disposition::Retry(format!("cannot send to the DLQ: {error}")),
            Step::Leave,
        ),
    };
    Decision { disposition, step }
}

/// How long a failed message stays invisible before its next attempt: doubles
/// with the receive count (2 s, 4 s, 8 s...), capped at `max`.
pub fn retry_delay(receive_count: u32, max: Duration) -> Duration {
    Duration::from_secs(2u64.saturating_pow(receive_count.min(16))).min(max)
}

/// What the messages disposed of so far say about the next ones of the batch.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// The FIFO groups (orders) with a message being retried: their later
    /// messages wait too. (Each wait counts as a receive towards
    /// `maxReceiveCount`: the price of ordering.)
    held_groups: HashSet<String>,
    /// The database failed to answer: the rest is released without trying
    /// each message against it.
    database_down: bool,
}

impl Batch {
    /// What to do with a message of `group` without trying it; `None`: try it.
    pub(super) fn untried(
        &self,
        group: Option<&str>,
        receive_count: u32,
        max_delay: Duration,
    ) -> Option<Decision> {
        let later = Step::HideFor(retry_delay(receive_count, max_delay));
        let disposition = match group {
            _ if self.database_down => {
                Disposition::Unavailable("not tried: the database is unavailable".into())
            }
            Some(group) if self.held_groups.contains(group) => Disposition::Retry(format!(
                "an earlier message of group {group} is being retried"
            )),
            _ => return None,
        };
        Some(Decision {
            disposition,
            step: later,
        })
    }

    /// Remembers what became of a message of `group`.
    pub(super) fn record(&mut self, group: Option<&str>, disposition: &Disposition) {
        let again = matches!(
            disposition,
            Disposition::Retry(_) | Disposition::Unavailable(_)
        );
        if let (true, Some(group)) = (again, group) {
            self.held_groups.insert(group.to_string());
        }
        self.database_down |= matches!(disposition, Disposition::Unavailable(_));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Duration = Duration::from_secs(300);

    fn decided(happened: Happened, receive_count: u32) -> Decision {
        decide(happened, receive_count, CAP)
    }

    #[test]
    fn an_applied_message_is_deleted() {
        assert_eq!(
            decided(Happened::Applied, 1),
            Decision {
                disposition: Disposition::Processed,
                step: Step::Delete
            }
        );
    }

    #[test]
    fn a_duplicate_is_deleted_without_being_applied_again() {
        assert_eq!(
            decided(Happened::Duplicate, 2),
            Decision {
                disposition: Disposition::Duplicate,
                step: Step::Delete
            }
        );
    }

    #[test]
    fn a_retry_is_hidden_for_the_delay_of_its_receive_count() {
        let retry = |n| decided(Happened::Failed(HandlerError::Retry("not yet".into())), n);
        assert_eq!(
            retry(1),
            Decision {
                disposition: Disposition::Retry("not yet".into()),
                step: Step::HideFor(Duration::from_secs(2))
            }
        );
        assert_eq!(retry(3).step, Step::HideFor(Duration::from_secs(8)));
    }

    #[test]
    fn a_rejected_event_goes_to_the_dlq_with_its_reason() {
        let decision = decided(
            Happened::Failed(HandlerError::Reject("no such sku".into())),
            1,
        );
        assert_eq!(
            decision,
            Decision {
                disposition: Disposition::DeadLettered("no such sku".into()),
                step: Step::DeadLetter
            }
        );
        assert_eq!(decision.disposition.reason(), Some("no such sku"));
    }

    #[test]
    fn a_refused_message_goes_to_the_dlq_on_its_first_receive() {
        assert_eq!(
            decided(Happened::Refused("not an event envelope".into()), 1),
            Decision {
                disposition: Disposition::DeadLettered("not an event envelope".into()),
                step: Step::DeadLetter
            }
        );
    }

    #[test]
    fn a_failed_dlq_send_becomes_a_retry_the_redrive_policy_ends() {
        assert_eq!(
            decided(Happened::DeadLetterFailed("throttled".into()), 4),
            Decision {
                disposition: Disposition::Retry("cannot send to the DLQ: throttled".into()),
                step: Step::Leave
            }
        );
    }

    #[test]
    fn an_unavailable_database_retries_the_message_and_releases_the_rest_untried() {
        let decision = decided(
            Happened::Failed(HandlerError::Unavailable("connection refused".into())),
            2,
        );
        assert_eq!(
            decision,
            Decision {
                disposition: Disposition::Unavailable("connection refused".into()),
                step: Step::HideFor(Duration::from_secs(4))
            }
        );
        let mut batch = Batch::default();
        assert_eq!(batch.untried(None, 1, CAP), None);
        batch.record(None, &decision.disposition);
        for group in [None, Some("order-2")] {
            assert_eq!(
                batch.untried(group, 1, CAP),
                Some(Decision {
                    disposition: Disposition::Unavailable(
                        "not tried: the database is unavailable".into()
                    ),
                    step: Step::HideFor(Duration::from_secs(2))
                })
            );
        }
    }

    #[test]
    fn a_fifo_group_waits_behind_its_retried_message_and_other_groups_go_on() {
        let mut batch = Batch::default();
        batch.record(Some("order-1"), &Disposition::Retry("not yet".into()));
        assert_eq!(
            batch.untried(Some("order-1"), 3, CAP),
            Some(Decision {
                disposition: Disposition::Retry(
                    "an earlier message of group order-1 is being retried".into()
                ),
                step: Step::HideFor(Duration::from_secs(8))
            })
        );
        assert_eq!(batch.untried(Some("order-2"), 1, CAP), None);
        // A standard queue has no groups: nothing is held.
        assert_eq!(batch.untried(None, 1, CAP), None);
    }

    #[test]
    fn a_failed_dlq_send_holds_its_group_too() {
        let mut batch = Batch::default();
        let failed = decided(Happened::DeadLetterFailed("throttled".into()), 1);
        batch.record(Some("order-1"), &failed.disposition);
        assert!(batch.untried(Some("order-1"), 1, CAP).is_some());
    }

    #[test]
    fn done_and_dead_lettered_messages_hold_nothing() {
        let mut batch = Batch::default();
        for disposition in [
            Disposition::Processed,
            Disposition::Duplicate,
            Disposition::DeadLettered("poison".into()),
        ] {
            batch.record(Some("order-1"), &disposition);
        }
        assert_eq!(batch.untried(Some("order-1"), 1, CAP), None);
    }

    #[test]
    fn the_retry_delay_is_capped() {
        let retry = Happened::Failed(HandlerError::Retry("not yet".into()));
        assert_eq!(
            decide(retry, 100, Duration::from_secs(60)).step,
            Step::HideFor(Duration::from_secs(60))
        );
    }

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
