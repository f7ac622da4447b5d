//! The topology as an AWS CloudFormation template, for real accounts.
//!
//! `render(&topology)` turns the one declaration in `contracts::topology` into a
//! template with everything `provision` creates (topics, queues and DLQs with
//! their redrive policies, subscriptions with raw delivery and filter
//! policies, the bus, its rules with their targets' DLQs and retry policies,
//! the archive, queue policies that accept only the owning topic or rule) and
//! what a real account needs besides:
//!
//! - server-side encryption with one customer managed KMS key, on every
//!   topic and queue. A customer managed key, because SNS and EventBridge can
//!   only deliver to an encrypted queue whose key policy lets them use the
//!   key, and the policies of AWS managed keys cannot be changed;
//! - one IAM role per service, derived from who publishes where and who
//!   consumes what: the service's own actions on its own resources, nothing
//!   else (see [`service_policy`]);
//! - CloudWatch alarms on every DLQ's depth and on the age of the oldest
//!   message of every queue, sent to an encrypted alarm topic.
//!
//! Both order chains render (`Chain::Standard` and `Chain::Fifo`); the
//! templates are committed under `infra/cloudformation/` and written by
//! `cargo run -p infra --bin ops -- cloudformation write`. A test fails when
//! the committed files differ from what this module renders.
//!
//! Logical ids are derived from the topology's names (`invoice-orders.fifo`
//! → `InvoiceOrdersFifoQueue`), so this module types no name either.

use contracts::events::EventType;
use contracts::topology::{
    BusSpec, Chain, Channel, QueueSpec, Service, Source, TopicSpec, Topology,
};
use contracts::topology::{filter_policy, rule_pattern};
use serde_json::{Map, Value, json};

use crate::provision::{
    DLQ_RETENTION_SECS, RULE_TARGET_MAX_EVENT_AGE_SECS, RULE_TARGET_MAX_RETRY_ATTEMPTS,
    dlq_accepts_the_source, queue_policy, sender_service,
};

/// The logical id of the KMS key that encrypts every topic and queue.
pub const KEY: &str = "MessagingKey";
/// The logical id of the topic the alarms notify.
pub const ALARM_TOPIC: &str = "AlarmTopic";
/// How long SQS reuses a data key before asking KMS again: the AWS maximum
/// (24 h) would be cheapest; 5 minutes is the default and keeps KMS requests
/// to a few per queue and principal an hour.
const DATA_KEY_REUSE_SECS: i32 = 300;

