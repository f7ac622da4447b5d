//! The provisioner: applies `contracts::topology` to the emulator or to AWS.
//!
//! Every step is idempotent (create-or-update), so running it twice, or after
//! a change to the topology, converges on the declaration. The order matters:
//! topics and queues first (their ARNs feed the policies), then DLQs and
//! redrive policies, subscriptions with raw delivery and filter policies, the
//! bus, rules, targets, the archive, and last the queue policies that let only
//! the owning topic or rule send to each queue.
//!
//! moto does not evaluate queue policies, IAM or EventBridge target DLQs; they
//! are set anyway, because AWS does.

use std::collections::BTreeMap;

use aws_sdk_eventbridge::types::{DeadLetterConfig, RetryPolicy, Target};
use aws_sdk_sqs::types::QueueAttributeName;
use contracts::topology::{BusSpec, QueueSpec, Source, Topology, filter_policy, rule_pattern};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
#[error("provisioning {step}: {message}")]
pub struct ProvisionError {
    pub step: String,
    pub message: String,
}

fn fail<E: std::error::Error>(step: impl Into<String>) -> impl FnOnce(E) -> ProvisionError {
    let step = step.into();
    move |e| ProvisionError {
        step,
        message: format!("{}", DisplayChain(&e)),
    }
}

/// Shows an error with its sources, as the SDK errors hide the useful part there.
struct DisplayChain<'a, E: std::error::Error>(&'a E);

impl<E: std::error::Error> std::fmt::Display for DisplayChain<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// What was built: the ARNs and URLs, by name.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Provisioned {
    pub topics: BTreeMap<String, String>,
    pub buses: BTreeMap<String, String>,
    pub queues: BTreeMap<String, QueueRef>,
    pub rules: BTreeMap<String, String>,
    pub archives: BTreeMap<String, String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct QueueRef {
    pub url: String,
    pub arn: String,
}

/// How long a DLQ keeps a message: the SQS maximum, so there is time to fix the cause.
pub const DLQ_RETENTION_SECS: i32 = 14 * 24 * 3600;
/// How many times EventBridge retries delivering to a rule's target before
/// the target's DLQ (the AWS maximum)...
pub const RULE_TARGET_MAX_RETRY_ATTEMPTS: i32 = 185;
/// ...and for how long at most (the AWS maximum, 24 h).
pub const RULE_TARGET_MAX_EVENT_AGE_SECS: i32 = 86_400;

pub struct Clients {
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub events: aws_sdk_eventbridge::Client,
}

/// Applies `topology`; safe to run again.
pub async fn apply(clients: &Clients, topology: &Topology) -> Result<Provisioned, ProvisionError> {
    let mut out = Provisioned::default();
    for topic in &topology.topics {
        let mut create = clients.sns.create_topic().name(topic.name);
        if topic.fifo {
            // Deduplication by the event id the relay sends, not by content.
            create = create
                .attributes("FifoTopic", "true")
                .attributes("ContentBasedDeduplication", "false");
        }
        let arn = create
            .send()
            .await
            .map_err(fail(format!("topic {}", topic.name)))?
            .topic_arn
            .unwrap_or_default();
        out.topics.insert(topic.name.to_string(), arn);
    }
    for queue in &topology.queues {
        let dlq = ensure_queue(
            clients,
            &queue.dlq_name(),
            queue.fifo,
            BTreeMap::from([(
                QueueAttributeName::MessageRetentionPeriod,
                DLQ_RETENTION_SECS.to_string(),
            )]),
        )
        .await?;
        let redrive =
            json!({"deadLetterTargetArn": dlq.arn, "maxReceiveCount": queue.max_receive_count})
                .to_string();
        let main = ensure_queue(
            clients,
            queue.name,
            queue.fifo,
            BTreeMap::from([
                (
                    QueueAttributeName::VisibilityTimeout,
                    queue.visibility_timeout_secs.to_string(),
                ),
                (QueueAttributeName::RedrivePolicy, redrive),
            ]),
        )
        .await?;
        out.queues.insert(queue.dlq_name(), dlq);
        out.queues.insert(queue.name.to_string(), main);
    }
    for bus in &topology.buses {
        let arn = ensure_bus(clients, bus).await?;
        out.buses.insert(bus.name.to_string(), arn);
    }
    for queue in &topology.queues {
        match queue.source {
            Source::Subscription { topic } => subscribe(clients, &out, topic, queue).await?,
            Source::Rule { bus, rule } => {
                let arn = ensure_rule(clients, &out, bus, rule, queue).await?;
                out.rules.insert(rule.to_string(), arn);
            }
        }
    }
    for bus in &topology.buses {
        let arn = ensure_archive(clients, &out, bus).await?;
        out.archives.insert(bus.archive.to_string(), arn);
    }
    for queue in &topology.queues {
        set_queue_policies(clients, &out, queue).await?;
    }
    Ok(out)
}

