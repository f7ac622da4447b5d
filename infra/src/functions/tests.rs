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

/// A value as it is with `OrdersChain` set to `chain`, at every depth.
fn with_chain(value: &Value, chain: Chain) -> Value {
    match value {
        Value::Object(map) => match map.get("Fn::If").and_then(Value::as_array) {
            Some(branches) if branches[0] == IS_FIFO => {
                let branch = if chain == Chain::Fifo { 1 } else { 2 };
                with_chain(&branches[branch], chain)
            }
            _ => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), with_chain(v, chain)))
                    .collect(),
            ),
        },
        Value::Array(items) => Value::Array(items.iter().map(|v| with_chain(v, chain)).collect()),
        other => other.clone(),
    }
}

fn of_type<'a>(template: &'a Value, kind: &str) -> Vec<(&'a String, &'a Value)> {
    template["Resources"]
        .as_object()
        .expect("resources")
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .collect()
}

#[test]
fn every_consumed_queue_has_exactly_one_mapping_with_partial_batch_responses_on_either_chain() {
    let template = render();
    let mappings = of_type(&template, "AWS::Lambda::EventSourceMapping");
    for chain in [Chain::Standard, Chain::Fifo] {
        let topology = Topology::declare(chain);
        assert_eq!(mappings.len(), topology.queues.len(), "{chain}");
        for queue in &topology.queues {
            let arn = json!({"Fn::Sub": format!("arn:${{AWS::Partition}}:sqs:${{AWS::Region}}:${{AWS::AccountId}}:{}", queue.name)});
            let of_queue: Vec<Value> = mappings
                .iter()
                .map(|(_, m)| with_chain(&m["Properties"], chain))
                .filter(|m| m["EventSourceArn"] == arn)
                .collect();
            assert_eq!(of_queue.len(), 1, "{} on {chain}", queue.name);
            let m = &of_queue[0];
            assert_eq!(m["FunctionName"], json!({"Ref": prefix(queue.consumer)}));
            assert_eq!(
                m["FunctionResponseTypes"],
                json!(["ReportBatchItemFailures"])
            );
            assert_eq!(m["BatchSize"], json!(10));
            assert_eq!(
                m["ScalingConfig"]["MaximumConcurrency"],
                json!({"Ref": "MaximumConcurrency"})
            );
            // A FIFO queue's mapping takes no batching window.
            let window = if queue.fifo {
                json!({"Ref": "AWS::NoValue"})
            } else {
                json!({"Ref": "MaximumBatchingWindowInSeconds"})
            };
            assert_eq!(
                m["MaximumBatchingWindowInSeconds"], window,
                "{}",
                queue.name
            );
        }
    }
    assert_eq!(
        template["Parameters"]["MaximumConcurrency"]["MinValue"],
        json!(2)
    );
}

#[test]
fn a_schedule_sweeps_the_outbox_exactly_of_the_services_that_publish() {
    let template = render();
    let topology = Topology::declare(Chain::Standard);
    let rules = of_type(&template, "AWS::Events::Rule");
    let scheduled: BTreeSet<String> = rules
        .iter()
        .map(|(_, r)| r["Properties"]["Targets"][0]["Arn"].to_string())
        .collect();
    let publishers: BTreeSet<String> = Service::ALL
        .into_iter()
        .filter(|s| topology.channel_of(*s).is_some())
        .map(|s| json!({"Fn::GetAtt": [prefix(s), "Arn"]}).to_string())
        .collect();
    assert_eq!(scheduled, publishers);
    assert_eq!(publishers.len(), 2, "order (topic) and invoice (bus)");
    for (id, rule) in rules {
        assert_eq!(
            rule["Properties"]["ScheduleExpression"],
            json!({"Ref": "OutboxSweepSchedule"})
        );
        let permission = &resource(&template, &format!("{id}Permission"))["Properties"];
        assert_eq!(permission["Principal"], "events.amazonaws.com");
        assert_eq!(permission["Action"], "lambda:InvokeFunction");
        assert_eq!(permission["SourceArn"], json!({"Fn::GetAtt": [id, "Arn"]}));
        assert_eq!(
            permission["FunctionName"],
            json!({"Ref": rule["Properties"]["Targets"][0]["Arn"]["Fn::GetAtt"][0]})
        );
    }
    assert_eq!(
        template["Parameters"]["OutboxSweepSchedule"]["Default"],
        "rate(1 minute)"
    );
    assert_eq!(of_type(&template, "AWS::Lambda::Permission").len(), 2);
}

