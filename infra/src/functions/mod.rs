//! The consumers as AWS Lambda functions: a third template, for running each
//! service's queue consumers as a function (`order-function`,
//! `invoice-function`, `notification-function`, built from
//! `shared/lambda-function`) instead of inside its ECS tasks.
//!
//! It sits on the two other stacks and takes what it needs from them as
//! parameters named like their outputs, for the reasons `crate::ecs` gives
//! (no exports that would pin one stack to another):
//!
//! - from the messaging stack, `MessagingKeyArn` (the queues' key). The
//!   queues, DLQs, topic and bus are named by the topology, so their ARNs are
//!   built from their names, as the ECS template refers to queues;
//! - from the ECS stack, each service's `…DatabaseUrlSecretArn` and
//!   `…TaskSecurityGroupId`. The function runs in the service's task
//!   security group, which its database already admits (and whose egress is
//!   HTTPS and Postgres to that database): no rule is added to another
//!   stack's group. `DATABASE_URL` is a `{{resolve:secretsmanager:…}}`
//!   dynamic reference, because the code reads that variable and nothing
//!   else: CloudFormation writes the URL, password included, into the
//!   function's configuration, encrypted with this stack's key
//!   (`KmsKeyArn`), and readable by whoever may call
//!   `lambda:GetFunctionConfiguration`. `docs/deploy-lambda.md` says so.
//!
//! The ECS template's `ConsumersOn=lambda` turns the tasks' consumers off;
//! their relays keep running, and share the outbox safely with the
//! functions' (`FOR UPDATE SKIP LOCKED`).
//!
//! Why each resource is as it is: [`function`] (the function, its log group,
//! its event source mappings, the outbox sweep's schedule), [`policy`] (the
//! execution role: the service's own [`service_policy`], rewritten to name
//! the messaging stack's resources by ARN, plus what Lambda itself needs),
//! [`key`]. Written by `cargo run -p infra --bin ops -- cloudformation
//! write` to `infra/cloudformation/compute-lambda.json`; a test fails when
//! the committed file differs.
//!
//! [`service_policy`]: crate::cloudformation::service_policy

mod function;
mod key;
mod policy;

use contracts::topology::{Chain, Service, Topology};
use serde_json::{Map, Value, json};

use crate::cloudformation::id;
use crate::ecs::{IS_FIFO, queue_pairs as queues};

/// The committed file, relative to `infra/cloudformation/`.
pub const FILE_NAME: &str = "compute-lambda.json";

/// AWS's advice for an SQS event source: a queue's visibility timeout of at
/// least six times the function's timeout, so that a batch the mapping
/// retries after a throttle is not visible again while it is still handled.
pub const VISIBILITY_TIMEOUTS_PER_FUNCTION_TIMEOUT: i32 = 6;

/// The parameter of the messaging stack's key.
const MESSAGING_KEY: &str = "MessagingKeyArn";

/// The services that consume, with a function each: every service, today.
fn consumers() -> Vec<Service> {
    Service::ALL
        .into_iter()
        .filter(|s| !Topology::declare(Chain::Standard).queues_of(*s).is_empty())
        .collect()
}

/// `order-function`: the binary's name, as `cargo lambda build --bin` takes it.
pub fn function_name(service: Service) -> String {
    format!("{}-function", service.name())
}

/// `OrderFunction`, …: the prefix of a function's logical ids.
fn prefix(service: Service) -> String {
    id(&function_name(service), "")
}

/// `OrderService`, …: the ECS stack's prefix, whose outputs are parameters here.
fn service_prefix(service: Service) -> String {
    id(service.source(), "")
}

/// The longest function timeout, in seconds, that every queue of either
/// chain allows: the smallest visibility timeout over six.
pub fn max_timeout_secs() -> i32 {
    [Chain::Standard, Chain::Fifo]
        .into_iter()
        .flat_map(|chain| Topology::declare(chain).queues)
        .map(|q| q.visibility_timeout_secs / VISIBILITY_TIMEOUTS_PER_FUNCTION_TIMEOUT)
        .min()
        .unwrap_or_else(|| unreachable!("the topology declares queues"))
}

/// `standard` where both chains agree, else an `Fn::If` on `OrdersChain`, as
/// deep inside as the two differ (never inside an intrinsic function, whose
/// arguments must keep their shape).
fn per_chain(standard: &Value, fifo: &Value) -> Value {
    if standard == fifo {
        return standard.clone();
    }
    let intrinsic = |m: &Map<String, Value>| m.keys().any(|k| k == "Ref" || k.starts_with("Fn::"));
    match (standard, fifo) {
        (Value::Object(s), Value::Object(f))
            if !intrinsic(s) && !intrinsic(f) && s.keys().eq(f.keys()) =>
        {
            Value::Object(
                s.iter()
                    .map(|(k, v)| (k.clone(), per_chain(v, &f[k])))
                    .collect(),
            )
        }
        (Value::Array(s), Value::Array(f)) if s.len() == f.len() => {
            Value::Array(s.iter().zip(f).map(|(s, f)| per_chain(s, f)).collect())
        }
        _ => json!({"Fn::If": [IS_FIFO, fifo, standard]}),
    }
}

/// The ARN of a queue of the messaging stack, from its name.
fn queue_arn(name: &str) -> Value {
    json!({"Fn::Sub": format!("arn:${{AWS::Partition}}:sqs:${{AWS::Region}}:${{AWS::AccountId}}:{name}")})
}

