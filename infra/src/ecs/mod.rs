//! The compute side as a CloudFormation template: the three services on ECS
//! Fargate, each with its own Postgres on RDS, the order API behind a load
//! balancer, and the consumers scaled on their queues' backlog per task.
//!
//! The messaging template (`crate::cloudformation`) stays the base: it owns
//! the topics, queues, bus, key and the services' roles. This template takes
//! from it only the three role ARNs, as parameters named like the messaging
//! stack's outputs (`OrderServiceRoleArn`, …), and uses each as its service's
//! task role, so the least-privilege policies of [`service_policy`] are the
//! tasks' permissions with no second copy. Parameters rather than
//! `Fn::ImportValue`: the messaging template exports nothing, and an export
//! in use can be neither changed nor deleted, which would pin the messaging
//! stack to this one; parameters also let the roles come from elsewhere.
//! Queue names need no parameter: the services find their queues by the
//! topology's names, and so do the scaling metrics here.
//!
//! `ConsumersOn` (`ecs` by default) says who consumes the queues: the tasks,
//! or the functions of the Lambda template (`crate::functions`); with
//! `lambda`, the tasks get `CONSUMERS_ENABLED=false` (they serve the API and
//! relay their outbox) and the backlog scaling policies are left out, the
//! task count then staying between its bounds.
//!
//! One template for both order chains: `OrdersChain` picks the chain the
//! messaging stack was deployed with, which names the order queues the
//! metrics watch and is passed to the services as `ORDERS_CHAIN`.
//!
//! Layout: [`key`] (the key of the logs, secrets and databases), [`database`]
//! (RDS and its secrets), [`task`] (task definitions, services, logs, execution
//! roles), [`load_balancer`] (the order API's ALB) and [`autoscaling`].
//! Written by `cargo run -p infra --bin ops -- cloudformation write` to
//! `infra/cloudformation/compute-ecs.json`; a test fails when the committed
//! file differs.
//!
//! [`service_policy`]: crate::cloudformation::service_policy

mod autoscaling;
mod database;
mod key;
mod load_balancer;
mod task;

use contracts::topology::{Chain, QueueSpec, Service, Topology};
use serde_json::{Map, Value, json};

use crate::cloudformation::{id, role_id};
use crate::scaling;

/// The committed file, relative to `infra/cloudformation/`.
pub const FILE_NAME: &str = "compute-ecs.json";

/// The condition that holds when `OrdersChain` is `fifo`.
pub(crate) const IS_FIFO: &str = "IsFifoChain";

/// The condition that holds when `ConsumersOn` is `lambda`: the queues are
/// consumed by the functions of the Lambda template (`crate::functions`), so
/// the tasks run with `CONSUMERS_ENABLED=false` (the API and the relay only)
/// and are not scaled on the backlog.
pub(crate) const CONSUMERS_ON_LAMBDA: &str = "ConsumersOnLambda";
/// Its negation: the tasks consume, and the backlog scaling policies exist.
const CONSUMERS_ON_ECS: &str = "ConsumersOnEcs";

/// The template, as JSON.
pub fn render() -> Value {
    let mut resources = Map::new();
    key::add(&mut resources);
    task::add_cluster(&mut resources);
    load_balancer::add(&mut resources);
    database::add_monitoring_role(&mut resources);
    for service in Service::ALL {
        database::add(&mut resources, service);
        task::add(&mut resources, service);
        autoscaling::add(&mut resources, service);
    }
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "Message-driven order, invoice and notification services on ECS Fargate: \
            tasks, databases, the order API's load balancer and scaling on queue backlog, rendered \
            from contracts::topology by `cargo run -p infra --bin ops -- cloudformation write`. \
            Deploy the messaging template first. Do not edit by hand.",
        "Parameters": parameters(),
        "Conditions": {
            IS_FIFO: {"Fn::Equals": [{"Ref": "OrdersChain"}, Chain::Fifo.as_str()]},
            "HasJwksUrl": {"Fn::Not": [{"Fn::Equals": [{"Ref": "JwksUrl"}, ""]}]},
            CONSUMERS_ON_LAMBDA: {"Fn::Equals": [{"Ref": "ConsumersOn"}, "lambda"]},
            CONSUMERS_ON_ECS: {"Fn::Not": [{"Condition": CONSUMERS_ON_LAMBDA}]}
        },
        "Resources": resources,
        "Outputs": outputs(),
    })
}

