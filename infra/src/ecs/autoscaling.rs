//! Target tracking of each service's task count on its queues' backlog per
//! task, with the metric math AWS documents for SQS-driven ECS services:
//!
//! ```text
//! m1 (+ m2 …)  ApproximateNumberOfMessagesVisible of each queue the service consumes (AWS/SQS, Sum)
//! mN           RunningTaskCount of the service (ECS/ContainerInsights, Average)
//! e1           (m1 + m2 …) / mN: the backlog per task, kept near the target
//! ```
//!
//! The target is a parameter whose default `crate::scaling` computes
//! (acceptable latency / time per message). Every service consumes at least
//! one queue, so each is scaled this way, the order service on the
//! `order-invoices` queue of its consumer side; its API side is bounded by its
//! minimum task count. With `ConsumersOn` set to `lambda` the policies are
//! left out (the functions consume the backlog) and the task count stays
//! between its bounds. The lower bound is at least 1 (a parameter's
//! `MinValue`), so the division always has a running task.

use contracts::topology::Service;
use serde_json::{Map, Value, json};

use super::{CONSUMERS_ON_ECS, prefix, queue_names, task};

pub(super) fn add(resources: &mut Map<String, Value>, service: Service) {
    let p = prefix(service);
    let target = format!("{p}ScalableTarget");
    resources.insert(
        target.clone(),
        json!({
            "Type": "AWS::ApplicationAutoScaling::ScalableTarget",
            "Properties": {
                "ServiceNamespace": "ecs",
                "ScalableDimension": "ecs:service:DesiredCount",
                "ResourceId": {"Fn::Sub": format!("service/${{{}}}/${{{}.Name}}", task::CLUSTER, task::service_id(service))},
                "MinCapacity": {"Ref": format!("{p}MinTasks")},
                "MaxCapacity": {"Ref": format!("{p}MaxTasks")}
            }
        }),
    );
    resources.insert(
        format!("{p}BacklogPerTaskScaling"),
        json!({
            "Type": "AWS::ApplicationAutoScaling::ScalingPolicy",
            // The backlog is the functions' when they consume it.
            "Condition": CONSUMERS_ON_ECS,
            "Properties": {
                "PolicyName": {"Fn::Sub": format!("${{AWS::StackName}}-{}-backlog-per-task", service.source())},
                "PolicyType": "TargetTrackingScaling",
                "ScalingTargetId": {"Ref": target},
                "TargetTrackingScalingPolicyConfiguration": {
                    "TargetValue": {"Ref": format!("{p}BacklogPerTaskTarget")},
                    "CustomizedMetricSpecification": {"Metrics": backlog_per_task(service)}
                }
            }
        }),
    );
}

/// The metric queries of `service`'s backlog per task; the last one is
/// returned.
pub(super) fn backlog_per_task(service: Service) -> Vec<Value> {
    let queues = queue_names(service);
    let mut metrics: Vec<Value> = queues
        .iter()
        .enumerate()
        .map(|(i, queue)| {
            json!({
                "Id": format!("m{}", i + 1),
                "Label": "messages waiting in a queue the service consumes",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/SQS",
                        "MetricName": "ApproximateNumberOfMessagesVisible",
                        "Dimensions": [{"Name": "QueueName", "Value": queue}]
                    },
                    "Stat": "Sum"
                },
                "ReturnData": false
            })
        })
        .collect();
    let tasks = format!("m{}", queues.len() + 1);
    metrics.push(json!({
        "Id": tasks,
        "Label": "the service's running tasks",
        "MetricStat": {
            "Metric": {
                "Namespace": "ECS/ContainerInsights",
                "MetricName": "RunningTaskCount",
                "Dimensions": [
                    {"Name": "ClusterName", "Value": {"Ref": task::CLUSTER}},
                    {"Name": "ServiceName", "Value": {"Fn::GetAtt": [task::service_id(service), "Name"]}}
                ]
            },
            "Stat": "Average"
        },
        "ReturnData": false
    }));
    let backlog: Vec<String> = (1..=queues.len()).map(|i| format!("m{i}")).collect();
    let backlog = match backlog.as_slice() {
        [one] => one.clone(),
        many => format!("({})", many.join(" + ")),
    };
    metrics.push(json!({
        "Id": "e1",
        "Label": "the backlog per task",
        "Expression": format!("{backlog} / {tasks}"),
        "ReturnData": true
    }));
    metrics
}