async fn ensure_queue(
    clients: &Clients,
    name: &str,
    fifo: bool,
    attributes: BTreeMap<QueueAttributeName, String>,
) -> Result<QueueRef, ProvisionError> {
    let step = format!("queue {name}");
    // CreateQueue is idempotent only with identical attributes, so create it
    // bare and converge the attributes with SetQueueAttributes. Only FifoQueue
    // cannot be set later.
    let mut create = clients.sqs.create_queue().queue_name(name);
    if fifo {
        create = create.attributes(QueueAttributeName::FifoQueue, "true");
    }
    let url = create
        .send()
        .await
        .map_err(fail(&step))?
        .queue_url
        .unwrap_or_default();
    clients
        .sqs
        .set_queue_attributes()
        .queue_url(&url)
        .set_attributes(Some(attributes.into_iter().collect()))
        .send()
        .await
        .map_err(fail(&step))?;
    let arn = queue_arn(clients, &url).await.map_err(fail(&step))?;
    Ok(QueueRef { url, arn })
}

async fn queue_arn(
    clients: &Clients,
    url: &str,
) -> Result<
    String,
    aws_sdk_sqs::error::SdkError<
        aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesError,
    >,
> {
    let attrs = clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?;
    Ok(attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .unwrap_or_default())
}

async fn subscribe(
    clients: &Clients,
    out: &Provisioned,
    topic: &str,
    queue: &QueueSpec,
) -> Result<(), ProvisionError> {
    let step = format!("subscription {topic} -> {}", queue.name);
    let topic_arn = &out.topics[topic];
    let queue_arn = &out.queues[queue.name].arn;
    let filter = filter_policy(queue).to_string();
    let existing = find_subscription(clients, topic_arn, queue_arn)
        .await
        .map_err(fail(&step))?;
    let subscription_arn = match existing {
        Some(arn) => arn,
        None => clients
            .sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .return_subscription_arn(true)
            .send()
            .await
            .map_err(fail(&step))?
            .subscription_arn
            .unwrap_or_default(),
    };
    for (name, value) in [
        ("RawMessageDelivery", "true".to_string()),
        ("FilterPolicy", filter),
    ] {
        clients
            .sns
            .set_subscription_attributes()
            .subscription_arn(&subscription_arn)
            .attribute_name(name)
            .attribute_value(value)
            .send()
            .await
            .map_err(fail(&step))?;
    }
    Ok(())
}

async fn find_subscription(
    clients: &Clients,
    topic_arn: &str,
    queue_arn: &str,
) -> Result<
    Option<String>,
    aws_sdk_sns::error::SdkError<
        aws_sdk_sns::operation::list_subscriptions_by_topic::ListSubscriptionsByTopicError,
    >,
> {
    let mut pages = clients
        .sns
        .list_subscriptions_by_topic()
        .topic_arn(topic_arn)
        .into_paginator()
        .items()
        .send();
    while let Some(sub) = pages.next().await {
        let sub = sub?;
        if sub.endpoint() == Some(queue_arn) && sub.protocol() == Some("sqs") {
            return Ok(sub.subscription_arn().map(str::to_string));
        }
    }
    Ok(None)
}

async fn ensure_bus(clients: &Clients, bus: &BusSpec) -> Result<String, ProvisionError> {
    let step = format!("bus {}", bus.name);
    match clients
        .events
        .describe_event_bus()
        .name(bus.name)
        .send()
        .await
    {
        Ok(found) => Ok(found.arn.unwrap_or_default()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Ok(clients
                .events
                .create_event_bus()
                .name(bus.name)
                .send()
                .await
                .map_err(fail(&step))?
                .event_bus_arn
                .unwrap_or_default())
        }
        Err(e) => Err(fail(&step)(e)),
    }
}

async fn ensure_rule(
    clients: &Clients,
    out: &Provisioned,
    bus: &str,
    rule: &str,
    queue: &QueueSpec,
) -> Result<String, ProvisionError> {
    let step = format!("rule {rule}");
    let arn = clients
        .events
        .put_rule()
        .name(rule)
        .event_bus_name(bus)
        .event_pattern(rule_pattern(queue).to_string())
        .description(format!("{} events to {}", bus, queue.name))
        .send()
        .await
        .map_err(fail(&step))?
        .rule_arn
        .unwrap_or_default();
    let target = Target::builder()
        .id(queue.name)
        .arn(&out.queues[queue.name].arn)
        .dead_letter_config(
            DeadLetterConfig::builder()
                .arn(&out.queues[&queue.dlq_name()].arn)
                .build(),
        )
        .retry_policy(
            RetryPolicy::builder()
                .maximum_retry_attempts(RULE_TARGET_MAX_RETRY_ATTEMPTS)
                .maximum_event_age_in_seconds(RULE_TARGET_MAX_EVENT_AGE_SECS)
                .build(),
        )
        .build()
        .map_err(fail(&step))?;
    let put = clients
        .events
        .put_targets()
        .rule(rule)
        .event_bus_name(bus)
        .targets(target)
        .send()
        .await
        .map_err(fail(&step))?;
    if put.failed_entry_count() > 0 {
        return Err(ProvisionError {
            step,
            message: format!("target refused: {:?}", put.failed_entries()),
        });
    }
    Ok(arn)
}

