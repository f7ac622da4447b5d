//! The cluster, and for each service its Fargate task definition, ECS
//! service, log group, execution role and the security group of its tasks.
//!
//! One image runs all three: it has no entry point, and the command names the
//! binary (`/usr/local/bin/order-service`, as the Dockerfile copies it). The
//! container runs as the image's non-root user, read-only, with every
//! capability dropped, as the compose stack runs it.
//!
//! Two roles per task, each as small as its job:
//! - the task role, what the service's code may do: the messaging stack's
//!   role of the service (a parameter), whose policy the topology derives;
//! - the execution role, what ECS needs to start the task: pull the image
//!   from one repository, write to the service's log group, read the
//!   service's `DATABASE_URL` secret.
//!
//! Several tasks of a service are safe: the consumers share their queues
//! (each message is handed to one receiver at a time, and the inbox skips a
//! redelivered one), and each relay claims its outbox rows with
//! `FOR UPDATE SKIP LOCKED` (`shared/platform/src/outbox/store.rs`), so two
//! relays never publish the same row.

use contracts::topology::Service;
use serde_json::{Map, Value, json};

use super::key::{KEY, LOG_GROUP_PREFIX};
use super::{CONSUMERS_ON_LAMBDA, database, load_balancer, ports, prefix, role_parameter};
use crate::cloudformation::arn_of;

/// The logical id of the cluster.
pub(super) const CLUSTER: &str = "Cluster";
/// Where the Dockerfile puts the binaries.
const BIN: &str = "/usr/local/bin";
/// How long ECS waits after SIGTERM before it kills the container: more than
/// the services' graceful stop (`SHUTDOWN_TIMEOUT_MS`, 20 s by default), as
/// the compose stack's 30 s grace period.
const STOP_TIMEOUT_SECS: u32 = 30;
/// The name of the execution roles' policy that holds only
/// `ecr:GetAuthorizationToken`.
pub(super) const REGISTRY_TOKEN_POLICY: &str = "registry-token";
/// distroless's `nonroot`, as the Dockerfile's `USER`.
const IMAGE_USER: &str = "65532:65532";

pub(super) fn service_id(service: Service) -> String {
    format!("{}Ecs", prefix(service))
}

pub(super) fn security_group_id(service: Service) -> String {
    format!("{}TaskSecurityGroup", prefix(service))
}

fn task_definition_id(service: Service) -> String {
    format!("{}TaskDefinition", prefix(service))
}

fn log_group_id(service: Service) -> String {
    format!("{}LogGroup", prefix(service))
}

fn execution_role_id(service: Service) -> String {
    format!("{}ExecutionRole", prefix(service))
}

pub(super) fn add_cluster(resources: &mut Map<String, Value>) {
    resources.insert(
        CLUSTER.into(),
        json!({
            "Type": "AWS::ECS::Cluster",
            "Properties": {
                // Container Insights publishes RunningTaskCount, which the
                // scaling policies divide the backlog by.
                "ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]
            }
        }),
    );
}

pub(super) fn add(resources: &mut Map<String, Value>, service: Service) {
    let name = service.source();
    resources.insert(
        log_group_id(service),
        crate::cloudformation::encrypted_log_group(LOG_GROUP_PREFIX, name, KEY),
    );
    resources.insert(
        security_group_id(service),
        json!({
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {
                "GroupDescription": format!("The tasks of the {name}: HTTPS out to AWS and the token issuer, Postgres to their database"),
                "VpcId": {"Ref": "VpcId"},
                "SecurityGroupEgress": [{
                    "Description": "HTTPS to the AWS APIs (ECR, logs, secrets, SQS, SNS, EventBridge) and the token issuer",
                    "IpProtocol": "tcp",
                    "FromPort": 443,
                    "ToPort": 443,
                    "CidrIp": "0.0.0.0/0"
                }]
            }
        }),
    );
    resources.insert(execution_role_id(service), execution_role(service));
    resources.insert(task_definition_id(service), task_definition(service));
    resources.insert(service_id(service), ecs_service(service));
}

fn execution_role(service: Service) -> Value {
    json!({
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": format!("ECS starting the {}'s tasks: pull the image, write the logs, read DATABASE_URL", service.source()),
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "EcsTasksOfThisAccount",
                    "Effect": "Allow",
                    "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                    "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
                }]
            },
            "Policies": [
                {
                    // A policy of its own, so that parliament's finding on it
                    // (a token is a credential: getting one is the point) is
                    // muted for this one action alone (scripts/hygiene.sh).
                    "PolicyName": REGISTRY_TOKEN_POLICY,
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [{
                            // No resource-level permission exists for it.
                            "Sid": "GetARegistryToken",
                            "Effect": "Allow",
                            "Action": "ecr:GetAuthorizationToken",
                            "Resource": "*"
                        }]
                    }
                },
                {
                    "PolicyName": "start-task",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "PullTheImage",
                                "Effect": "Allow",
                                "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                                "Resource": {"Fn::Sub": "arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/${ImageRepositoryName}"}
                            },
                            {
                                "Sid": "WriteItsLogs",
                                "Effect": "Allow",
                                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                                "Resource": arn_of(&log_group_id(service))
                            },
                            {
                                "Sid": "ReadItsDatabaseUrl",
                                "Effect": "Allow",
                                "Action": "secretsmanager:GetSecretValue",
                                "Resource": {"Ref": database::url_secret_id(service)}
                            },
                            {
                                "Sid": "DecryptItsDatabaseUrl",
                                "Effect": "Allow",
                                "Action": "kms:Decrypt",
                                "Resource": arn_of(KEY),
                                "Condition": {"StringEquals": {"kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}}}
                            }
                        ]
                    }
                }
            ]
        }
    })
}