/// The template of `topology`, as JSON.
pub fn render(topology: &Topology) -> Value {
    let mut resources = Map::new();
    resources.insert(KEY.into(), key(topology));
    resources.insert("MessagingKeyAlias".into(), key_alias("messaging", KEY));
    for topic in &topology.topics {
        resources.insert(topic_id(topic.name), topic_resource(topic));
        resources.insert(
            format!("{}Policy", topic_id(topic.name)),
            topic_tls_policy(topic),
        );
    }
    for bus in &topology.buses {
        resources.insert(bus_id(bus.name), bus_resource(bus));
        resources.insert(id(bus.archive, ""), archive_resource(bus));
    }
    for queue in &topology.queues {
        resources.insert(dlq_id(queue), dlq_resource(queue));
        resources.insert(queue_id(queue), queue_resource(queue));
        for (queue_id, arn, accepts_the_source) in [
            (queue_id(queue), arn_of(&queue_id(queue)), true),
            (
                dlq_id(queue),
                arn_of(&dlq_id(queue)),
                dlq_accepts_the_source(queue),
            ),
        ] {
            let sender = accepts_the_source.then(|| (sender_service(queue), source_arn(queue)));
            resources.insert(
                format!("{queue_id}Policy"),
                json!({
                    "Type": "AWS::SQS::QueuePolicy",
                    "Properties": {
                        "Queues": [{"Ref": queue_id}],
                        "PolicyDocument": queue_policy(arn, sender),
                    }
                }),
            );
        }
        match queue.source {
            Source::Subscription { topic } => {
                resources.insert(subscription_id(queue), subscription(topic, queue));
            }
            Source::Rule { bus, rule } => {
                resources.insert(rule_id(rule), rule_resource(bus, rule, queue));
            }
        }
        resources.insert(
            format!("{}DepthAlarm", dlq_id(queue)),
            alarm(
                &dlq_id(queue),
                &format!("{}-not-empty", queue.dlq_name()),
                &format!(
                    "{} holds messages that could not be processed: see `ops dlq list`",
                    queue.dlq_name()
                ),
                "ApproximateNumberOfMessagesVisible",
                json!(0),
                1,
            ),
        );
        resources.insert(
            format!("{}OldestMessageAlarm", queue_id(queue)),
            alarm(
                &queue_id(queue),
                &format!("{}-oldest-message-too-old", queue.name),
                &format!(
                    "the oldest message in {} waits longer than allowed: is its consumer ({}) running?",
                    queue.name,
                    queue.consumer.source()
                ),
                "ApproximateAgeOfOldestMessage",
                json!({"Ref": "OldestMessageAgeAlarmSeconds"}),
                5,
            ),
        );
    }
    resources.insert(
        ALARM_TOPIC.into(),
        json!({
            "Type": "AWS::SNS::Topic",
            "Properties": {
                "DisplayName": {"Fn::Sub": "${AWS::StackName} alarms"},
                "KmsMasterKeyId": arn_of(KEY)
            }
        }),
    );
    resources.insert(
        "AlarmEmailSubscription".into(),
        json!({
            "Type": "AWS::SNS::Subscription",
            "Condition": "HasAlarmEmail",
            "Properties": {
                "TopicArn": {"Ref": ALARM_TOPIC},
                "Protocol": "email",
                "Endpoint": {"Ref": "AlarmEmail"}
            }
        }),
    );
    for service in Service::ALL {
        resources.insert(role_id(service), role(topology, service));
    }

    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!(
            "Message-driven order, invoice and notification services: the messaging topology \
             with the {} order chain, rendered from contracts::topology by \
             `cargo run -p infra --bin ops -- cloudformation write`. Do not edit by hand.",
            chain_of(topology)
        ),
        "Parameters": {
            "TrustedPrincipalArn": {
                "Type": "String",
                "Default": "",
                "Description": "Optional: an IAM role or user ARN that may also assume the service roles \
                    (an EC2 instance role, an EKS pod role, or yours to run the services from a \
                    workstation). ECS tasks of this account may always assume them."
            },
            "AlarmEmail": {
                "Type": "String",
                "Default": "",
                "Description": "Optional: an email address subscribed to the alarm topic."
            },
            "OldestMessageAgeAlarmSeconds": {
                "Type": "Number",
                "Default": 600,
                "MinValue": 60,
                "Description": "Alarm when a queue's oldest message is older than this for 5 minutes."
            }
        },
        "Conditions": {
            "HasTrustedPrincipal": {"Fn::Not": [{"Fn::Equals": [{"Ref": "TrustedPrincipalArn"}, ""]}]},
            "HasAlarmEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
        },
        "Resources": resources,
        "Outputs": outputs(topology),
    })
}

/// The template as committed: pretty JSON with a final newline.
pub fn render_text(chain: Chain) -> String {
    as_committed(&render(&Topology::declare(chain)))
}

/// A template as the files under `infra/cloudformation/` hold it: pretty
/// JSON with a final newline.
pub(crate) fn as_committed(template: &Value) -> String {
    let text = serde_json::to_string_pretty(template)
        .unwrap_or_else(|e| unreachable!("a JSON value always serialises: {e}"));
    text + "\n"
}

/// A log group `<prefix><name>` (the prefix a `Fn::Sub` string), kept
/// `LogRetentionDays` and encrypted with the stack's key `key`.
pub(crate) fn encrypted_log_group(prefix: &str, name: &str, key: &str) -> Value {
    json!({
        "Type": "AWS::Logs::LogGroup",
        "Properties": {
            "LogGroupName": {"Fn::Sub": format!("{prefix}{name}")},
            "RetentionInDays": {"Ref": "LogRetentionDays"},
            "KmsKeyId": arn_of(key)
        }
    })
}

/// The committed file of `chain`'s template, relative to `infra/cloudformation/`.
pub fn file_name(chain: Chain) -> String {
    format!("messaging-{chain}.json")
}

fn chain_of(topology: &Topology) -> Chain {
    if topology.topics.iter().any(|t| t.fifo) {
        Chain::Fifo
    } else {
        Chain::Standard
    }
}