async fn ensure_archive(
    clients: &Clients,
    out: &Provisioned,
    bus: &BusSpec,
) -> Result<String, ProvisionError> {
    let step = format!("archive {}", bus.archive);
    match clients
        .events
        .describe_archive()
        .archive_name(bus.archive)
        .send()
        .await
    {
        Ok(found) => {
            clients
                .events
                .update_archive()
                .archive_name(bus.archive)
                .retention_days(bus.archive_retention_days)
                .send()
                .await
                .map_err(fail(&step))?;
            Ok(found.archive_arn.unwrap_or_default())
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Ok(clients
                .events
                .create_archive()
                .archive_name(bus.archive)
                .event_source_arn(&out.buses[bus.name])
                .retention_days(bus.archive_retention_days)
                .description(format!("every event on {}, for replay", bus.name))
                .send()
                .await
                .map_err(fail(&step))?
                .archive_arn
                .unwrap_or_default())
        }
        Err(e) => Err(fail(&step)(e)),
    }
}

/// The principal and source ARN allowed to send to a queue and its DLQ.
fn allowed_sender(out: &Provisioned, queue: &QueueSpec) -> (&'static str, String) {
    let arn = match queue.source {
        Source::Subscription { topic } => out.topics[topic].clone(),
        Source::Rule { rule, .. } => out.rules[rule].clone(),
    };
    (sender_service(queue), arn)
}

/// The AWS service principal that delivers to `queue`: SNS for a
/// subscription, EventBridge for a rule.
pub fn sender_service(queue: &QueueSpec) -> &'static str {
    match queue.source {
        Source::Subscription { .. } => "sns.amazonaws.com",
        Source::Rule { .. } => "events.amazonaws.com",
    }
}

/// A policy that lets only `service` acting for `source_arn` send to
/// `queue_arn`, and refuses every request to the queue that is not over TLS.
/// The ARNs are strings here and CloudFormation expressions in the template
/// (`crate::cloudformation`), so both apply the same policy.
pub fn queue_policy(
    queue_arn: impl Into<serde_json::Value>,
    sender: Option<(&str, serde_json::Value)>,
) -> serde_json::Value {
    let queue_arn = queue_arn.into();
    let mut statements = Vec::new();
    if let Some((service, source_arn)) = sender {
        statements.push(json!({
            "Sid": "OnlyTheOwningSource",
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": source_arn}}
        }));
    }
    statements.push(json!({
        "Sid": "OnlyOverTls",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "sqs:*",
        "Resource": queue_arn,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}
    }));
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// Whether `queue`'s DLQ must accept messages from the queue's source: only
/// a rule target's `DeadLetterConfig` delivers to a DLQ itself. SQS's redrive
/// policy (an SNS-fed queue's only way into its DLQ) needs no grant, and the
/// consumers send with their own role.
pub fn dlq_accepts_the_source(queue: &QueueSpec) -> bool {
    matches!(queue.source, Source::Rule { .. })
}

async fn set_queue_policies(
    clients: &Clients,
    out: &Provisioned,
    queue: &QueueSpec,
) -> Result<(), ProvisionError> {
    let (service, source_arn) = allowed_sender(out, queue);
    // The DLQ of a rule-fed queue also receives what the rule target cannot
    // deliver (its DeadLetterConfig), from the same rule.
    for (name, accepts_the_source) in [
        (queue.name.to_string(), true),
        (queue.dlq_name(), dlq_accepts_the_source(queue)),
    ] {
        let q = &out.queues[&name];
        let sender = accepts_the_source.then(|| (service, json!(source_arn)));
        let policy = queue_policy(q.arn.as_str(), sender).to_string();
        clients
            .sqs
            .set_queue_attributes()
            .queue_url(&q.url)
            .attributes(QueueAttributeName::Policy, policy)
            .send()
            .await
            .map_err(fail(format!("policy of {name}")))?;
    }
    Ok(())
}

impl Clients {
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        Clients {
            sqs: aws_sdk_sqs::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
            events: aws_sdk_eventbridge::Client::new(config),
        }
    }
}
