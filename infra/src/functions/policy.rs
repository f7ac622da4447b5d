//! A function's execution role: least privilege, from the same derivation
//! as the service's ECS task role.
//!
//! - `messaging`: [`service_policy`] itself, the one the messaging stack's
//!   role of the service holds (publish to its topic or bus, receive, delete
//!   and change the visibility of its queues, send to their DLQs, the key
//!   through SNS or SQS only). It names the messaging template's resources
//!   by `Ref` and `Fn::GetAtt`; here each is rewritten to its ARN built from
//!   the topology's name ([`by_name`]), and the key to the `MessagingKeyArn`
//!   parameter. A reference the rewrite does not know panics, so a grant
//!   added to `service_policy` is never silently left out. Where the chains
//!   name a resource differently, an `Fn::If` on `OrdersChain` picks it.
//! - `event-source`: what the event source mapping needs on the function's
//!   queues beyond that (`sqs:GetQueueAttributes`; the receive, delete and
//!   visibility actions are listed again so that the statement says all the
//!   mapping uses), and writing to the function's own log group.
//! - `network-interfaces`: the EC2 actions of the AWS managed policy
//!   `AWSLambdaVPCAccessExecutionRole`, which Lambda needs to attach the
//!   function to the VPC, written out rather than attached: the managed
//!   policy also grants creating and writing any log group of the account,
//!   and puts every action on `*`. Here only the two `Describe*` actions,
//!   which take no resource, are on `*`; creating, deleting and addressing
//!   network interfaces is limited to the interfaces, subnets and security
//!   groups of this account and region (a subnet shared from another
//!   account would need its owner's ARN added).
//!
//! [`service_policy`]: crate::cloudformation::service_policy

use contracts::topology::{Chain, Service, Topology};
use serde_json::{Value, json};

use super::{MESSAGING_KEY, per_chain, queue_arn, queues};
use crate::cloudformation::{self, arn_of, bus_id, dlq_id, queue_id, topic_id};

/// The name of the policy that holds the EC2 actions alone.
pub(super) const NETWORK_INTERFACES_POLICY: &str = "network-interfaces";

/// The EC2 actions of `AWSLambdaVPCAccessExecutionRole` that read, and take
/// no resource.
pub(super) const NETWORK_DESCRIBE_ACTIONS: [&str; 2] =
    ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"];

/// The EC2 actions of `AWSLambdaVPCAccessExecutionRole` that write.
pub(super) const NETWORK_INTERFACE_ACTIONS: [&str; 4] = [
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
];

/// The resources those write actions act on, in this account and region.
fn network_resources() -> Vec<Value> {
    ["network-interface", "subnet", "security-group"]
        .into_iter()
        .map(|kind| json!({"Fn::Sub": format!("arn:${{AWS::Partition}}:ec2:${{AWS::Region}}:${{AWS::AccountId}}:{kind}/*")}))
        .collect()
}

/// Each reference of the messaging template a service policy may hold, with
/// what names the same resource from another stack.
pub(super) fn by_name(topology: &Topology) -> Vec<(Value, Value)> {
    let sub = |service: &str, resource: &str| json!({"Fn::Sub": format!("arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{resource}")});
    let mut names = vec![(arn_of(cloudformation::KEY), json!({"Ref": MESSAGING_KEY}))];
    for topic in &topology.topics {
        names.push((json!({"Ref": topic_id(topic.name)}), sub("sns", topic.name)));
    }
    for bus in &topology.buses {
        names.push((
            arn_of(&bus_id(bus.name)),
            sub("events", &format!("event-bus/{}", bus.name)),
        ));
    }
    for queue in &topology.queues {
        names.push((arn_of(&queue_id(queue)), queue_arn(queue.name)));
        names.push((arn_of(&dlq_id(queue)), queue_arn(&queue.dlq_name())));
    }
    names
}

/// `value` with every reference to the messaging template's resources
/// replaced by its ARN from its name.
///
/// # Panics
/// On a `Ref` (other than a pseudo parameter) or `Fn::GetAtt` it cannot
/// name: a grant this template would otherwise lose.
pub(super) fn rewritten(value: &Value, names: &[(Value, Value)]) -> Value {
    if let Some((_, to)) = names.iter().find(|(from, _)| from == value) {
        return to.clone();
    }
    match value {
        Value::Object(map) => {
            let pseudo = map
                .get("Ref")
                .and_then(Value::as_str)
                .is_some_and(|r| r.starts_with("AWS::"));
            assert!(
                pseudo || !(map.contains_key("Ref") || map.contains_key("Fn::GetAtt")),
                "the service policy refers to {value}, which the Lambda template cannot name: teach functions::policy::by_name"
            );
            Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), rewritten(v, names)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| rewritten(v, names)).collect()),
        other => other.clone(),
    }
}

/// [`service_policy`] of `service` on either chain, naming the messaging
/// stack's resources by ARN.
///
/// [`service_policy`]: crate::cloudformation::service_policy
pub(super) fn messaging(service: Service) -> Value {
    let of = |chain| {
        let topology = Topology::declare(chain);
        rewritten(
            &cloudformation::service_policy(&topology, service),
            &by_name(&topology),
        )
    };
    per_chain(&of(Chain::Standard), &of(Chain::Fifo))
}

pub(super) fn role(service: Service, log_group: &str) -> Value {
    let queue_arns: Vec<Value> = queues(service)
        .iter()
        .map(|(s, f)| per_chain(&queue_arn(s.name), &queue_arn(f.name)))
        .collect();
    json!({
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": format!("The {}'s Lambda function: its service's messaging actions, its event source mappings, its logs, its network interfaces", service.source()),
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "Lambda",
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole"
                }]
            },
            "Policies": [
                {"PolicyName": "messaging", "PolicyDocument": messaging(service)},
                {
                    "PolicyName": "event-source",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "TheMappingPollsItsQueues",
                                "Effect": "Allow",
                                "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"],
                                "Resource": queue_arns
                            },
                            {
                                "Sid": "WriteItsLogs",
                                "Effect": "Allow",
                                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                                "Resource": arn_of(log_group)
                            }
                        ]
                    }
                },
                {
                    "PolicyName": NETWORK_INTERFACES_POLICY,
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "FindTheSubnetsAndInterfaces",
                                "Effect": "Allow",
                                "Action": NETWORK_DESCRIBE_ACTIONS,
                                "Resource": "*"
                            },
                            {
                                "Sid": "AttachToTheVpc",
                                "Effect": "Allow",
                                "Action": NETWORK_INTERFACE_ACTIONS,
                                "Resource": network_resources()
                            }
                        ]
                    }
                }
            ]
        }
    })
}
