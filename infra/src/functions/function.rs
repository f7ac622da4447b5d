//! For each consuming service: its function, log group and execution role,
//! an event source mapping per queue it consumes, and, when it publishes, the
//! schedule that sweeps its outbox.
//!
//! The function is the binary `cargo lambda build` names `bootstrap`, on the
//! OS-only runtime `provided.al2023`, in the service's task security group
//! (see the module above). Its environment is what the service's tasks get
//! that the function reads: `DATABASE_URL`, `ORDERS_CHAIN`, `LOG_FORMAT`.
//!
//! No reserved concurrency: each mapping's `ScalingConfig.MaximumConcurrency`
//! bounds the invocations it makes, which is AWS's advice for SQS sources.
//! Reserved concurrency below that would throttle the mapping, and a
//! throttled batch goes back to the queue and counts towards its
//! `maxReceiveCount`, sending sound messages to the DLQ; reserved
//! concurrency would also take capacity from the account's unreserved pool
//! (which must keep 100), failing the deployment in a small account. The
//! schedule adds one invocation per period.
//!
//! The mapping: batches of 10 (the consumer's batch), partial batch
//! responses (`ReportBatchItemFailures`: only the messages reported failed
//! come back), and the batching window only on standard queues: a FIFO
//! queue's mapping does not take one. A failed message goes where the
//! long-running consumer's would: back to the queue after the delay the
//! consumer set, then to the queue's own DLQ (its redrive policy, or the
//! consumer for poison), so the function has no DLQ or destination of its
//! own.

use contracts::topology::Service;
use serde_json::{Map, Value, json};

use super::key::{KEY, LOG_GROUP_PREFIX};
use super::{function_name, per_chain, policy, prefix, queue_arn, queues, service_prefix};
use crate::cloudformation::{arn_of, id};
use crate::ecs::IS_FIFO;

/// How long a function waits for a database connection, in milliseconds.
const DATABASE_ACQUIRE_TIMEOUT_MS: &str = "1000";

/// The condition that holds when `CodeSigningConfigArn` is set.
pub(super) const HAS_CODE_SIGNING: &str = "HasCodeSigningConfig";

pub(super) fn role_id(service: Service) -> String {
    format!("{}Role", prefix(service))
}

pub(super) fn log_group_id(service: Service) -> String {
    format!("{}LogGroup", prefix(service))
}

/// The logical id of the mapping of a queue, from its standard chain name
/// (`invoice-orders` → `InvoiceOrdersMapping`), the same on both chains.
pub(super) fn mapping_id(standard_queue_name: &str) -> String {
    id(standard_queue_name, "Mapping")
}

pub(super) fn schedule_id(service: Service) -> String {
    format!("{}OutboxSweep", prefix(service))
}

pub(super) fn add(resources: &mut Map<String, Value>, service: Service) {
    let p = prefix(service);
    let name = function_name(service);
    resources.insert(
        log_group_id(service),
        crate::cloudformation::encrypted_log_group(LOG_GROUP_PREFIX, &name, KEY),
    );
    resources.insert(
        role_id(service),
        policy::role(service, &log_group_id(service)),
    );
    resources.insert(p.clone(), function(service));
    for (standard, fifo) in queues(service) {
        let window = json!({"Ref": "MaximumBatchingWindowInSeconds"});
        let no_window = json!({"Ref": "AWS::NoValue"});
        let window = match (standard.fifo, fifo.fifo) {
            (false, false) => window,
            (false, true) => json!({"Fn::If": [IS_FIFO, no_window, window]}),
            (true, _) => unreachable!("no queue is FIFO on the standard chain"),
        };
        resources.insert(
            mapping_id(standard.name),
            json!({
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "FunctionName": {"Ref": p},
                    "EventSourceArn": per_chain(&queue_arn(standard.name), &queue_arn(fifo.name)),
                    "Enabled": true,
                    "BatchSize": 10,
                    "MaximumBatchingWindowInSeconds": window,
                    "FunctionResponseTypes": ["ReportBatchItemFailures"],
                    "ScalingConfig": {"MaximumConcurrency": {"Ref": "MaximumConcurrency"}}
                }
            }),
        );
    }
    let publishes = [
        contracts::topology::Chain::Standard,
        contracts::topology::Chain::Fifo,
    ]
    .into_iter()
    .any(|chain| {
        contracts::topology::Topology::declare(chain)
            .channel_of(service)
            .is_some()
    });
    if publishes {
        let schedule = schedule_id(service);
        resources.insert(
            schedule.clone(),
            json!({
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "Description": format!("Invokes {name} to sweep the {}'s outbox: what an invocation that died after its commit left", service.source()),
                    "ScheduleExpression": {"Ref": "OutboxSweepSchedule"},
                    "State": "ENABLED",
                    "Targets": [{"Id": "outbox-sweep", "Arn": arn_of(&p)}]
                }
            }),
        );
        resources.insert(
            format!("{schedule}Permission"),
            json!({
                "Type": "AWS::Lambda::Permission",
                "Properties": {
                    "FunctionName": {"Ref": p},
                    "Action": "lambda:InvokeFunction",
                    "Principal": "events.amazonaws.com",
                    "SourceArn": arn_of(&schedule),
                    "SourceAccount": {"Ref": "AWS::AccountId"}
                }
            }),
        );
    }
}