#[test]
fn each_role_holds_its_service_s_messaging_policy_naming_the_same_resources_by_arn() {
    let template = render();
    for chain in [Chain::Standard, Chain::Fifo] {
        let topology = Topology::declare(chain);
        let messaging = cloudformation::render(&topology);
        for service in consumers() {
            let role = resource(&template, &function::role_id(service));
            let policies = role["Properties"]["Policies"].as_array().expect("policies");
            let held = policies
                .iter()
                .find(|p| p["PolicyName"] == "messaging")
                .expect("messaging");
            let expected = policy::rewritten(
                &cloudformation::service_policy(&topology, service),
                &policy::by_name(&topology),
            );
            assert_eq!(
                with_chain(&held["PolicyDocument"], chain),
                expected,
                "{} on {chain}",
                service.source()
            );
            // Same statements, actions and conditions as the service policy:
            // only the resources are spelled otherwise.
            let original = cloudformation::service_policy(&topology, service);
            let strip = |p: &Value| -> Vec<Value> {
                p["Statement"]
                    .as_array()
                    .expect("statements")
                    .iter()
                    .map(|s| {
                        let mut s = s.clone();
                        s.as_object_mut().expect("statement").remove("Resource");
                        s
                    })
                    .collect()
            };
            assert_eq!(strip(&expected), strip(&original));
        }
        // Every ARN built from a name names what the messaging template declares.
        for (reference, arn) in policy::by_name(&topology) {
            let Some(target) =
                reference
                    .get("Fn::GetAtt")
                    .or(reference.get("Ref"))
                    .map(|r| match r {
                        Value::Array(a) => a[0].as_str().unwrap_or_default().to_string(),
                        other => other.as_str().unwrap_or_default().to_string(),
                    })
            else {
                unreachable!()
            };
            let declared = &messaging["Resources"][&target];
            assert!(declared.is_object(), "{target}");
            if target == cloudformation::KEY {
                assert_eq!(arn, json!({"Ref": MESSAGING_KEY}));
                assert!(messaging["Outputs"][MESSAGING_KEY].is_object());
                continue;
            }
            let properties = &declared["Properties"];
            let name = properties
                .get("QueueName")
                .or(properties.get("TopicName"))
                .or(properties.get("Name"))
                .expect("a name");
            let text = arn["Fn::Sub"].as_str().unwrap_or_default();
            assert!(
                text.ends_with(&format!(":{}", name.as_str().unwrap_or_default()))
                    || text.ends_with(&format!("/{}", name.as_str().unwrap_or_default())),
                "{text} names {name}"
            );
        }
    }
}

#[test]
fn a_reference_the_rewrite_cannot_name_is_refused() {
    let topology = Topology::declare(Chain::Standard);
    let stray = json!({"Resource": {"Fn::GetAtt": ["SomethingElse", "Arn"]}});
    let refused =
        std::panic::catch_unwind(|| policy::rewritten(&stray, &policy::by_name(&topology)));
    assert!(refused.is_err());
}

