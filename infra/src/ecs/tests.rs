use std::collections::BTreeSet;

use contracts::topology::{Chain, Service, Topology};
use serde_json::{Value, json};

use super::*;
use crate::cloudformation;

fn resource<'a>(template: &'a Value, id: &str) -> &'a Value {
    let found = &template["Resources"][id];
    assert!(found.is_object(), "{id} is declared");
    found
}

/// A value as it is with `OrdersChain` set to `chain`.
fn with_chain(value: &Value, chain: Chain) -> Value {
    match value.get("Fn::If").and_then(Value::as_array) {
        Some(branches) if branches[0] == IS_FIFO => {
            let branch = if chain == Chain::Fifo { 1 } else { 2 };
            with_chain(&branches[branch], chain)
        }
        _ => value.clone(),
    }
}

#[test]
fn the_scaling_metrics_watch_the_queues_the_topology_gives_each_service_on_either_chain() {
    let template = render();
    for chain in [Chain::Standard, Chain::Fifo] {
        let topology = Topology::declare(chain);
        for service in Service::ALL {
            let policy = resource(
                &template,
                &format!("{}BacklogPerTaskScaling", prefix(service)),
            );
            let metrics = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
                ["CustomizedMetricSpecification"]["Metrics"]
                .as_array()
                .expect("metrics");
            let watched: Vec<Value> = metrics
                .iter()
                .filter(|m| m["MetricStat"]["Metric"]["Namespace"] == "AWS/SQS")
                .map(|m| with_chain(&m["MetricStat"]["Metric"]["Dimensions"][0]["Value"], chain))
                .collect();
            let consumed: Vec<Value> = topology
                .queues_of(service)
                .iter()
                .map(|q| json!(q.name))
                .collect();
            assert_eq!(watched, consumed, "{} on {chain}", service.source());
        }
    }
}

