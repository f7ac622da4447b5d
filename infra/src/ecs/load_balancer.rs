//! The order API behind an Application Load Balancer: HTTPS only, TLS 1.2
//! or later, forwarded to the tasks' API port; a task receives requests
//! only while the admin port says it is ready. Its access logs go to a bucket
//! the operator names: a bucket made here would need the policy of each
//! region's load balancing account, which differs by region.
//!
//! Only the order service is exposed: the invoice and notification APIs are
//! not reachable from outside the VPC, as in the compose stack's intent
//! (the order API is the product's front door).

use contracts::topology::Service;
use serde_json::{Map, Value, json};

use super::{ports, task};

pub(super) const ALB: &str = "OrderApiLoadBalancer";
pub(super) const LISTENER: &str = "OrderApiHttpsListener";
pub(super) const TARGET_GROUP: &str = "OrderApiTargetGroup";
const SECURITY_GROUP: &str = "OrderApiLoadBalancerSecurityGroup";

/// `platform::health::READY_PATH`: 200 only while the service's database
/// and broker answer.
const READY_PATH: &str = "/health/ready";
/// Below the tasks' stop timeout, so a stopping task is out of the target
/// group before it stops serving.
const DEREGISTRATION_DELAY_SECS: u32 = 25;

pub(super) fn add(resources: &mut Map<String, Value>) {
    let service = Service::Order;
    let (port, admin_port) = ports(service);
    let tasks = task::security_group_id(service);
    resources.insert(
        SECURITY_GROUP.into(),
        json!({
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {
                "GroupDescription": "The load balancer of the order API: HTTPS in, the API and admin ports of the order tasks out",
                "VpcId": {"Ref": "VpcId"},
                "SecurityGroupIngress": [{
                    "Description": "HTTPS from the allowed clients",
                    "IpProtocol": "tcp",
                    "FromPort": 443,
                    "ToPort": 443,
                    "CidrIp": {"Ref": "AllowedIngressCidr"}
                }],
                "SecurityGroupEgress": [
                    {
                        "Description": "requests to the order tasks",
                        "IpProtocol": "tcp",
                        "FromPort": port,
                        "ToPort": port,
                        "DestinationSecurityGroupId": {"Ref": tasks}
                    },
                    {
                        "Description": "health checks to the order tasks",
                        "IpProtocol": "tcp",
                        "FromPort": admin_port,
                        "ToPort": admin_port,
                        "DestinationSecurityGroupId": {"Ref": tasks}
                    }
                ]
            }
        }),
    );
    for (suffix, what, to) in [
        ("Api", "requests", port),
        ("Admin", "health checks", admin_port),
    ] {
        resources.insert(
            format!("OrderServiceFromLoadBalancer{suffix}Ingress"),
            json!({
                "Type": "AWS::EC2::SecurityGroupIngress",
                "Properties": {
                    "Description": format!("{what} from the load balancer of the order API"),
                    "GroupId": {"Ref": tasks},
                    "IpProtocol": "tcp",
                    "FromPort": to,
                    "ToPort": to,
                    "SourceSecurityGroupId": {"Ref": SECURITY_GROUP}
                }
            }),
        );
    }
    resources.insert(
        ALB.into(),
        json!({
            "Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
            "Properties": {
                "Type": "application",
                "Scheme": "internet-facing",
                "Subnets": {"Ref": "PublicSubnetIds"},
                "SecurityGroups": [{"Ref": SECURITY_GROUP}],
                "LoadBalancerAttributes": [
                    {"Key": "routing.http.drop_invalid_header_fields.enabled", "Value": "true"},
                    {"Key": "deletion_protection.enabled", "Value": "true"},
                    {"Key": "access_logs.s3.enabled", "Value": "true"},
                    {"Key": "access_logs.s3.bucket", "Value": {"Ref": "AccessLogBucket"}},
                    {"Key": "access_logs.s3.prefix", "Value": {"Fn::Sub": "${AWS::StackName}/order-api"}}
                ]
            }
        }),
    );
    resources.insert(
        TARGET_GROUP.into(),
        json!({
            "Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
            "Properties": {
                "TargetType": "ip",
                "VpcId": {"Ref": "VpcId"},
                "Protocol": "HTTP",
                "Port": port,
                "HealthCheckProtocol": "HTTP",
                "HealthCheckPort": admin_port.to_string(),
                "HealthCheckPath": READY_PATH,
                "Matcher": {"HttpCode": "200"},
                "HealthCheckIntervalSeconds": 10,
                "HealthyThresholdCount": 2,
                "UnhealthyThresholdCount": 3,
                "TargetGroupAttributes": [
                    {"Key": "deregistration_delay.timeout_seconds", "Value": DEREGISTRATION_DELAY_SECS.to_string()}
                ]
            }
        }),
    );
    resources.insert(
        LISTENER.into(),
        json!({
            "Type": "AWS::ElasticLoadBalancingV2::Listener",
            "Properties": {
                "LoadBalancerArn": {"Ref": ALB},
                "Protocol": "HTTPS",
                "Port": 443,
                "Certificates": [{"CertificateArn": {"Ref": "CertificateArn"}}],
                "SslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
                "DefaultActions": [{"Type": "forward", "TargetGroupArn": {"Ref": TARGET_GROUP}}]
            }
        }),
    );
}
