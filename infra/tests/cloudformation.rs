//! The CloudFormation templates: committed as rendered, clean under cfn-lint,
//! every checkov skip justified; the messaging templates are also deployed
//! through moto's CloudFormation, where they must deliver. The compute
//! templates (ECS, Lambda) are not: moto runs no task, database, load
//! balancer, function in a VPC or event source mapping that would prove
//! anything.
//!
//! moto 5.2.5's CloudFormation creates topics, queues, the key and its alias,
//! the bus, rules with their targets, the archive and the IAM roles. It skips
//! (with a warning) subscriptions, topic and queue policies and alarms; the
//! test creates the subscriptions through the SNS API from the template's own
//! definitions, so that delivery and filtering are still exercised.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use aws_sdk_cloudformation::types::{Capability, StackStatus};
use aws_sdk_sqs::types::QueueAttributeName;
use contracts::topology::{Chain, Service, Source, Topology, rule_pattern};
use infra::cloudformation::{self, bus_id, dlq_id, queue_id, role_id, subscription_id, topic_id};
use infra::{ecs, functions};
use serde_json::{Value, json};
use testkit::emulator::{Emulator, EmulatorKind};

const REGENERATE: &str = "cargo run -p infra --bin ops -- cloudformation write";

fn template_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("cloudformation")
}

/// Every committed template, with what the code renders for it: the
/// messaging template of each chain and the compute templates (ECS, Lambda).
fn templates() -> Vec<(PathBuf, String)> {
    [Chain::Standard, Chain::Fifo]
        .into_iter()
        .map(|chain| {
            (
                template_dir().join(cloudformation::file_name(chain)),
                cloudformation::render_text(chain),
            )
        })
        .chain([
            (template_dir().join(ecs::FILE_NAME), ecs::render_text()),
            (
                template_dir().join(functions::FILE_NAME),
                functions::render_text(),
            ),
        ])
        .collect()
}

#[test]
fn the_committed_templates_are_what_the_topology_renders() {
    for (path, rendered) in templates() {
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == rendered,
            "{} differs from what contracts::topology renders: run `{REGENERATE}` and commit the result",
            path.display()
        );
    }
}

