//! The function: its connections, made once per cold start, and what one
//! invocation does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsBatchResponse;
use aws_sdk_sqs::types::Message;
use contracts::topology::{Service, Topology};
use platform::app::{ServiceRelay, connect_database};
use platform::aws::{self, AwsClients};
use platform::config::{CommonSettings, Env};
use platform::consumer::{Consumer, Delivered, Disposition, Handler};
use serde_json::{Value, json};
use sqlx::migrate::Migrator;

use crate::Error;
use crate::event::{Invocation, message_of};

/// The most relay steps (of up to ten events each) one invocation takes: the
/// batch's own events are at most a few steps; a sweep that finds more leaves
/// the rest to the next one rather than run into the function's timeout.
pub const SWEEP_ROUNDS: usize = 50;

/// The part of an invocation's time no relay step starts in: enough to
/// answer and to export the invocation's spans. Past its deadline an
/// invocation fails as a whole, and a batch it had applied would come back
/// and spend a receive for nothing.
const ANSWER_MARGIN: Duration = Duration::from_secs(1);

/// The service's consumers, one per queue it consumes, and its relay.
pub struct Function<H> {
    service: Service,
    consumers: HashMap<&'static str, Consumer<H>>,
    relay: Option<ServiceRelay>,
}

/// What an SQS invocation answers: the partial batch response, or a failed
/// invocation when the database did not answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Answered(SqsBatchResponse),
    DatabaseUnavailable(String),
}

impl Outcome {
    /// Every message that is not done is a batch item failure: only those
    /// come back. One that met a database which does not answer fails the
    /// whole invocation instead.
    pub fn of(delivered: &[Delivered]) -> Outcome {
        if let Some(Disposition::Unavailable(reason)) = delivered
            .iter()
            .map(|d| &d.disposition)
            .find(|d| matches!(d, Disposition::Unavailable(_)))
        {
            return Outcome::DatabaseUnavailable(reason.clone());
        }
        let mut response = SqsBatchResponse::default();
        for failed in delivered.iter().filter(|d| !d.is_done()) {
            response.add_failure(failed.message_id.clone());
        }
        Outcome::Answered(response)
    }
}

impl<H: Handler> Function<H> {
    /// Reads the service's settings, connects to the database (migrating it,
    /// as the service does) and resolves its queues and its relay's
    /// destination.
    pub async fn connect<F: Fn(&str) -> Option<String>>(
        service: Service,
        env: &Env<F>,
        migrator: Migrator,
        handler: Arc<H>,
    ) -> Result<Self, Error> {
        // `PORT` means nothing here; the common settings want a default.
        let settings = CommonSettings::from_env(env, 0)?;
        if let Some(spec) = &settings.failpoints {
            platform::failpoints::configure(spec)?;
            tracing::warn!(failpoints = %spec, "fail points armed");
        }
        let aws = AwsClients::new(&aws::load_config().await?);
        let pool = connect_database(&settings, migrator).await?;
        let topology = Topology::declare(settings.orders_chain);
        let mut consumers = HashMap::new();
        for queue in topology.queues_of(service) {
            let name = queue.name;
            let consumer = Consumer::new(
                aws.sqs.clone(),
                pool.clone(),
                handler.clone(),
                queue,
                &settings.consumer,
            )
            .await?;
            consumers.insert(name, consumer);
        }
        let relay = ServiceRelay::connect(service, &topology, &aws, &pool, &settings.relay).await?;
        Ok(Function {
            service,
            consumers,
            relay,
        })
    }

    /// One invocation: an SQS batch or a sweep, to be answered by `deadline`
    /// (the Lambda context's; `None`: no deadline).
    pub async fn invoke(&self, event: Value, deadline: Option<Instant>) -> Result<Value, Error> {
        let relay_until = deadline.map(|d| d.checked_sub(ANSWER_MARGIN).unwrap_or(d));
        match Invocation::parse(event)? {
            Invocation::Sqs { queue, records } => {
                let consumer = self.consumers.get(queue.as_str()).ok_or_else(|| {
                    format!(
                        "queue {queue} is not one the {} service consumes",
                        self.service.name()
                    )
                })?;
                let messages: Vec<Message> = records.iter().map(message_of).collect();
                let delivered = consumer.handle_delivered(&messages).await;
                match Outcome::of(&delivered) {
                    Outcome::DatabaseUnavailable(reason) => Err(format!(
                        "the database does not answer ({reason}): the whole batch comes back"
                    )
                    .into()),
                    Outcome::Answered(response) => {
                        // The batch's events leave now, not at the next sweep.
                        if let Err(e) = self.relay(relay_until).await {
                            tracing::warn!(error = %e, "relaying after the batch failed; the sweep publishes what is left");
                        }
                        Ok(serde_json::to_value(response)?)
                    }
                }
            }
            Invocation::Sweep => {
                let published = self.relay(relay_until).await?;
                Ok(json!({ "published": published }))
            }
        }
    }

    /// Relays the outbox until a step finds nothing due, at most
    /// `SWEEP_ROUNDS` steps and none started after `until`; returns how many
    /// events were published. What is left waits for the next invocation.
    async fn relay(&self, until: Option<Instant>) -> Result<usize, Error> {
        let Some(relay) = &self.relay else {
            return Ok(0);
        };
        let mut published = 0;
        for _ in 0..SWEEP_ROUNDS {
            if until.is_some_and(|until| Instant::now() >= until) {
                break;
            }
            let step = relay.publish_once().await?;
            published += step.published;
            if step.claimed() == 0 {
                break;
            }
        }
        Ok(published)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivered(id: &str, disposition: Disposition) -> Delivered {
        Delivered {
            message_id: id.into(),
            disposition,
        }
    }

    fn failures(outcome: Outcome) -> Vec<String> {
        let Outcome::Answered(response) = outcome else {
            panic!("answered: {outcome:?}");
        };
        response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect()
    }

    #[test]
    fn only_the_messages_to_retry_are_reported_failed() {
        let outcome = Outcome::of(&[
            delivered("applied", Disposition::Processed),
            delivered("again", Disposition::Duplicate),
            delivered(
                "poison",
                Disposition::DeadLettered("not an envelope".into()),
            ),
            delivered("later", Disposition::Retry("not yet".into())),
            delivered("applied-2", Disposition::Processed),
        ]);
        assert_eq!(failures(outcome), ["later"]);
    }

    #[test]
    fn a_clean_batch_reports_no_failure() {
        let outcome = Outcome::of(&[delivered("a", Disposition::Processed)]);
        assert_eq!(failures(outcome), Vec::<String>::new());
    }

    #[test]
    fn a_database_that_does_not_answer_fails_the_whole_batch() {
        let outcome = Outcome::of(&[
            delivered("applied", Disposition::Processed),
            delivered(
                "down",
                Disposition::Unavailable("connection refused".into()),
            ),
            delivered(
                "untried",
                Disposition::Unavailable("not tried: the database is unavailable".into()),
            ),
        ]);
        assert_eq!(
            outcome,
            Outcome::DatabaseUnavailable("connection refused".into())
        );
    }
}
