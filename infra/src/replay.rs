//! Replaying a time window of a bus from its archive.
//!
//! The `billing` bus keeps every event in the `billing-archive` archive.
//! `StartReplay` sends the archived events of a window back onto the bus,
//! where the rules route them to their queues again, as if they had just been
//! published. The consumers know each event by the id in its envelope and
//! find it in their inbox: a replay counts as a duplicate there
//! (`inbox.duplicates`) and changes nothing. That is what makes a replay safe
//! to run after, say, a consumer lost messages to a bug.
//!
//! A replay runs in the background; `wait` polls `DescribeReplay` until it
//! is `COMPLETED`, `FAILED` or `CANCELLED`, or a deadline passes. On AWS an
//! event reaches the archive some minutes after it was published, so a
//! window that ends just now may miss the newest events.
//!
//! moto 5.2.5 replays, but not as AWS does: it replays *every* archived event
//! whatever the window, synchronously within `StartReplay`, and
//! `DescribeReplay` then reports `COMPLETED` with the window that was asked
//! for. Locally a replay is thus always a replay of the whole archive, which
//! the consumers absorb all the same.

use std::time::Duration;

use aws_sdk_eventbridge::error::DisplayErrorContext;
use aws_sdk_eventbridge::primitives::DateTime as AwsDateTime;
use aws_sdk_eventbridge::types::{ReplayDestination, ReplayState};
use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use contracts::topology::BusSpec;

use crate::retry::bounded;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("the window is empty: --from {from} is not before --to {to}")]
    EmptyWindow {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    #[error("{step}: {message}")]
    Aws { step: String, message: String },
    #[error("replay {name} is still {state} after {waited:?}; it goes on in the background")]
    Timeout {
        name: String,
        state: String,
        waited: Duration,
    },
}

fn aws<E: std::error::Error>(step: impl Into<String>) -> impl FnOnce(E) -> ReplayError {
    let step = step.into();
    move |e| ReplayError::Aws {
        step,
        message: DisplayErrorContext(e).to_string(),
    }
}

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The replay's name, unique per account and region; one is made up
    /// from the current time when `None`.
    pub name: Option<String>,
}

/// A replay as `DescribeReplay` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReplayStatus {
    pub name: String,
    pub archive: String,
    pub bus: String,
    /// The window asked for.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// `STARTING`, `RUNNING`, `CANCELLING`, `COMPLETED`, `CANCELLED` or `FAILED`.
    pub state: String,
    pub state_reason: Option<String>,
    /// How far the replay has got, in event time.
    pub replayed_up_to: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl ReplayStatus {
    /// Whether the replay has stopped, one way or the other.
    pub fn is_finished(&self) -> bool {
        matches!(self.state.as_str(), "COMPLETED" | "FAILED" | "CANCELLED")
    }
}

/// Starts replaying `request`'s window from `bus`'s archive onto `bus`.
#[tracing::instrument(skip_all, fields(bus = bus.name), err)]
pub async fn start(
    events: &aws_sdk_eventbridge::Client,
    bus: &BusSpec,
    request: &ReplayRequest,
) -> Result<ReplayStatus, ReplayError> {
    if request.from >= request.to {
        return Err(ReplayError::EmptyWindow {
            from: request.from,
            to: request.to,
        });
    }
    let step = format!("bus {}", bus.name);
    let bus_arn = bounded(&step, || events.describe_event_bus().name(bus.name).send())
        .await
        .map_err(aws(&step))?
        .arn
        .unwrap_or_default();
    let step = format!("archive {}", bus.archive);
    let archive_arn = bounded(&step, || {
        events.describe_archive().archive_name(bus.archive).send()
    })
    .await
    .map_err(aws(&step))?
    .archive_arn
    .unwrap_or_default();
    let name = request.name.clone().unwrap_or_else(default_name);
    let destination = ReplayDestination::builder()
        .arn(bus_arn)
        .build()
        .map_err(aws("replay destination"))?;
    // Not retried, not even by the SDK's own retry policy: a StartReplay that
    // failed after the replay was created (LocalStack answers such a 500)
    // would be refused on the retry as a duplicate, hiding the first error.
    events
        .start_replay()
        .replay_name(&name)
        .description(format!(
            "ops archive replay {} .. {}",
            request.from.to_rfc3339(),
            request.to.to_rfc3339()
        ))
        .event_source_arn(archive_arn)
        .event_start_time(AwsDateTime::from_millis(request.from.timestamp_millis()))
        .event_end_time(AwsDateTime::from_millis(request.to.timestamp_millis()))
        .destination(destination)
        .customize()
        .config_override(
            aws_sdk_eventbridge::config::Builder::default()
                .retry_config(aws_sdk_eventbridge::config::retry::RetryConfig::disabled()),
        )
        .send()
        .await
        .map_err(aws(format!("StartReplay {name}")))?;
    tracing::info!(%name, "replay started");
    describe(events, bus, &name).await
}