#[test]
fn cfn_lint_finds_nothing_in_the_templates() {
    let cfn_lint = testkit::workspace_root().join(".venv/bin/cfn-lint");
    assert!(
        cfn_lint.exists(),
        "{} is missing: run scripts/setup.sh",
        cfn_lint.display()
    );
    let files: Vec<PathBuf> = templates().into_iter().map(|(path, _)| path).collect();
    assert_eq!(files.len(), 4);
    let out = Command::new(&cfn_lint)
        .args(["--regions", "us-east-1", "eu-west-1", "--"])
        .args(&files)
        .output()
        .expect("cfn-lint runs");
    assert!(
        out.status.success(),
        "cfn-lint found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// checkov (scripts/hygiene.sh) honours a skip in a resource's `Metadata`
/// with or without a reason: a check may be skipped only where it does not
/// apply, and the skip must say why.
#[test]
fn every_checkov_skip_in_the_templates_says_why() {
    for (path, _) in templates() {
        let template: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{} is JSON: {e}", path.display()));
        let resources = template["Resources"].as_object().expect("resources");
        for (id, resource) in resources {
            let Some(skips) = resource.pointer("/Metadata/checkov/skip") else {
                continue;
            };
            let skips = skips
                .as_array()
                .unwrap_or_else(|| panic!("{id}: checkov's skip is a list, not {skips}"));
            for skip in skips {
                let check = skip["id"].as_str().unwrap_or_default();
                let reason = skip["comment"].as_str().unwrap_or_default().trim();
                assert!(
                    check.starts_with("CKV"),
                    "{}: {id} skips no named check: {skip}",
                    path.display()
                );
                assert!(
                    reason.split_whitespace().count() >= 3,
                    "{}: {id} skips {check} without saying why it does not apply: {skip}",
                    path.display()
                );
            }
        }
    }
}

#[tokio::test]
async fn the_standard_template_deploys_to_the_emulator_and_delivers() -> anyhow::Result<()> {
    deploys_and_delivers(Chain::Standard).await
}

#[tokio::test]
async fn the_fifo_template_deploys_to_the_emulator_and_delivers() -> anyhow::Result<()> {
    deploys_and_delivers(Chain::Fifo).await
}

/// The resource types moto's CloudFormation skips; everything else in the
/// template must be created.
const SKIPPED_BY_MOTO: [&str; 4] = [
    "AWS::SNS::Subscription",
    "AWS::SNS::TopicPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::CloudWatch::Alarm",
];

const STACK: &str = "messaging";

async fn deploys_and_delivers(chain: Chain) -> anyhow::Result<()> {
    let topology = Topology::declare(chain);
    let template = cloudformation::render(&topology);
    let logs = tempfile::tempdir()?;
    // moto in particular: what this test skips is what moto cannot deploy.
    let moto = Emulator::start(EmulatorKind::Moto, None, logs.path()).await?;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(moto.endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "emulator",
        ))
        .load()
        .await;
    // No retries: a failed create would be retried into "already exists".
    let cfn = aws_sdk_cloudformation::Client::from_conf(
        aws_sdk_cloudformation::config::Builder::from(&sdk)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build(),
    );
    let clients = infra::Clients::from_config(&sdk);

    cfn.create_stack()
        .stack_name(STACK)
        .template_body(serde_json::to_string(&template)?)
        .capabilities(Capability::CapabilityNamedIam)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "create the stack: {}\n{}",
                aws_sdk_cloudformation::error::DisplayErrorContext(e),
                moto_log(logs.path())
            )
        })?;
    testkit::wait::until("the stack", Duration::from_secs(60), || {
        let cfn = cfn.clone();
        async move {
            let stacks = cfn
                .describe_stacks()
                .stack_name(STACK)
                .send()
                .await
                .map_err(|e| aws_sdk_cloudformation::error::DisplayErrorContext(e).to_string())?;
            match stacks.stacks().first().and_then(|s| s.stack_status()) {
                Some(StackStatus::CreateComplete) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await?;

    // Every resource moto supports was created; only the known types were skipped.
    let created: BTreeMap<String, String> = cfn
        .describe_stack_resources()
        .stack_name(STACK)
        .send()
        .await?
        .stack_resources()
        .iter()
        .map(|r| {
            (
                r.logical_resource_id().unwrap_or_default().to_string(),
                r.physical_resource_id().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let declared = template["Resources"].as_object().context("resources")?;
    for (id, resource) in declared {
        let kind = resource["Type"].as_str().unwrap_or_default();
        let conditional = resource.get("Condition").is_some();
        if SKIPPED_BY_MOTO.contains(&kind) || conditional {
            continue;
        }
        assert!(created.contains_key(id), "{id} ({kind}) was not created");
    }

    // Queues: encrypted, with their redrive policy to their DLQ.
    let mut arns = BTreeMap::new();
    for queue in &topology.queues {
        for (name, id) in [
            (queue.name.to_string(), queue_id(queue)),
            (queue.dlq_name(), dlq_id(queue)),
        ] {
            let url = clients
                .sqs
                .get_queue_url()
                .queue_name(&name)
                .send()
                .await
                .with_context(|| format!("queue {name}"))?
                .queue_url
                .unwrap_or_default();
            let attrs = clients
                .sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::All)
                .send()
                .await?;
            let attrs = attrs.attributes().cloned().unwrap_or_default();
            assert!(
                attrs.contains_key(&QueueAttributeName::KmsMasterKeyId),
                "{name} is encrypted"
            );
            assert_eq!(
                attrs
                    .get(&QueueAttributeName::FifoQueue)
                    .map(String::as_str),
                queue.fifo.then_some("true"),
                "{name}"
            );
            arns.insert(
                id,
                (
                    url,
                    attrs
                        .get(&QueueAttributeName::QueueArn)
                        .cloned()
                        .unwrap_or_default(),
                    attrs,
                ),
            );
        }
        let (_, _, attrs) = &arns[&queue_id(queue)];
        let redrive: Value = serde_json::from_str(
            attrs
                .get(&QueueAttributeName::RedrivePolicy)
                .map(String::as_str)
                .unwrap_or("null"),
        )?;
        assert_eq!(
            redrive["deadLetterTargetArn"],
            arns[&dlq_id(queue)].1,
            "{}",
            queue.name
        );
        assert_eq!(
            redrive["maxReceiveCount"].to_string().trim_matches('"'),
            queue.max_receive_count.to_string()
        );
        assert_eq!(
            attrs[&QueueAttributeName::VisibilityTimeout],
            queue.visibility_timeout_secs.to_string()
        );
    }

    // The topic, encrypted; the rules with their pattern, target DLQ and retry policy.
    let topic = &topology.topics[0];
    let topic_arn = &created[&topic_id(topic.name)];
    assert!(
        topic_arn.ends_with(&format!(":{}", topic.name)),
        "{topic_arn}"
    );
    let topic_attrs = clients
        .sns
        .get_topic_attributes()
        .topic_arn(topic_arn)
        .send()
        .await?;
    let topic_attrs = topic_attrs.attributes().cloned().unwrap_or_default();
    assert!(
        topic_attrs.contains_key("KmsMasterKeyId"),
        "{topic_attrs:?}"
    );
    assert_eq!(
        topic_attrs.get("FifoTopic").map(String::as_str),
        topic.fifo.then_some("true"),
        "{topic_attrs:?}"
    );
    let bus = &topology.buses[0];
    for queue in topology.rule_targets_on(bus.name) {
        let Source::Rule { rule, .. } = queue.source else {
            continue;
        };
        let described = clients
            .events
            .describe_rule()
            .name(rule)
            .event_bus_name(bus.name)
            .send()
            .await?;
        let pattern: Value = serde_json::from_str(described.event_pattern().unwrap_or("null"))?;
        assert_eq!(pattern, rule_pattern(queue));
        let targets = clients
            .events
            .list_targets_by_rule()
            .rule(rule)
            .event_bus_name(bus.name)
            .send()
            .await?;
        let target = targets.targets().first().context("a target")?;
        assert_eq!(target.arn(), arns[&queue_id(queue)].1);
        assert_eq!(
            target.dead_letter_config().and_then(|d| d.arn()),
            Some(arns[&dlq_id(queue)].1.as_str())
        );
        assert_eq!(
            target
                .retry_policy()
                .and_then(|r| r.maximum_retry_attempts()),
            Some(infra::provision::RULE_TARGET_MAX_RETRY_ATTEMPTS)
        );
    }
    let archive = clients
        .events
        .describe_archive()
        .archive_name(bus.archive)
        .send()
        .await?;
    assert_eq!(archive.retention_days(), Some(bus.archive_retention_days));
    assert!(
        archive
            .event_source_arn()
            .is_some_and(|arn| arn.ends_with(&format!(":event-bus/{}", bus.name))),
        "{archive:?}"
    );
    assert!(created.contains_key(&bus_id(bus.name)));
    for service in Service::ALL {
        assert!(
            created.contains_key(&role_id(service)),
            "the role of {}",
            service.source()
        );
    }

    // moto skipped the subscriptions: create them as the template declares them.
    for queue in topology.subscribers_of(topic.name) {
        let declared = &template["Resources"][subscription_id(queue)]["Properties"];
        assert_eq!(declared["Endpoint"]["Fn::GetAtt"][0], queue_id(queue));
        let arn = clients
            .sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol(declared["Protocol"].as_str().unwrap_or_default())
            .endpoint(&arns[&queue_id(queue)].1)
            .return_subscription_arn(true)
            .send()
            .await?
            .subscription_arn
            .unwrap_or_default();
        for name in ["RawMessageDelivery", "FilterPolicy"] {
            let value = match &declared[name] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            clients
                .sns
                .set_subscription_attributes()
                .subscription_arn(&arn)
                .attribute_name(name)
                .attribute_value(value)
                .send()
                .await?;
        }
    }

    // An order event reaches both subscribers as it was published; another type reaches none.
    for (event_type, body) in [
        ("InvoiceIssued", json!({"filtered": true})),
        ("OrderPlaced", json!({"delivered": true})),
    ] {
        let mut publish = clients
            .sns
            .publish()
            .topic_arn(topic_arn)
            .message(body.to_string())
            .message_attributes(
                contracts::topology::EVENT_TYPE_ATTRIBUTE,
                aws_sdk_sns::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(event_type)
                    .build()?,
            );
        if topic.fifo {
            publish = publish
                .message_group_id("order-1")
                .message_deduplication_id(event_type);
        }
        publish.send().await?;
    }
    for queue in topology.subscribers_of(topic.name) {
        let bodies = receive_all(&clients.sqs, &arns[&queue_id(queue)].0).await?;
        assert_eq!(
            bodies,
            vec![json!({"delivered": true})],
            "{} gets only what its filter lets through, raw",
            queue.name
        );
    }

    // An invoice event on the bus reaches both rule targets.
    let put = clients
        .events
        .put_events()
        .entries(
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .event_bus_name(bus.name)
                .source(Service::Invoice.source())
                .detail_type("InvoiceIssued")
                .detail(json!({"delivered": true}).to_string())
                .build(),
        )
        .send()
        .await?;
    assert_eq!(put.failed_entry_count(), 0);
    for queue in topology.rule_targets_on(bus.name) {
        let bodies = receive_all(&clients.sqs, &arns[&queue_id(queue)].0).await?;
        assert_eq!(bodies.len(), 1, "{}: {bodies:?}", queue.name);
        assert_eq!(bodies[0]["detail"], json!({"delivered": true}));
        assert_eq!(bodies[0]["detail-type"], "InvoiceIssued");
    }
    drop(moto);
    Ok(())
}

fn moto_log(dir: &std::path::Path) -> String {
    let log = std::fs::read_to_string(dir.join("emulator.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// What `url` holds now, waiting a little for the first message.
async fn receive_all(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<Vec<Value>> {
    let mut bodies = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(if bodies.is_empty() { 2 } else { 0 })
            .message_attribute_names("All")
            .send()
            .await?;
        if got.messages().is_empty() {
            return Ok(bodies);
        }
        for m in got.messages() {
            bodies.push(serde_json::from_str(m.body().unwrap_or("null"))?);
        }
    }
}