#[test]
fn each_role_lets_the_mapping_poll_its_queues_write_its_logs_and_attach_to_the_vpc() {
    let template = render();
    for service in consumers() {
        let role = resource(&template, &function::role_id(service));
        assert_eq!(
            role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"],
            json!({"Service": "lambda.amazonaws.com"})
        );
        let policies = role["Properties"]["Policies"].as_array().expect("policies");
        let by_name = |name: &str| {
            &policies
                .iter()
                .find(|p| p["PolicyName"] == name)
                .expect(name)["PolicyDocument"]["Statement"]
        };
        let source = by_name("event-source");
        for chain in [Chain::Standard, Chain::Fifo] {
            let queues: Vec<Value> = Topology::declare(chain)
                .queues_of(service)
                .iter()
                .map(|q| queue_arn(q.name))
                .collect();
            assert_eq!(with_chain(&source[0]["Resource"], chain), json!(queues));
        }
        assert_eq!(
            source[0]["Action"],
            json!([
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes"
            ])
        );
        assert_eq!(
            source[1]["Resource"],
            json!({"Fn::GetAtt": [function::log_group_id(service), "Arn"]})
        );
        let network = by_name(policy::NETWORK_INTERFACES_POLICY);
        assert_eq!(network.as_array().map(Vec::len), Some(2));
        assert_eq!(
            network[0]["Action"],
            json!(policy::NETWORK_DESCRIBE_ACTIONS)
        );
        assert_eq!(network[0]["Resource"], "*");
        assert_eq!(
            network[1]["Action"],
            json!(policy::NETWORK_INTERFACE_ACTIONS)
        );
        assert!(!network[1]["Resource"].to_string().contains("\"*\""));
        // The consumer moves poison to the DLQ and delays retries itself, and
        // SQS decrypts for the mapping: the service policy grants both.
        let messaging = by_name("messaging").to_string();
        assert!(
            messaging.contains("sqs:SendMessage")
                && messaging.contains("sqs:ChangeMessageVisibility")
        );
        assert!(messaging.contains("kms:Decrypt") && messaging.contains(MESSAGING_KEY));
    }
}

#[test]
fn the_function_timeout_leaves_each_queue_six_times_its_length_of_visibility() {
    let template = render();
    let timeout = &template["Parameters"]["FunctionTimeoutSeconds"];
    let max = timeout["MaxValue"].as_i64().expect("a maximum");
    assert!(max >= 1);
    assert!(timeout["Default"].as_i64().expect("a default") <= max);
    for chain in [Chain::Standard, Chain::Fifo] {
        for queue in Topology::declare(chain).queues {
            assert!(
                i64::from(queue.visibility_timeout_secs) >= 6 * max,
                "{}: visibility {} s < 6 × {max} s",
                queue.name,
                queue.visibility_timeout_secs
            );
        }
    }
    // The rule's arithmetic: the largest timeout that keeps it.
    assert_eq!(max_timeout_secs(), 30 / 6);
    for (_, f) in of_type(&template, "AWS::Lambda::Function") {
        assert_eq!(
            f["Properties"]["Timeout"],
            json!({"Ref": "FunctionTimeoutSeconds"})
        );
    }
}

#[test]
fn each_function_reaches_its_database_through_its_service_s_secret_and_task_security_group() {
    let template = render();
    let ecs = crate::ecs::render();
    for service in consumers() {
        let sp = service_prefix(service);
        let f = &resource(&template, &prefix(service))["Properties"];
        assert_eq!(f["Runtime"], "provided.al2023");
        assert_eq!(f["Handler"], "bootstrap");
        assert_eq!(f["Architectures"], json!([{"Ref": "Architecture"}]));
        assert_eq!(f["KmsKeyArn"], json!({"Fn::GetAtt": [key::KEY, "Arn"]}));
        assert_eq!(
            f["Environment"]["Variables"]["DATABASE_URL"],
            json!({"Fn::Sub": format!("{{{{resolve:secretsmanager:${{{sp}DatabaseUrlSecretArn}}:SecretString}}}}")})
        );
        assert_eq!(
            f["VpcConfig"]["SecurityGroupIds"],
            json!([{"Ref": format!("{sp}TaskSecurityGroupId")}])
        );
        // The parameters are the ECS stack's outputs of the same names.
        for output in [
            format!("{sp}DatabaseUrlSecretArn"),
            format!("{sp}TaskSecurityGroupId"),
        ] {
            assert!(
                ecs["Outputs"][&output].is_object(),
                "the ECS stack outputs {output}"
            );
            assert!(template["Parameters"][&output].is_object());
        }
    }
    assert_eq!(template["Parameters"]["Architecture"]["Default"], "arm64");
}

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
                if let Some(Value::String(text)) = map.get("Fn::Sub") {
                    for var in text.split("${").skip(1).filter_map(|s| s.split('}').next()) {
                        names.push(var.split('.').next().unwrap_or_default().to_string());
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