#[test]
fn the_backlog_is_divided_by_the_running_tasks_and_two_queues_are_summed() {
    let expression = |service| {
        let metrics = autoscaling::backlog_per_task(service);
        let returned: Vec<&Value> = metrics.iter().filter(|m| m["ReturnData"] == true).collect();
        assert_eq!(returned.len(), 1);
        returned[0]["Expression"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(expression(Service::Order), "m1 / m2");
    assert_eq!(expression(Service::Invoice), "m1 / m2");
    assert_eq!(expression(Service::Notification), "(m1 + m2) / m3");
    let tasks = &autoscaling::backlog_per_task(Service::Notification)[2]["MetricStat"];
    assert_eq!(tasks["Metric"]["Namespace"], "ECS/ContainerInsights");
    assert_eq!(tasks["Metric"]["MetricName"], "RunningTaskCount");
}

#[test]
fn the_target_defaults_to_what_the_scaling_arithmetic_gives_and_the_bounds_are_parameters() {
    let template = render();
    for service in Service::ALL {
        let p = prefix(service);
        assert_eq!(
            template["Parameters"][format!("{p}BacklogPerTaskTarget")]["Default"],
            json!(200)
        );
        let target = &resource(&template, &format!("{p}ScalableTarget"))["Properties"];
        assert_eq!(
            target["MinCapacity"],
            json!({"Ref": format!("{p}MinTasks")})
        );
        assert_eq!(
            target["MaxCapacity"],
            json!({"Ref": format!("{p}MaxTasks")})
        );
        assert_eq!(
            template["Parameters"][format!("{p}MinTasks")]["MinValue"],
            json!(1)
        );
    }
}

#[test]
fn each_task_role_is_the_messaging_stacks_role_of_the_service() {
    let template = render();
    let messaging = cloudformation::render(&Topology::declare(Chain::Standard));
    for service in Service::ALL {
        let parameter = role_parameter(service);
        assert!(
            messaging["Outputs"][&parameter].is_object(),
            "the messaging stack outputs {parameter}"
        );
        let definition = resource(&template, &format!("{}TaskDefinition", prefix(service)));
        assert_eq!(
            definition["Properties"]["TaskRoleArn"],
            json!({"Ref": parameter})
        );
        assert!(template["Parameters"][&parameter].is_object());
    }
}

#[test]
fn each_execution_role_reaches_only_its_own_service_s_secret_and_log_group() {
    let template = render();
    for service in Service::ALL {
        let p = prefix(service);
        let role = resource(&template, &format!("{p}ExecutionRole"));
        let policies = role["Properties"]["Policies"].as_array().expect("policies");
        let statements: Vec<&Value> = policies
            .iter()
            .flat_map(|policy| policy["PolicyDocument"]["Statement"].as_array())
            .flatten()
            .collect();
        let resources: BTreeSet<String> = statements
            .iter()
            .map(|s| s["Resource"].to_string())
            .collect();
        let expected: BTreeSet<String> = [
            json!("*"),
            json!({"Fn::Sub": "arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/${ImageRepositoryName}"}),
            json!({"Fn::GetAtt": [format!("{p}LogGroup"), "Arn"]}),
            json!({"Ref": format!("{p}DatabaseUrl")}),
            json!({"Fn::GetAtt": [key::KEY, "Arn"]}),
        ]
        .iter()
        .map(Value::to_string)
        .collect();
        assert_eq!(resources, expected, "{}", service.source());
        let star: Vec<&&Value> = statements.iter().filter(|s| s["Resource"] == "*").collect();
        assert_eq!(star.len(), 1);
        assert_eq!(star[0]["Action"], "ecr:GetAuthorizationToken");
        // parliament's credentials-exposure finding is muted on this policy
        // alone (scripts/hygiene.sh): it must hold nothing else.
        let token = policies
            .iter()
            .find(|policy| policy["PolicyName"] == task::REGISTRY_TOKEN_POLICY)
            .expect("the registry-token policy");
        assert_eq!(token["PolicyDocument"]["Statement"], json!([star[0]]));
    }
}

#[test]
fn database_url_comes_from_the_service_s_secret_and_never_from_the_plain_environment() {
    let template = render();
    for service in Service::ALL {
        let p = prefix(service);
        let container = &resource(&template, &format!("{p}TaskDefinition"))["Properties"]["ContainerDefinitions"]
            [0];
        assert_eq!(
            container["Secrets"],
            json!([{"Name": "DATABASE_URL", "ValueFrom": {"Ref": format!("{p}DatabaseUrl")}}])
        );
        assert!(
            !container["Environment"]
                .to_string()
                .contains("DATABASE_URL")
        );
        let url = resource(&template, &format!("{p}DatabaseUrl"))["Properties"]["SecretString"]
            ["Fn::Sub"][0]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(url.starts_with("postgres://"), "{url}");
        assert!(url.contains("{{resolve:secretsmanager:${Credentials}:SecretString:password}}"));
    }
}

#[test]
fn each_database_is_private_encrypted_and_admits_only_its_service_s_tasks() {
    let template = render();
    for service in Service::ALL {
        let p = prefix(service);
        let db = &resource(&template, &format!("{p}Database"))["Properties"];
        assert_eq!(db["PubliclyAccessible"], false);
        assert_eq!(db["StorageEncrypted"], true);
        let group = &resource(&template, &format!("{p}DatabaseSecurityGroup"))["Properties"];
        assert_eq!(
            group["SecurityGroupIngress"],
            json!([{
                "Description": format!("Postgres from the tasks of the {}", service.source()),
                "IpProtocol": "tcp",
                "FromPort": 5432,
                "ToPort": 5432,
                "SourceSecurityGroupId": {"Ref": format!("{p}TaskSecurityGroup")}
            }])
        );
    }
}

#[test]
fn the_ports_the_services_are_told_are_the_ports_mapped_checked_and_balanced() {
    let template = render();
    for service in Service::ALL {
        let (port, admin_port) = ports(service);
        let container = &resource(&template, &format!("{}TaskDefinition", prefix(service)))["Properties"]
            ["ContainerDefinitions"][0];
        let env = container["Environment"].to_string();
        assert!(env.contains(&json!({"Name": "PORT", "Value": port.to_string()}).to_string()));
        assert!(
            env.contains(
                &json!({"Name": "ADMIN_PORT", "Value": admin_port.to_string()}).to_string()
            )
        );
        let mapped: Vec<&Value> = container["PortMappings"]
            .as_array()
            .expect("mappings")
            .iter()
            .map(|m| &m["ContainerPort"])
            .collect();
        assert_eq!(mapped, [&json!(port), &json!(admin_port)]);
        assert_eq!(
            container["HealthCheck"]["Command"][2],
            format!("http://127.0.0.1:{admin_port}/health/live")
        );
    }
    let (port, admin_port) = ports(Service::Order);
    let group = &resource(&template, load_balancer::TARGET_GROUP)["Properties"];
    assert_eq!(group["Port"], json!(port));
    assert_eq!(group["HealthCheckPort"], json!(admin_port.to_string()));
    assert_eq!(group["HealthCheckPath"], "/health/ready");
    let listener = &resource(&template, load_balancer::LISTENER)["Properties"];
    assert_eq!(listener["Protocol"], "HTTPS");
}

/// Every `Ref`, `Fn::GetAtt`, `${…}` of `Fn::Sub`, `DependsOn` and
/// `Fn::If` condition names something the template declares.
#[test]
fn every_reference_resolves() {
    fn walk(v: &Value, names: &mut Vec<String>, conditions: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("Ref") {
                    names.push(r.clone());
                }
                if let Some(Value::Array(att)) = map.get("Fn::GetAtt") {
                    names.push(att[0].as_str().unwrap_or_default().to_string());
                }
                if let Some(Value::Array(branches)) = map.get("Fn::If") {
                    conditions.push(branches[0].as_str().unwrap_or_default().to_string());
                }
                let sub = match map.get("Fn::Sub") {
                    Some(Value::String(s)) => Some((s.clone(), Value::Null)),
                    Some(Value::Array(parts)) => {
                        parts[0].as_str().map(|s| (s.to_string(), parts[1].clone()))
                    }
                    _ => None,
                };
                if let Some((text, vars)) = sub {
                    for var in text.split("${").skip(1).filter_map(|s| s.split('}').next()) {
                        if vars.get(var).is_none() {
                            names.push(var.split('.').next().unwrap_or_default().to_string());
                        }
                    }
                }
                map.values().for_each(|v| walk(v, names, conditions));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, names, conditions)),
            _ => {}
        }
    }
    let template = render();
    let resources = template["Resources"].as_object().expect("resources");
    let params = template["Parameters"].as_object().expect("parameters");
    let (mut names, mut conditions) = (Vec::new(), Vec::new());
    walk(&template, &mut names, &mut conditions);
    for (_, r) in resources {
        if let Some(Value::Array(deps)) = r.get("DependsOn") {
            names.extend(deps.iter().filter_map(|d| d.as_str().map(String::from)));
        }
    }
    for name in names {
        assert!(
            resources.contains_key(&name)
                || params.contains_key(&name)
                || name.starts_with("AWS::"),
            "{name} is not declared"
        );
    }
    for condition in conditions {
        assert!(
            template["Conditions"][&condition].is_object(),
            "{condition}"
        );
    }
}