/// The template as committed: pretty JSON with a final newline.
pub fn render_text() -> String {
    crate::cloudformation::as_committed(&render())
}

/// `OrderService`, `InvoiceService`, …: the prefix of a service's logical ids.
fn prefix(service: Service) -> String {
    id(service.source(), "")
}

/// The parameter a service's task role comes from: the messaging stack's
/// output of the same name.
fn role_parameter(service: Service) -> String {
    format!("{}Arn", role_id(service))
}

/// The API port and the admin port (health, metrics): the services' own
/// defaults (`DEFAULT_PORT` and `DEFAULT_ADMIN_PORT` in each
/// `services/*/src/startup.rs`), passed explicitly as `PORT` and
/// `ADMIN_PORT` so that the template does not depend on them.
fn ports(service: Service) -> (u16, u16) {
    match service {
        Service::Order => (8081, 9081),
        Service::Invoice => (8082, 9082),
        Service::Notification => (8083, 9083),
    }
}

/// Each queue `service` consumes, as the two chains declare it (same order):
/// the ECS and the Lambda templates both choose between them by `OrdersChain`.
pub(crate) fn queue_pairs(service: Service) -> Vec<(QueueSpec, QueueSpec)> {
    let standard = Topology::declare(Chain::Standard).queues_of(service);
    let fifo = Topology::declare(Chain::Fifo).queues_of(service);
    assert_eq!(
        standard.len(),
        fifo.len(),
        "both chains give {} the same queues",
        service.source()
    );
    standard.into_iter().zip(fifo).collect()
}

/// The names of the queues `service` consumes, whichever the chain: a name
/// that differs between the chains is chosen by `OrdersChain`.
pub(crate) fn queue_names(service: Service) -> Vec<Value> {
    queue_pairs(service)
        .into_iter()
        .map(|(s, f)| {
            if s.name == f.name {
                json!(s.name)
            } else {
                json!({"Fn::If": [IS_FIFO, f.name, s.name]})
            }
        })
        .collect()
}