/// The template, as JSON.
pub fn render() -> Value {
    let mut resources = Map::new();
    key::add(&mut resources);
    for service in consumers() {
        function::add(&mut resources, service);
    }
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "Message-driven order, invoice and notification services: their queue consumers as \
            AWS Lambda functions (SQS event source mappings with partial batch responses, a schedule \
            sweeping each publisher's outbox), rendered from contracts::topology by \
            `cargo run -p infra --bin ops -- cloudformation write`. Deploy the messaging and ECS \
            templates first, the ECS one with ConsumersOn=lambda. Do not edit by hand.",
        "Parameters": parameters(),
        "Conditions": {
            IS_FIFO: {"Fn::Equals": [{"Ref": "OrdersChain"}, Chain::Fifo.as_str()]},
            function::HAS_CODE_SIGNING: {"Fn::Not": [{"Fn::Equals": [{"Ref": "CodeSigningConfigArn"}, ""]}]}
        },
        "Resources": resources,
        "Outputs": outputs(),
    })
}

/// The template as committed: pretty JSON with a final newline.
pub fn render_text() -> String {
    crate::cloudformation::as_committed(&render())
}

fn parameters() -> Value {
    let max_timeout = max_timeout_secs();
    let mut parameters = json!({
        "OrdersChain": {
            "Type": "String",
            "AllowedValues": [Chain::Standard.as_str(), Chain::Fifo.as_str()],
            "Default": Chain::Standard.as_str(),
            "Description": "The order chain of the messaging stack (messaging-standard.json or messaging-fifo.json)."
        },
        MESSAGING_KEY: {
            "Type": "String",
            "AllowedPattern": "^arn:aws[a-z-]*:kms:[a-z0-9-]+:\\d{12}:key/.+$",
            "Description": "The key of the queues: the messaging stack's output MessagingKeyArn."
        },
        "PrivateSubnetIds": {
            "Type": "List<AWS::EC2::Subnet::Id>",
            "Description": "The ECS stack's private subnets (or others its databases are reachable from), with a route to SQS, SNS, EventBridge and CloudWatch Logs (NAT or VPC endpoints)."
        },
        "CodeBucket": {
            "Type": "String",
            "Description": "The S3 bucket holding the functions' bootstrap.zip files (cargo lambda build --output-format zip)."
        },
        "Architecture": {
            "Type": "String",
            "Default": "arm64",
            "AllowedValues": ["arm64", "x86_64"],
            "Description": "The architecture the functions were built for (cargo lambda build --arm64, or --x86-64)."
        },
        "FunctionTimeoutSeconds": {
            "Type": "Number",
            "Default": max_timeout,
            "MinValue": 1,
            "MaxValue": max_timeout,
            "Description": format!(
                "How long one invocation may run: at most a sixth of the queues' visibility timeout ({} s), as AWS advises for SQS event sources.",
                max_timeout * VISIBILITY_TIMEOUTS_PER_FUNCTION_TIMEOUT
            )
        },
        "FunctionMemoryMiB": {
            "Type": "Number", "Default": 256, "MinValue": 128, "MaxValue": 10240,
            "Description": "Memory of each function in MiB (CPU grows with it)."
        },
        "MaximumBatchingWindowInSeconds": {
            "Type": "Number", "Default": 0, "MinValue": 0, "MaxValue": 300,
            "Description": "How long an event source mapping gathers messages before it invokes with fewer than 10 (standard queues only: SQS FIFO mappings do not take it)."
        },
        "MaximumConcurrency": {
            "Type": "Number", "Default": 2, "MinValue": 2, "MaxValue": 1000,
            "Description": "The most concurrent invocations of each event source mapping. Each holds up to DATABASE_MAX_CONNECTIONS (8) connections: keep the sum over a database's mappings, plus its ECS tasks', below its max_connections."
        },
        "OutboxSweepSchedule": {
            "Type": "String",
            "Default": "rate(1 minute)",
            "Description": "How often a publishing service's function sweeps its outbox (an EventBridge schedule expression): the longest an event waits when the invocation that committed it died before relaying it."
        },
        "CodeSigningConfigArn": {
            "Type": "String",
            "Default": "",
            "Description": "Optional: a Lambda code signing configuration the functions' code must satisfy (AWS Signer). Empty: the code is not checked."
        },
        "LogRetentionDays": {
            "Type": "Number",
            "Default": 30,
            "AllowedValues": [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653],
            "Description": "How long the functions' logs are kept."
        }
    });
    for service in consumers() {
        let name = service.source();
        let sp = service_prefix(service);
        parameters[format!("{}CodeKey", prefix(service))] = json!({
            "Type": "String",
            "Default": format!("{}/bootstrap.zip", function_name(service)),
            "Description": format!("The key in CodeBucket of {}'s bootstrap.zip.", function_name(service))
        });
        parameters[format!("{sp}DatabaseUrlSecretArn")] = json!({
            "Type": "String",
            "AllowedPattern": "^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\\d{12}:secret:.+$",
            "Description": format!("The secret holding the {name}'s DATABASE_URL: the ECS stack's output {sp}DatabaseUrlSecretArn.")
        });
        parameters[format!("{sp}TaskSecurityGroupId")] = json!({
            "Type": "AWS::EC2::SecurityGroup::Id",
            "Description": format!("The security group the {name}'s database admits: the ECS stack's output {sp}TaskSecurityGroupId.")
        });
    }
    parameters
}

fn outputs() -> Value {
    let mut outputs = Map::new();
    for service in consumers() {
        let p = prefix(service);
        outputs.insert(
            format!("{p}Name"),
            json!({"Description": format!("the function consuming the {}'s queues", service.source()), "Value": {"Ref": p}}),
        );
    }
    Value::Object(outputs)
}

#[cfg(test)]
mod tests;