/// The environment the service's settings read (`docs/configuration.md`);
/// everything else keeps its default.
fn environment(service: Service) -> Vec<Value> {
    let (port, admin_port) = ports(service);
    let var = |name: &str, value: Value| json!({"Name": name, "Value": value});
    vec![
        var("PORT", json!(port.to_string())),
        var("ADMIN_PORT", json!(admin_port.to_string())),
        var("AWS_REGION", json!({"Ref": "AWS::Region"})),
        var("ORDERS_CHAIN", json!({"Ref": "OrdersChain"})),
        var("OIDC_ISSUER", json!({"Ref": "OidcIssuer"})),
        var("JWT_AUDIENCE", json!({"Ref": "JwtAudience"})),
        json!({"Fn::If": ["HasJwksUrl", var("JWKS_URL", json!({"Ref": "JwksUrl"})), {"Ref": "AWS::NoValue"}]}),
        // One JSON object a line: CloudWatch Logs Insights queries its fields.
        var("LOG_FORMAT", json!("json")),
        // Off when the service's Lambda function consumes its queues.
        var(
            "CONSUMERS_ENABLED",
            json!({"Fn::If": [CONSUMERS_ON_LAMBDA, "false", "true"]}),
        ),
    ]
}

fn task_definition(service: Service) -> Value {
    let name = service.source();
    let (port, admin_port) = ports(service);
    json!({
        "Type": "AWS::ECS::TaskDefinition",
        "Properties": {
            "Family": {"Fn::Sub": format!("${{AWS::StackName}}-{name}")},
            "RequiresCompatibilities": ["FARGATE"],
            "NetworkMode": "awsvpc",
            "Cpu": {"Ref": "TaskCpu"},
            "Memory": {"Ref": "TaskMemory"},
            "RuntimePlatform": {"OperatingSystemFamily": "LINUX", "CpuArchitecture": {"Ref": "CpuArchitecture"}},
            "ExecutionRoleArn": arn_of(&execution_role_id(service)),
            "TaskRoleArn": {"Ref": role_parameter(service)},
            "ContainerDefinitions": [{
                "Name": name,
                "Image": {"Ref": "ImageUri"},
                "Essential": true,
                "Command": [format!("{BIN}/{name}")],
                "User": IMAGE_USER,
                "ReadonlyRootFilesystem": true,
                "Privileged": false,
                "LinuxParameters": {"Capabilities": {"Drop": ["ALL"]}},
                "PortMappings": [
                    {"Name": "api", "ContainerPort": port, "Protocol": "tcp"},
                    {"Name": "admin", "ContainerPort": admin_port, "Protocol": "tcp"}
                ],
                "Environment": environment(service),
                "Secrets": [{"Name": "DATABASE_URL", "ValueFrom": {"Ref": database::url_secret_id(service)}}],
                "LogConfiguration": {
                    "LogDriver": "awslogs",
                    "Options": {
                        "awslogs-group": {"Ref": log_group_id(service)},
                        "awslogs-region": {"Ref": "AWS::Region"},
                        "awslogs-stream-prefix": name
                    }
                },
                // Liveness, not readiness: a database or broker outage makes
                // the service unready, and replacing its tasks would not help.
                "HealthCheck": {
                    "Command": ["CMD", format!("{BIN}/healthcheck"), format!("http://127.0.0.1:{admin_port}/health/live")],
                    "Interval": 10,
                    "Timeout": 5,
                    "Retries": 3,
                    "StartPeriod": 30
                },
                "StopTimeout": STOP_TIMEOUT_SECS
            }]
        }
    })
}

fn ecs_service(service: Service) -> Value {
    let (port, _) = ports(service);
    // No DesiredCount: the scalable target owns it, and a count in the
    // template would reset it on every stack update.
    let mut properties = json!({
        "Cluster": {"Ref": CLUSTER},
        "TaskDefinition": {"Ref": task_definition_id(service)},
        "LaunchType": "FARGATE",
        "PlatformVersion": "LATEST",
        "NetworkConfiguration": {"AwsvpcConfiguration": {
            "AssignPublicIp": "DISABLED",
            "Subnets": {"Ref": "PrivateSubnetIds"},
            "SecurityGroups": [{"Ref": security_group_id(service)}]
        }},
        "DeploymentConfiguration": {
            "MinimumHealthyPercent": 100,
            "MaximumPercent": 200,
            "DeploymentCircuitBreaker": {"Enable": true, "Rollback": true}
        },
        "EnableExecuteCommand": false,
        "PropagateTags": "SERVICE"
    });
    let mut resource = json!({"Type": "AWS::ECS::Service"});
    if service == Service::Order {
        properties["LoadBalancers"] = json!([{
            "ContainerName": service.source(),
            "ContainerPort": port,
            "TargetGroupArn": {"Ref": load_balancer::TARGET_GROUP}
        }]);
        properties["HealthCheckGracePeriodSeconds"] = json!(60);
        // The target group must belong to a load balancer, through its
        // listener, before a service can register in it.
        resource["DependsOn"] = json!([load_balancer::LISTENER]);
    }
    resource["Properties"] = properties;
    resource
}