/// The replay named `name`, as it stands.
pub async fn describe(
    events: &aws_sdk_eventbridge::Client,
    bus: &BusSpec,
    name: &str,
) -> Result<ReplayStatus, ReplayError> {
    let step = format!("DescribeReplay {name}");
    let out = bounded(&step, || events.describe_replay().replay_name(name).send())
        .await
        .map_err(aws(&step))?;
    Ok(ReplayStatus {
        name: name.to_string(),
        archive: bus.archive.to_string(),
        bus: bus.name.to_string(),
        from: out.event_start_time().and_then(chrono_time),
        to: out.event_end_time().and_then(chrono_time),
        state: out
            .state()
            .map(ReplayState::as_str)
            .unwrap_or("UNKNOWN")
            .to_string(),
        state_reason: out.state_reason().map(str::to_string),
        replayed_up_to: out.event_last_replayed_time().and_then(chrono_time),
        started_at: out.replay_start_time().and_then(chrono_time),
        ended_at: out.replay_end_time().and_then(chrono_time),
    })
}

/// Polls the replay until it has finished, or fails once `deadline` passes.
pub async fn wait(
    events: &aws_sdk_eventbridge::Client,
    bus: &BusSpec,
    name: &str,
    deadline: Duration,
) -> Result<ReplayStatus, ReplayError> {
    let started = tokio::time::Instant::now();
    let mut backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(Duration::from_secs(10))
        .without_max_times()
        .build();
    loop {
        let status = describe(events, bus, name).await?;
        if status.is_finished() {
            return Ok(status);
        }
        if started.elapsed() >= deadline {
            return Err(ReplayError::Timeout {
                name: name.to_string(),
                state: status.state,
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(backoff.next().unwrap_or(Duration::from_secs(10))).await;
    }
}

/// `ops-20261126-230752-123`: unique enough for an operator's command.
fn default_name() -> String {
    format!("ops-{}", Utc::now().format("%Y%m%d-%H%M%S-%3f"))
}

fn chrono_time(t: &AwsDateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(t.to_millis().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_name_is_a_valid_replay_name() {
        let name = default_name();
        assert!(name.len() <= 64, "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')),
            "{name}"
        );
    }

    #[test]
    fn only_the_end_states_are_finished() {
        let status = |state: &str| ReplayStatus {
            name: "r".into(),
            archive: "a".into(),
            bus: "b".into(),
            from: None,
            to: None,
            state: state.into(),
            state_reason: None,
            replayed_up_to: None,
            started_at: None,
            ended_at: None,
        };
        for state in ["COMPLETED", "FAILED", "CANCELLED"] {
            assert!(status(state).is_finished(), "{state}");
        }
        for state in ["STARTING", "RUNNING", "CANCELLING"] {
            assert!(!status(state).is_finished(), "{state}");
        }
    }
}