/// A logical id from a topology name: `invoice-orders.fifo` → `InvoiceOrdersFifo`.
pub(crate) fn id(name: &str, suffix: &str) -> String {
    let mut out = String::new();
    for part in name.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    out + suffix
}

pub fn queue_id(queue: &QueueSpec) -> String {
    id(queue.name, "Queue")
}

pub fn dlq_id(queue: &QueueSpec) -> String {
    id(queue.name, "Dlq")
}

pub fn subscription_id(queue: &QueueSpec) -> String {
    id(queue.name, "Subscription")
}

pub fn topic_id(topic: &str) -> String {
    id(topic, "Topic")
}

pub fn bus_id(bus: &str) -> String {
    id(bus, "Bus")
}

pub fn rule_id(rule: &str) -> String {
    id(rule, "Rule")
}

pub fn role_id(service: Service) -> String {
    id(service.source(), "Role")
}

pub(crate) fn arn_of(logical_id: &str) -> Value {
    json!({"Fn::GetAtt": [logical_id, "Arn"]})
}

/// The ARN of a topic built from its name: the key policy needs it, and a
/// reference would make the key depend on the topic that depends on the key.
fn topic_arn_by_name(topic: &str) -> Value {
    json!({"Fn::Sub": format!("arn:${{AWS::Partition}}:sns:${{AWS::Region}}:${{AWS::AccountId}}:{topic}")})
}

/// The ARN of a rule on a custom bus, built from the names, for the same reason.
fn rule_arn_by_name(bus: &str, rule: &str) -> Value {
    json!({"Fn::Sub": format!("arn:${{AWS::Partition}}:events:${{AWS::Region}}:${{AWS::AccountId}}:rule/{bus}/{rule}")})
}

/// The topic or rule that owns `queue`. The rule's ARN is built from its
/// name: the rule waits for the queue's policy, so that its first event is
/// accepted, and a reference back would be a cycle.
fn source_arn(queue: &QueueSpec) -> Value {
    match queue.source {
        Source::Subscription { topic } => json!({"Ref": topic_id(topic)}),
        Source::Rule { bus, rule } => rule_arn_by_name(bus, rule),
    }
}

fn via(service: &str) -> Value {
    json!({"StringEquals": {"kms:ViaService": {"Fn::Sub": format!("{service}.${{AWS::Region}}.amazonaws.com")}}})
}

/// The key policy: the account administers the key through IAM (so the role
/// policies below grant its use), SNS and EventBridge may use it only on
/// behalf of the topology's topics and rules (to deliver to the encrypted
/// queues), and CloudWatch to publish alarms to the encrypted alarm topic.
fn key(topology: &Topology) -> Value {
    let topics: Vec<Value> = topology
        .topics
        .iter()
        .map(|t| topic_arn_by_name(t.name))
        .collect();
    let rules: Vec<Value> = topology
        .queues
        .iter()
        .filter_map(|q| match q.source {
            Source::Rule { bus, rule } => Some(rule_arn_by_name(bus, rule)),
            Source::Subscription { .. } => None,
        })
        .collect();
    let delivers = |sid: &str, service: &str, sources: Vec<Value>| {
        json!({
            "Sid": sid,
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
            "Resource": "*",
            "Condition": {"ArnEquals": {"aws:SourceArn": sources}}
        })
    };
    customer_managed_key(
        "encrypts the topics and queues",
        vec![
            delivers("SnsDeliversToEncryptedQueues", "sns.amazonaws.com", topics),
            delivers(
                "EventBridgeDeliversToEncryptedQueues",
                "events.amazonaws.com",
                rules,
            ),
            json!({
                "Sid": "CloudWatchPublishesAlarms",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
            }),
        ],
    )
}

/// A customer managed key that the stack's deletion keeps (what it encrypted
/// stays readable) and rotates yearly. The account administers it through
/// IAM, so that role policies can grant its use; `statements` name who else
/// may use it, and for what.
pub(crate) fn customer_managed_key(description: &str, statements: Vec<Value>) -> Value {
    let mut all = vec![json!({
        "Sid": "TheAccountAdministersTheKeyThroughIam",
        "Effect": "Allow",
        "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
        "Action": "kms:*",
        "Resource": "*"
    })];
    all.extend(statements);
    json!({
        "Type": "AWS::KMS::Key",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "Description": {"Fn::Sub": format!("${{AWS::StackName}}: {description}")},
            "EnableKeyRotation": true,
            "KeyPolicy": {
                "Version": "2012-10-17",
                "Statement": all
            }
        }
    })
}