fn parameters() -> Value {
    let target = scaling::backlog_per_task_target(scaling::DEFAULTS)
        .unwrap_or_else(|| unreachable!("the defaults have a time per message"));
    let mut parameters = json!({
        "OrdersChain": {
            "Type": "String",
            "AllowedValues": [Chain::Standard.as_str(), Chain::Fifo.as_str()],
            "Default": Chain::Standard.as_str(),
            "Description": "The order chain of the messaging stack (messaging-standard.json or messaging-fifo.json)."
        },
        "ConsumersOn": {
            "Type": "String",
            "AllowedValues": ["ecs", "lambda"],
            "Default": "ecs",
            "Description": "Who consumes the queues: the tasks (ecs), or the functions of compute-lambda.json (lambda), in which case the tasks serve the API and relay their outbox only (CONSUMERS_ENABLED=false) and are not scaled on the backlog."
        },
        "ImageUri": {
            "Type": "String",
            "Description": "The image built from the repository's Dockerfile, with the three services in /usr/local/bin, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/message-driven:1.0.0"
        },
        "ImageRepositoryName": {
            "Type": "String",
            "Default": "message-driven",
            "Description": "The ECR repository of ImageUri in this account and region: the only one the tasks may pull from."
        },
        "VpcId": {"Type": "AWS::EC2::VPC::Id", "Description": "The VPC of the tasks, the databases and the load balancer."},
        "PrivateSubnetIds": {
            "Type": "List<AWS::EC2::Subnet::Id>",
            "Description": "At least two private subnets in different zones, for the tasks and the databases; they need a route to ECR, CloudWatch Logs, Secrets Manager, SQS, SNS, EventBridge and the token issuer (NAT or VPC endpoints)."
        },
        "PublicSubnetIds": {
            "Type": "List<AWS::EC2::Subnet::Id>",
            "Description": "At least two public subnets in different zones, for the load balancer."
        },
        "AccessLogBucket": {
            "Type": "String",
            "Description": "An S3 bucket (SSE-S3) whose policy lets Elastic Load Balancing deliver access logs (see the ALB user guide, 'Enable access logs'): the order API's requests are logged there under <stack name>/order-api."
        },
        "CertificateArn": {"Type": "String", "Description": "The ACM certificate of the order API's HTTPS listener."},
        "AllowedIngressCidr": {
            "Type": "String",
            "Default": "0.0.0.0/0",
            "AllowedPattern": "^\\d{1,3}(\\.\\d{1,3}){3}/\\d{1,2}$",
            "Description": "Who may reach the order API's HTTPS listener."
        },
        "OidcIssuer": {"Type": "String", "Description": "OIDC_ISSUER: the issuer of the bearer tokens every service verifies."},
        "JwtAudience": {"Type": "String", "Description": "JWT_AUDIENCE: the aud the tokens must carry."},
        "JwksUrl": {"Type": "String", "Default": "", "Description": "Optional JWKS_URL: the issuer's key set, skipping discovery."},
        "TaskCpu": {"Type": "String", "Default": "256", "AllowedValues": ["256", "512", "1024", "2048", "4096"], "Description": "CPU units of each task."},
        "TaskMemory": {"Type": "String", "Default": "512", "Description": "Memory of each task in MiB, a value Fargate allows with TaskCpu."},
        "CpuArchitecture": {"Type": "String", "Default": "X86_64", "AllowedValues": ["X86_64", "ARM64"], "Description": "The architecture ImageUri was built for."},
        "DatabaseInstanceClass": {"Type": "String", "Default": "db.t4g.micro", "Description": "The RDS instance class of each service's database."},
        "DatabaseAllocatedStorage": {"Type": "Number", "Default": 20, "MinValue": 20, "Description": "GiB of storage of each database."},
        "LogRetentionDays": {
            "Type": "Number",
            "Default": 30,
            "AllowedValues": [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653],
            "Description": "How long the services' logs are kept."
        }
    });
    for service in Service::ALL {
        let name = service.source();
        let p = prefix(service);
        let min = if service == Service::Order { 2 } else { 1 };
        parameters[role_parameter(service)] = json!({
            "Type": "String",
            "AllowedPattern": "^arn:aws[a-z-]*:iam::\\d{12}:role/.+$",
            "Description": format!("The task role of the {name}: the messaging stack's output {}.", role_parameter(service))
        });
        parameters[format!("{p}MinTasks")] = json!({
            "Type": "Number", "Default": min, "MinValue": 1,
            "Description": format!("The fewest tasks of the {name} (at least 1: the backlog per task divides by it).")
        });
        parameters[format!("{p}MaxTasks")] = json!({
            "Type": "Number", "Default": 10, "MinValue": 1,
            "Description": format!("The most tasks of the {name}: keep it times DATABASE_MAX_CONNECTIONS (8) below the database's max_connections.")
        });
        parameters[format!("{p}BacklogPerTaskTarget")] = json!({
            "Type": "Number", "Default": target, "MinValue": 1,
            "Description": format!(
                "The visible messages per running task of the {name} that target tracking aims at: acceptable latency / time per message ({} s / {} s by default).",
                scaling::DEFAULTS.acceptable_latency.as_secs_f64(),
                scaling::DEFAULTS.time_per_message.as_secs_f64()
            )
        });
    }
    parameters
}

fn outputs() -> Value {
    let mut outputs = json!({
        "ClusterName": {"Description": "the ECS cluster", "Value": {"Ref": task::CLUSTER}},
        "OrderApiUrl": {
            "Description": "the order API, over HTTPS (point a DNS name of the certificate at the load balancer)",
            "Value": {"Fn::Sub": format!("https://${{{}.DNSName}}", load_balancer::ALB)}
        }
    });
    for service in Service::ALL {
        let p = prefix(service);
        outputs[format!("{p}Name")] = json!({
            "Description": format!("the ECS service of the {}", service.source()),
            "Value": {"Fn::GetAtt": [task::service_id(service), "Name"]}
        });
        outputs[format!("{p}DatabaseUrlSecretArn")] = json!({
            "Description": format!("the secret holding the {}'s DATABASE_URL", service.source()),
            "Value": {"Ref": database::url_secret_id(service)}
        });
        // The group the service's database admits: the Lambda template puts
        // the service's function in it.
        outputs[format!("{p}TaskSecurityGroupId")] = json!({
            "Description": format!("the security group of the {}'s tasks, which its database admits", service.source()),
            "Value": {"Ref": task::security_group_id(service)}
        });
    }
    outputs
}

#[cfg(test)]
mod tests;