#[test]
fn consumers_on_lambda_turns_the_tasks_consumers_off_and_drops_the_backlog_scaling() {
    let template = render();
    assert_eq!(template["Parameters"]["ConsumersOn"]["Default"], "ecs");
    assert_eq!(
        template["Conditions"][CONSUMERS_ON_LAMBDA],
        json!({"Fn::Equals": [{"Ref": "ConsumersOn"}, "lambda"]})
    );
    for service in Service::ALL {
        let p = prefix(service);
        let container = &resource(&template, &format!("{p}TaskDefinition"))["Properties"]["ContainerDefinitions"]
            [0];
        let env = container["Environment"].as_array().expect("environment");
        let enabled: Vec<&Value> = env
            .iter()
            .filter(|v| v["Name"] == "CONSUMERS_ENABLED")
            .collect();
        assert_eq!(
            enabled,
            [
                &json!({"Name": "CONSUMERS_ENABLED", "Value": {"Fn::If": [CONSUMERS_ON_LAMBDA, "false", "true"]}})
            ]
        );
        let policy = resource(&template, &format!("{p}BacklogPerTaskScaling"));
        let condition = policy["Condition"].as_str().expect("a condition");
        assert_eq!(
            template["Conditions"][condition],
            json!({"Fn::Not": [{"Condition": CONSUMERS_ON_LAMBDA}]})
        );
        // The bounds stay: the task count is held between them.
        assert!(
            resource(&template, &format!("{p}ScalableTarget"))
                .get("Condition")
                .is_none()
        );
        assert_eq!(
            template["Outputs"][format!("{p}TaskSecurityGroupId")]["Value"],
            json!({"Ref": format!("{p}TaskSecurityGroup")})
        );
    }
}