/// The key policy statement that lets CloudWatch Logs encrypt the log groups
/// whose names start with `prefix` (it can use a key only when its policy
/// says so).
pub(crate) fn logs_may_use_key(prefix: &str) -> Value {
    json!({
        "Sid": "CloudWatchLogsEncryptsTheStacksLogGroups",
        "Effect": "Allow",
        "Principal": {"Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}},
        "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
        "Resource": "*",
        "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": {
            "Fn::Sub": format!("arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{prefix}*")
        }}}
    })
}

/// The alias `alias/<stack>-<suffix>` of the key `key`.
pub(crate) fn key_alias(suffix: &str, key: &str) -> Value {
    json!({
        "Type": "AWS::KMS::Alias",
        "Properties": {
            "AliasName": {"Fn::Sub": format!("alias/${{AWS::StackName}}-{suffix}")},
            "TargetKeyId": {"Ref": key}
        }
    })
}

fn topic_resource(topic: &TopicSpec) -> Value {
    let mut properties = json!({
        "TopicName": topic.name,
        "KmsMasterKeyId": arn_of(KEY),
    });
    if topic.fifo {
        // Deduplication by the event id the relay sends, not by content.
        properties["FifoTopic"] = json!(true);
        properties["ContentBasedDeduplication"] = json!(false);
    }
    json!({"Type": "AWS::SNS::Topic", "Properties": properties})
}

/// Refuses every publish that is not over TLS. Who may publish at all is the
/// publisher role's policy.
fn topic_tls_policy(topic: &TopicSpec) -> Value {
    let topic = json!({"Ref": topic_id(topic.name)});
    json!({
        "Type": "AWS::SNS::TopicPolicy",
        "Properties": {
            "Topics": [topic],
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "OnlyOverTls",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "sns:Publish",
                    "Resource": topic,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}}
                }]
            }
        }
    })
}

fn bus_resource(bus: &BusSpec) -> Value {
    json!({"Type": "AWS::Events::EventBus", "Properties": {"Name": bus.name}})
}

fn archive_resource(bus: &BusSpec) -> Value {
    json!({
        "Type": "AWS::Events::Archive",
        "Properties": {
            "ArchiveName": bus.archive,
            "SourceArn": arn_of(&bus_id(bus.name)),
            "RetentionDays": bus.archive_retention_days,
            "Description": format!("every event on {}, for replay", bus.name)
        }
    })
}

fn encrypted_queue(name: &str, fifo: bool) -> Map<String, Value> {
    let mut properties = Map::new();
    properties.insert("QueueName".into(), json!(name));
    if fifo {
        properties.insert("FifoQueue".into(), json!(true));
    }
    properties.insert("KmsMasterKeyId".into(), arn_of(KEY));
    properties.insert(
        "KmsDataKeyReusePeriodSeconds".into(),
        json!(DATA_KEY_REUSE_SECS),
    );
    properties
}

fn dlq_resource(queue: &QueueSpec) -> Value {
    let mut properties = encrypted_queue(&queue.dlq_name(), queue.fifo);
    properties.insert("MessageRetentionPeriod".into(), json!(DLQ_RETENTION_SECS));
    json!({"Type": "AWS::SQS::Queue", "Properties": properties})
}

fn queue_resource(queue: &QueueSpec) -> Value {
    let mut properties = encrypted_queue(queue.name, queue.fifo);
    properties.insert(
        "VisibilityTimeout".into(),
        json!(queue.visibility_timeout_secs),
    );
    properties.insert(
        "RedrivePolicy".into(),
        json!({"deadLetterTargetArn": arn_of(&dlq_id(queue)), "maxReceiveCount": queue.max_receive_count}),
    );
    json!({"Type": "AWS::SQS::Queue", "Properties": properties})
}

fn subscription(topic: &str, queue: &QueueSpec) -> Value {
    json!({
        "Type": "AWS::SNS::Subscription",
        // SNS delivers from the first message on: the queue must accept it.
        "DependsOn": [format!("{}Policy", queue_id(queue))],
        "Properties": {
            "TopicArn": {"Ref": topic_id(topic)},
            "Protocol": "sqs",
            "Endpoint": arn_of(&queue_id(queue)),
            "RawMessageDelivery": true,
            "FilterPolicyScope": "MessageAttributes",
            "FilterPolicy": filter_policy(queue)
        }
    })
}