fn function(service: Service) -> Value {
    let p = prefix(service);
    let sp = service_prefix(service);
    json!({
        "Type": "AWS::Lambda::Function",
        "Metadata": {"checkov": {"skip": [
            {
                "id": "CKV_AWS_116",
                "comment": "Does not apply: the function is invoked by SQS event source mappings and by a schedule. A message that fails goes back to its queue and on to that queue's own DLQ (the messaging stack's redrive policy, or the consumer for poison); Lambda's on-failure DLQ serves asynchronous invocations only, and a missed schedule is made up by the next."
            },
            {
                "id": "CKV_AWS_115",
                "comment": "Bounded otherwise: each event source mapping's ScalingConfig.MaximumConcurrency caps its invocations (AWS's advice for SQS sources); reserved concurrency below it would throttle the mapping and push sound messages towards the DLQ, and it would take capacity from the account's unreserved pool."
            }
        ]}},
        "Properties": {
            "Description": format!("The {}'s queue consumers (and its outbox relay)", service.source()),
            "Runtime": "provided.al2023",
            "Handler": "bootstrap",
            "Architectures": [{"Ref": "Architecture"}],
            "Code": {"S3Bucket": {"Ref": "CodeBucket"}, "S3Key": {"Ref": format!("{p}CodeKey")}},
            "CodeSigningConfigArn": {"Fn::If": [HAS_CODE_SIGNING, {"Ref": "CodeSigningConfigArn"}, {"Ref": "AWS::NoValue"}]},
            "Role": arn_of(&role_id(service)),
            "Timeout": {"Ref": "FunctionTimeoutSeconds"},
            "MemorySize": {"Ref": "FunctionMemoryMiB"},
            "VpcConfig": {
                "SubnetIds": {"Ref": "PrivateSubnetIds"},
                "SecurityGroupIds": [{"Ref": format!("{sp}TaskSecurityGroupId")}]
            },
            "KmsKeyArn": arn_of(KEY),
            "Environment": {"Variables": {
                // Resolved by CloudFormation at deploy time: the URL then sits
                // in the function's configuration, encrypted with KmsKeyArn.
                "DATABASE_URL": {"Fn::Sub": format!("{{{{resolve:secretsmanager:${{{sp}DatabaseUrlSecretArn}}:SecretString}}}}")},
                "ORDERS_CHAIN": {"Ref": "OrdersChain"},
                // Well inside the function's timeout (5 s at most): a database
                // that does not answer must end as the handled failed
                // invocation, not as a Lambda timeout that restarts the process.
                "DATABASE_ACQUIRE_TIMEOUT_MS": DATABASE_ACQUIRE_TIMEOUT_MS,
                "LOG_FORMAT": "json"
            }},
            "LoggingConfig": {"LogGroup": {"Ref": log_group_id(service)}}
        }
    })
}
