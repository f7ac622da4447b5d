//! The arithmetic behind scaling a consumer on its queue's backlog per task.
//!
//! AWS's recipe for an SQS-driven service: do not scale on the queue's depth
//! alone (a thousand messages is nothing for twenty tasks and an hour for
//! one), but on the backlog *per task*, and aim it at what one task can clear
//! within the latency you accept:
//!
//! ```text
//! target backlog per task = acceptable latency / time a task spends per message
//! ```
//!
//! Target tracking then keeps `visible messages / running tasks` near that
//! target, which amounts to `tasks = ceil(backlog / target)` within the
//! bounds. The template renders the target from [`DEFAULTS`] with
//! [`backlog_per_task_target`]; [`tasks_for`] is what target tracking aims
//! at, here so that the documented worked example is a test.

use std::time::Duration;

/// What a consumer is scaled against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scaling {
    /// How long a message may wait in the queue before it is handled.
    pub acceptable_latency: Duration,
    /// How long one task spends per message on average: the inverse of the
    /// messages per second one task handles with all its workers, not one
    /// handler's latency (a task handles several messages at once).
    pub time_per_message: Duration,
}

/// The defaults the template is rendered with: 10 s of acceptable latency,
/// and 50 ms per message (20 messages a second per task, a cautious figure:
/// BENCHMARKS.md measured one invoice consumer at well over a hundred a
/// second on the emulators). Measure yours and override the parameter.
pub const DEFAULTS: Scaling = Scaling {
    acceptable_latency: Duration::from_secs(10),
    time_per_message: Duration::from_millis(50),
};

/// The backlog per task that one task clears within the acceptable latency,
/// rounded down (rounding up would accept a little more latency than asked),
/// and at least 1. `None` when the time per message is zero: no target follows.
pub fn backlog_per_task_target(scaling: Scaling) -> Option<u32> {
    let per_message = scaling.time_per_message.as_nanos();
    if per_message == 0 {
        return None;
    }
    let target = scaling.acceptable_latency.as_nanos() / per_message;
    Some(u32::try_from(target).unwrap_or(u32::MAX).max(1))
}

/// The metric target tracking watches: visible messages per running task.
/// `None` with no task running (the template's lower bound is at least 1).
pub fn backlog_per_task(visible_messages: u64, running_tasks: u32) -> Option<f64> {
    (running_tasks > 0).then(|| visible_messages as f64 / f64::from(running_tasks))
}

/// The task count that brings the backlog per task down to `target`, within
/// `min..=max`: `ceil(visible messages / target)`, clamped.
pub fn tasks_for(visible_messages: u64, target: u32, min: u32, max: u32) -> u32 {
    let wanted = visible_messages.div_ceil(u64::from(target.max(1)));
    u32::try_from(wanted)
        .unwrap_or(u32::MAX)
        .clamp(min, max.max(min))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_seconds_of_latency_at_fifty_milliseconds_a_message_is_two_hundred_messages_per_task() {
        assert_eq!(backlog_per_task_target(DEFAULTS), Some(200));
    }

    #[test]
    fn a_target_is_rounded_down_and_never_below_one() {
        let scaling = |latency_ms, per_message_ms| Scaling {
            acceptable_latency: Duration::from_millis(latency_ms),
            time_per_message: Duration::from_millis(per_message_ms),
        };
        assert_eq!(backlog_per_task_target(scaling(10_000, 30)), Some(333));
        assert_eq!(backlog_per_task_target(scaling(10, 50)), Some(1));
        assert_eq!(backlog_per_task_target(scaling(10_000, 0)), None);
    }

    #[test]
    fn a_backlog_of_a_thousand_on_two_tasks_is_five_hundred_per_task_and_scales_out_to_five() {
        assert_eq!(backlog_per_task(1_000, 2), Some(500.0));
        assert_eq!(tasks_for(1_000, 200, 1, 10), 5);
    }

    /// The benchmark's run of 2026-12-08 (BENCHMARKS.md, "Elasticity"): one
    /// invoice instance drained 516 messages a second on MiniStack, four
    /// drained 755 together. Fed to the policy, the measured time per
    /// message gives a target 25 times the template's cautious default, and
    /// the burst of that run (1,000 messages) needs one task where the
    /// default would start five.
    #[test]
    fn the_measured_drain_of_one_instance_sets_the_target_of_the_policy() {
        let measured = Scaling {
            acceptable_latency: DEFAULTS.acceptable_latency,
            time_per_message: Duration::from_secs(1) / 516,
        };
        assert_eq!(backlog_per_task_target(measured), Some(5_160));
        assert_eq!(tasks_for(1_000, 5_160, 1, 10), 1);
        assert_eq!(tasks_for(1_000, 200, 1, 10), 5);
        // Four instances on the same two cores drained 755 a second together:
        // 189 each, so a target from the one-instance figure overstates what
        // each of four does here by 2.7 times; measure at the scale you run.
        let per_instance_of_four = Scaling {
            acceptable_latency: DEFAULTS.acceptable_latency,
            time_per_message: Duration::from_secs(4) / 755,
        };
        assert_eq!(backlog_per_task_target(per_instance_of_four), Some(1_887));
    }

    #[test]
    fn no_running_task_has_no_backlog_per_task() {
        assert_eq!(backlog_per_task(1_000, 0), None);
    }

    #[test]
    fn the_bounds_clamp_the_task_count() {
        assert_eq!(tasks_for(10_000, 200, 1, 10), 10, "50 wanted, 10 allowed");
        assert_eq!(
            tasks_for(0, 200, 1, 10),
            1,
            "an empty queue keeps the minimum"
        );
        assert_eq!(
            tasks_for(201, 200, 1, 10),
            2,
            "a partial task's worth rounds up"
        );
    }
}