fn rule_resource(bus: &str, rule: &str, queue: &QueueSpec) -> Value {
    json!({
        "Type": "AWS::Events::Rule",
        // The bus by name (with the dependency spelled out): moto's
        // CloudFormation cannot resolve a reference to a bus here.
        "DependsOn": [bus_id(bus), format!("{}Policy", queue_id(queue)), format!("{}Policy", dlq_id(queue))],
        "Properties": {
            "Name": rule,
            "EventBusName": bus,
            "Description": format!("{} events to {}", bus, queue.name),
            "EventPattern": rule_pattern(queue),
            "State": "ENABLED",
            "Targets": [{
                "Id": queue.name,
                "Arn": arn_of(&queue_id(queue)),
                "DeadLetterConfig": {"Arn": arn_of(&dlq_id(queue))},
                "RetryPolicy": {
                    "MaximumRetryAttempts": RULE_TARGET_MAX_RETRY_ATTEMPTS,
                    "MaximumEventAgeInSeconds": RULE_TARGET_MAX_EVENT_AGE_SECS
                }
            }]
        }
    })
}

fn alarm(
    queue_logical_id: &str,
    name: &str,
    description: &str,
    metric: &str,
    threshold: Value,
    minutes: u32,
) -> Value {
    json!({
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": {"Fn::Sub": format!("${{AWS::StackName}}-{name}")},
            "AlarmDescription": description,
            "Namespace": "AWS/SQS",
            "MetricName": metric,
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_logical_id, "QueueName"]}}],
            "Statistic": "Maximum",
            "Period": 60,
            "EvaluationPeriods": minutes,
            "Threshold": threshold,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": ALARM_TOPIC}],
            "OKActions": [{"Ref": ALARM_TOPIC}]
        }
    })
}

/// A service's role: assumed by the ECS tasks of this account (and by the
/// optional trusted principal), allowed exactly [`service_policy`].
fn role(topology: &Topology, service: Service) -> Value {
    json!({
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": {"Fn::Sub": format!("${{AWS::StackName}}-{}", service.source())},
            "Description": format!("The {}: its own messaging actions on its own resources", service.source()),
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "EcsTasksOfThisAccount",
                        "Effect": "Allow",
                        "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                        "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
                    },
                    {"Fn::If": ["HasTrustedPrincipal", {
                        "Sid": "TheTrustedPrincipal",
                        "Effect": "Allow",
                        "Principal": {"AWS": {"Ref": "TrustedPrincipalArn"}},
                        "Action": "sts:AssumeRole"
                    }, {"Ref": "AWS::NoValue"}]}
                ]
            },
            "Policies": [{
                "PolicyName": "messaging",
                "PolicyDocument": service_policy(topology, service)
            }]
        }
    })
}

