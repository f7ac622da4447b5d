//! The provisioner against moto: apply twice, then read the topology back.

use aws_sdk_sqs::types::QueueAttributeName;
use contracts::topology::{Source, filter_policy, rule_pattern, topology};
use harness::stack::emulator_config;
use serde_json::Value;
use testkit::emulator::Emulator;

#[tokio::test]
async fn the_topology_is_applied_idempotently_and_reads_back_as_declared() -> anyhow::Result<()> {
    let logs = tempfile::tempdir()?;
    let emulator = Emulator::start_default(logs.path()).await?;
    let sdk = emulator_config(&emulator.endpoint()).await;
    let clients = infra::Clients::from_config(&sdk);
    let first = infra::apply(&clients, &topology()).await?;
    let second = infra::apply(&clients, &topology()).await?;
    assert_eq!(
        serde_json::to_value(&first)?,
        serde_json::to_value(&second)?,
        "a second apply must converge on the same resources"
    );

    let topics = clients.sns.list_topics().send().await?;
    assert_eq!(topics.topics().len(), 1, "no duplicate topics");

    for queue in topology().queues {
        let main = &second.queues[queue.name];
        let dlq = &second.queues[&queue.dlq_name()];
        let attrs = clients
            .sqs
            .get_queue_attributes()
            .queue_url(&main.url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await?;
        let attrs = attrs.attributes().expect("attributes");
        let redrive: Value = serde_json::from_str(&attrs[&QueueAttributeName::RedrivePolicy])?;
        assert_eq!(
            redrive["deadLetterTargetArn"],
            dlq.arn.as_str(),
            "{}",
            queue.name
        );
        assert_eq!(
            redrive["maxReceiveCount"].to_string().trim_matches('"'),
            "5",
            "{}",
            queue.name
        );
        assert_eq!(
            attrs[&QueueAttributeName::VisibilityTimeout],
            queue.visibility_timeout_secs.to_string()
        );
        let policy: Value = serde_json::from_str(&attrs[&QueueAttributeName::Policy])?;
        let statement = &policy["Statement"][0];
        assert_eq!(statement["Action"], "sqs:SendMessage");
        let source_arn = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
            .as_str()
            .unwrap_or_default();

        match queue.source {
            Source::Subscription { topic } => {
                let topic_arn = &second.topics[topic];
                assert_eq!(
                    source_arn, topic_arn,
                    "{} accepts only its topic",
                    queue.name
                );
                let subs = clients
                    .sns
                    .list_subscriptions_by_topic()
                    .topic_arn(topic_arn)
                    .send()
                    .await?;
                let matching: Vec<_> = subs
                    .subscriptions()
                    .iter()
                    .filter(|s| s.endpoint() == Some(main.arn.as_str()))
                    .collect();
                assert_eq!(matching.len(), 1, "one subscription for {}", queue.name);
                let sub_attrs = clients
                    .sns
                    .get_subscription_attributes()
                    .subscription_arn(matching[0].subscription_arn().unwrap_or_default())
                    .send()
                    .await?;
                let sub_attrs = sub_attrs.attributes().expect("attributes");
                assert_eq!(sub_attrs["RawMessageDelivery"], "true");
                let filter: Value = serde_json::from_str(&sub_attrs["FilterPolicy"])?;
                assert_eq!(filter, filter_policy(&queue));
            }
            Source::Rule { bus, rule } => {
                assert_eq!(
                    source_arn, second.rules[rule],
                    "{} accepts only its rule",
                    queue.name
                );
                let described = clients
                    .events
                    .describe_rule()
                    .name(rule)
                    .event_bus_name(bus)
                    .send()
                    .await?;
                let pattern: Value =
                    serde_json::from_str(described.event_pattern().unwrap_or("null"))?;
                assert_eq!(pattern, rule_pattern(&queue));
                let targets = clients
                    .events
                    .list_targets_by_rule()
                    .rule(rule)
                    .event_bus_name(bus)
                    .send()
                    .await?;
                assert_eq!(targets.targets().len(), 1);
                let target = &targets.targets()[0];
                assert_eq!(target.arn(), main.arn);
                assert_eq!(
                    target.dead_letter_config().and_then(|d| d.arn()),
                    Some(dlq.arn.as_str())
                );
                assert!(
                    target
                        .retry_policy()
                        .and_then(|r| r.maximum_retry_attempts())
                        .is_some()
                );
            }
        }
    }
    let bus = &topology().buses[0];
    let archive = clients
        .events
        .describe_archive()
        .archive_name(bus.archive)
        .send()
        .await?;
    assert_eq!(
        archive.event_source_arn(),
        Some(second.buses[bus.name].as_str())
    );
    assert_eq!(archive.retention_days(), Some(bus.archive_retention_days));
    Ok(())
}