/// What `service` may do, derived from the topology and from what the code
/// calls:
/// - a topic publisher: `sns:Publish` on its topic, `sns:ListTopics` (the
///   relay finds the topic's ARN by name; the action has no resource-level
///   permission), and the key through SNS only;
/// - a bus publisher: `events:PutEvents` on its bus, only with its own
///   `source` and its own event types;
/// - a consumer: receive, delete, change visibility and look up the URL of
///   its queues (the readiness check calls GetQueueUrl), send to their DLQs
///   (the consumer moves poison there itself), and the key through SQS only.
pub fn service_policy(topology: &Topology, service: Service) -> Value {
    let mut statements = Vec::new();
    match topology.channel_of(service) {
        None => {}
        Some(Channel::Topic(topic)) => {
            statements.push(json!({
                "Sid": "PublishToItsTopic",
                "Effect": "Allow",
                "Action": "sns:Publish",
                "Resource": {"Ref": topic_id(topic.name)}
            }));
            statements.push(json!({
                "Sid": "FindItsTopicByName",
                "Effect": "Allow",
                "Action": "sns:ListTopics",
                "Resource": "*"
            }));
            statements.push(json!({
                "Sid": "EncryptForItsTopic",
                "Effect": "Allow",
                "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
                "Resource": arn_of(KEY),
                "Condition": via("sns")
            }));
        }
        Some(Channel::Bus(bus)) => {
            let types: Vec<&str> = EventType::ALL
                .into_iter()
                .filter(|t| t.publisher() == service)
                .map(EventType::as_str)
                .collect();
            statements.push(json!({
                "Sid": "PutItsEventsOnItsBus",
                "Effect": "Allow",
                "Action": "events:PutEvents",
                "Resource": arn_of(&bus_id(bus.name)),
                "Condition": {"StringEquals": {
                    "events:source": [service.source()],
                    "events:detail-type": types
                }}
            }));
        }
    }
    let queues = topology.queues_of(service);
    if !queues.is_empty() {
        statements.push(json!({
            "Sid": "ConsumeItsQueues",
            "Effect": "Allow",
            "Action": [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueUrl"
            ],
            "Resource": queues.iter().map(|q| arn_of(&queue_id(q))).collect::<Vec<_>>()
        }));
        // GetQueueAttributes: the metrics sampler reads each DLQ's depth.
        statements.push(json!({
            "Sid": "DeadLetterToItsDlqs",
            "Effect": "Allow",
            "Action": ["sqs:SendMessage", "sqs:GetQueueUrl", "sqs:GetQueueAttributes"],
            "Resource": queues.iter().map(|q| arn_of(&dlq_id(q))).collect::<Vec<_>>()
        }));
        statements.push(json!({
            "Sid": "DecryptAndEncryptItsQueues",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": arn_of(KEY),
            "Condition": via("sqs")
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

fn outputs(topology: &Topology) -> Value {
    let mut outputs = Map::new();
    let mut output = |id: String, description: String, value: Value| {
        outputs.insert(id, json!({"Description": description, "Value": value}));
    };
    for service in Service::ALL {
        output(
            format!("{}Arn", role_id(service)),
            format!("the role the {} assumes", service.source()),
            arn_of(&role_id(service)),
        );
    }
    for topic in &topology.topics {
        output(
            format!("{}Arn", topic_id(topic.name)),
            format!("the SNS topic {}", topic.name),
            json!({"Ref": topic_id(topic.name)}),
        );
    }
    for bus in &topology.buses {
        output(
            format!("{}Arn", bus_id(bus.name)),
            format!("the EventBridge bus {}", bus.name),
            arn_of(&bus_id(bus.name)),
        );
    }
    for queue in &topology.queues {
        output(
            format!("{}Url", queue_id(queue)),
            format!("the SQS queue {}", queue.name),
            json!({"Ref": queue_id(queue)}),
        );
        output(
            format!("{}Url", dlq_id(queue)),
            format!("the SQS queue {}", queue.dlq_name()),
            json!({"Ref": dlq_id(queue)}),
        );
    }
    output(
        format!("{KEY}Arn"),
        "the KMS key of every topic and queue".into(),
        arn_of(KEY),
    );
    output(
        format!("{ALARM_TOPIC}Arn"),
        "the topic the alarms notify".into(),
        json!({"Ref": ALARM_TOPIC}),
    );
    Value::Object(outputs)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use contracts::topology::topology;

    fn statements(policy: &Value) -> Vec<Value> {
        policy["Statement"].as_array().cloned().unwrap_or_default()
    }

    /// Every (action, resource) pair a policy allows, resources as JSON text.
    fn grants(policy: &Value) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for s in statements(policy) {
            assert_eq!(s["Effect"], "Allow");
            let list = |v: &Value| match v {
                Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            };
            for action in list(&s["Action"]) {
                for resource in list(&s["Resource"]) {
                    out.insert((
                        action.as_str().unwrap_or_default().to_string(),
                        resource.to_string(),
                    ));
                }
            }
        }
        out
    }

    fn queue<'a>(t: &'a Topology, name: &str) -> &'a QueueSpec {
        t.queues.iter().find(|q| q.name == name).expect("declared")
    }

    #[test]
    fn logical_ids_are_derived_from_names() {
        assert_eq!(id("invoice-orders.fifo", "Queue"), "InvoiceOrdersFifoQueue");
        assert_eq!(topic_id("orders"), "OrdersTopic");
        assert_eq!(
            rule_id("invoice-events-to-order"),
            "InvoiceEventsToOrderRule"
        );
        assert_eq!(role_id(Service::Order), "OrderServiceRole");
    }

    #[test]
    fn the_order_service_may_publish_to_orders_and_consume_order_invoices_and_nothing_else() {
        let t = topology();
        let q = queue(&t, "order-invoices");
        let key = arn_of(KEY).to_string();
        let expected: BTreeSet<(String, String)> = [
            ("sns:Publish", json!({"Ref": "OrdersTopic"}).to_string()),
            ("sns:ListTopics", json!("*").to_string()),
            ("kms:GenerateDataKey*", key.clone()),
            ("kms:Decrypt", key.clone()),
            ("sqs:ReceiveMessage", arn_of(&queue_id(q)).to_string()),
            ("sqs:DeleteMessage", arn_of(&queue_id(q)).to_string()),
            (
                "sqs:ChangeMessageVisibility",
                arn_of(&queue_id(q)).to_string(),
            ),
            ("sqs:GetQueueUrl", arn_of(&queue_id(q)).to_string()),
            ("sqs:SendMessage", arn_of(&dlq_id(q)).to_string()),
            ("sqs:GetQueueUrl", arn_of(&dlq_id(q)).to_string()),
            ("sqs:GetQueueAttributes", arn_of(&dlq_id(q)).to_string()),
            ("kms:GenerateDataKey", key),
        ]
        .into_iter()
        .map(|(a, r)| (a.to_string(), r))
        .collect();
        assert_eq!(grants(&service_policy(&t, Service::Order)), expected);
    }

    #[test]
    fn the_kms_grants_hold_only_through_sns_or_sqs() {
        for chain in [Chain::Standard, Chain::Fifo] {
            let t = Topology::declare(chain);
            for service in Service::ALL {
                for s in statements(&service_policy(&t, service)) {
                    let kms = s["Action"].to_string().contains("kms:");
                    assert_eq!(
                        kms,
                        s["Condition"]["StringEquals"]["kms:ViaService"].is_object(),
                        "{s}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_invoice_service_puts_only_its_own_events_on_the_bus_and_publishes_to_no_topic() {
        let t = topology();
        let policy = service_policy(&t, Service::Invoice);
        let put: Vec<Value> = statements(&policy)
            .into_iter()
            .filter(|s| s["Action"] == "events:PutEvents")
            .collect();
        assert_eq!(put.len(), 1);
        assert_eq!(put[0]["Resource"], arn_of("BillingBus"));
        assert_eq!(
            put[0]["Condition"]["StringEquals"]["events:source"],
            json!(["invoice-service"])
        );
        assert_eq!(
            put[0]["Condition"]["StringEquals"]["events:detail-type"],
            json!(["InvoiceIssued", "InvoiceVoided"])
        );
        assert!(!policy.to_string().contains("sns:"));
    }

    #[test]
    fn the_notification_service_publishes_nothing_and_consumes_both_of_its_queues() {
        for chain in [Chain::Standard, Chain::Fifo] {
            let t = Topology::declare(chain);
            let policy = service_policy(&t, Service::Notification);
            let actions: BTreeSet<String> = grants(&policy).into_iter().map(|(a, _)| a).collect();
            assert!(
                actions
                    .iter()
                    .all(|a| a.starts_with("sqs:") || a.starts_with("kms:")),
                "{actions:?}"
            );
            let resources: BTreeSet<String> = grants(&policy).into_iter().map(|(_, r)| r).collect();
            for q in t.queues_of(Service::Notification) {
                assert!(resources.contains(&arn_of(&queue_id(&q)).to_string()));
                assert!(resources.contains(&arn_of(&dlq_id(&q)).to_string()));
            }
            // Nothing of another service's queues.
            for q in t
                .queues
                .iter()
                .filter(|q| q.consumer != Service::Notification)
            {
                assert!(!resources.contains(&arn_of(&queue_id(q)).to_string()));
                assert!(!resources.contains(&arn_of(&dlq_id(q)).to_string()));
            }
        }
    }

    #[test]
    fn every_queue_and_dlq_accepts_only_its_owning_topic_or_rule() {
        for chain in [Chain::Standard, Chain::Fifo] {
            let t = Topology::declare(chain);
            let template = render(&t);
            for q in &t.queues {
                // An SNS-fed queue's DLQ is filled by the redrive policy and
                // the consumer's own role: it grants nothing to the topic.
                let rule_fed = matches!(q.source, Source::Rule { .. });
                for (id, grants_the_source) in [(queue_id(q), true), (dlq_id(q), rule_fed)] {
                    let policy = &template["Resources"][format!("{id}Policy")]["Properties"];
                    assert_eq!(policy["Queues"], json!([{"Ref": id}]));
                    let statements = policy["PolicyDocument"]["Statement"]
                        .as_array()
                        .expect("statements");
                    let allows: Vec<_> = statements
                        .iter()
                        .filter(|s| s["Effect"] == "Allow")
                        .collect();
                    assert_eq!(allows.len(), usize::from(grants_the_source), "{id}");
                    for allow in allows {
                        assert_eq!(allow["Resource"], arn_of(&id));
                        assert_eq!(
                            allow["Condition"]["ArnEquals"]["aws:SourceArn"],
                            source_arn(q)
                        );
                        assert_eq!(allow["Principal"]["Service"], sender_service(q));
                    }
                    assert!(
                        statements.iter().any(|s| s["Sid"] == "OnlyOverTls"),
                        "{id} refuses plain HTTP"
                    );
                }
            }
        }
    }

    #[test]
    fn every_dlq_has_a_depth_alarm_and_every_queue_an_age_alarm() {
        let t = topology();
        let template = render(&t);
        let resources = &template["Resources"];
        for q in &t.queues {
            let depth = &resources[format!("{}DepthAlarm", dlq_id(q))]["Properties"];
            assert_eq!(depth["MetricName"], "ApproximateNumberOfMessagesVisible");
            assert_eq!(
                depth["Dimensions"][0]["Value"],
                json!({"Fn::GetAtt": [dlq_id(q), "QueueName"]})
            );
            let age = &resources[format!("{}OldestMessageAlarm", queue_id(q))]["Properties"];
            assert_eq!(age["MetricName"], "ApproximateAgeOfOldestMessage");
        }
    }

    #[test]
    fn the_key_lets_sns_and_eventbridge_act_only_for_the_topology_topics_and_rules() {
        let t = Topology::declare(Chain::Fifo);
        let template = render(&t);
        let policy = &template["Resources"][KEY]["Properties"]["KeyPolicy"];
        let by_sid = |sid: &str| {
            statements(policy)
                .into_iter()
                .find(|s| s["Sid"] == sid)
                .expect("statement")
        };
        assert_eq!(
            by_sid("SnsDeliversToEncryptedQueues")["Condition"]["ArnEquals"]["aws:SourceArn"],
            json!([topic_arn_by_name("orders.fifo")])
        );
        assert_eq!(
            by_sid("EventBridgeDeliversToEncryptedQueues")["Condition"]["ArnEquals"]["aws:SourceArn"],
            json!([
                rule_arn_by_name("billing", "invoice-events-to-order"),
                rule_arn_by_name("billing", "invoice-events-to-notification")
            ])
        );
    }

    /// Every `Ref`, `Fn::GetAtt`, `DependsOn` and `Condition` names something the template declares.
    #[test]
    fn every_reference_resolves() {
        fn walk(v: &Value, found: &mut Vec<String>) {
            match v {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("Ref") {
                        found.push(r.clone());
                    }
                    if let Some(Value::Array(att)) = map.get("Fn::GetAtt") {
                        found.push(att[0].as_str().unwrap_or_default().to_string());
                    }
                    map.values().for_each(|v| walk(v, found));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
                _ => {}
            }
        }
        for chain in [Chain::Standard, Chain::Fifo] {
            let template = render(&Topology::declare(chain));
            let resources = template["Resources"].as_object().expect("resources");
            let params = template["Parameters"].as_object().expect("parameters");
            let mut found = Vec::new();
            walk(&template, &mut found);
            for (_, r) in resources {
                if let Some(Value::Array(deps)) = r.get("DependsOn") {
                    found.extend(deps.iter().filter_map(|d| d.as_str().map(String::from)));
                }
                if let Some(Value::String(c)) = r.get("Condition") {
                    assert!(template["Conditions"][c].is_object(), "{c}");
                }
            }
            for name in found {
                assert!(
                    resources.contains_key(&name)
                        || params.contains_key(&name)
                        || name.starts_with("AWS::"),
                    "{name} is not declared"
                );
            }
        }
    }
}
