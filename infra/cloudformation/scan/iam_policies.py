"""Writes each IAM role's inline policies out of CloudFormation templates, for parliament.

parliament reads plain IAM policies: it checks every action against the
format of the resource ARNs it is granted on, every condition key against the
actions, and more. The templates reference their resources (`Fn::GetAtt`,
`Ref`, `Fn::Sub`), so each reference is resolved to what the resource would
be in a sample account and region, from its type and its name, and a
parameter to its default. A reference of
a kind this script does not know stops the run: a policy is never left out of
the check, nor checked with a made-up ARN.

    python iam_policies.py OUT_DIR TEMPLATE...

writes OUT_DIR/<template>.<role>.<policy>.json (`messaging-standard.OrderServiceRole.messaging.json`)
and prints one line per policy written. Only the standard library: it runs
with the interpreter of the scanners' venv.

A policy with an `Fn::If` is written once per value of each parameter with
`AllowedValues` its conditions depend on, the other parameters at their
defaults (`compute-lambda@OrdersChain=fifo.OrderFunctionRole.messaging.json`),
so that every branch is checked.
"""

import json
import re
import sys
from pathlib import Path

PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "messaging",
    "AWS::URLSuffix": "amazonaws.com",
}
SAMPLE_KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"


class Unresolvable(Exception):
    pass


def prefix(service):
    return f"arn:aws:{service}:{PSEUDO['AWS::Region']}:{PSEUDO['AWS::AccountId']}"


# A template's parameter, looked up like a resource: its `Ref` is its default.
PARAMETER = "Parameter"
# The random suffix Secrets Manager appends to a secret's name in its ARN.
SAMPLE_SECRET_SUFFIX = "AbCdEf"


def named(resource, prop):
    """A resource's name: a literal, or an `Fn::Sub` of pseudo parameters only."""
    name = resource.get("Properties", {}).get(prop)
    if isinstance(name, dict) and isinstance(name.get("Fn::Sub"), str):
        try:
            name = re.sub(r"\$\{([^}]+)\}", lambda m: PSEUDO[m.group(1)], name["Fn::Sub"])
        except KeyError as e:
            raise Unresolvable(f"{resource['Type']} {prop} with ${{{e.args[0]}}}")
    if not isinstance(name, str):
        raise Unresolvable(f"{resource['Type']} without a literal {prop}")
    return name


# Parameters without a default that a policy may name, with a sample value
# of their form (the ARN their AllowedPattern admits).
SAMPLE_PARAMETERS = {
    "MessagingKeyArn": f"arn:aws:kms:{PSEUDO['AWS::Region']}:{PSEUDO['AWS::AccountId']}:key/{SAMPLE_KEY_ID}",
}


def default(parameter):
    value = parameter["Properties"].get("Default")
    if value is None and parameter.get("Name") in SAMPLE_PARAMETERS:
        return SAMPLE_PARAMETERS[parameter["Name"]]
    if not isinstance(value, str) or value == "":
        raise Unresolvable("a parameter without a default")
    return value


# What `Ref AWS::NoValue` leaves: the property or list item is dropped.
NO_VALUE = object()
# The template's Conditions, looked up like a resource.
CONDITIONS = "Conditions"


def condition_holds(expression, resources):
    """A condition, with every parameter at its (variant's) default."""
    if isinstance(expression, dict) and len(expression) == 1:
        (key, arg), = expression.items()
        if key == "Condition":
            return condition_holds(resources[CONDITIONS][arg], resources)
        if key == "Fn::Not":
            return not condition_holds(arg[0], resources)
        if key == "Fn::And":
            return all(condition_holds(a, resources) for a in arg)
        if key == "Fn::Or":
            return any(condition_holds(a, resources) for a in arg)
        if key == "Fn::Equals":
            return condition_value(arg[0], resources) == condition_value(arg[1], resources)
    raise Unresolvable(f"the condition {expression}")


def condition_value(value, resources):
    if isinstance(value, dict) and set(value) == {"Ref"}:
        parameter = resources.get(value["Ref"])
        if parameter is None or parameter["Type"] != PARAMETER:
            raise Unresolvable(f"Ref {value['Ref']} in a condition")
        return parameter["Properties"].get("Default", "")
    if isinstance(value, str):
        return value
    raise Unresolvable(f"{value} in a condition")


def conditions_in(value, found):
    """The conditions the `Fn::If`s of `value` test."""
    if isinstance(value, list):
        for v in value:
            conditions_in(v, found)
    elif isinstance(value, dict):
        if isinstance(value.get("Fn::If"), list):
            found.add(value["Fn::If"][0])
        for v in value.values():
            conditions_in(v, found)
    return found


def parameters_of(expression, conditions, found):
    """The parameters a condition depends on."""
    if isinstance(expression, list):
        for e in expression:
            parameters_of(e, conditions, found)
    elif isinstance(expression, dict):
        if set(expression) == {"Ref"}:
            found.add(expression["Ref"])
        elif set(expression) == {"Condition"}:
            parameters_of(conditions[expression["Condition"]], conditions, found)
        else:
            for e in expression.values():
                parameters_of(e, conditions, found)
    return found


# What `Fn::GetAtt [id, attribute]` gives, by resource type and attribute.
ATTRIBUTES = {
    ("AWS::SQS::Queue", "Arn"): lambda r: f"{prefix('sqs')}:{named(r, 'QueueName')}",
    ("AWS::SQS::Queue", "QueueName"): lambda r: named(r, "QueueName"),
    ("AWS::SNS::Topic", "TopicArn"): lambda r: f"{prefix('sns')}:{named(r, 'TopicName')}",
    ("AWS::SNS::Topic", "TopicName"): lambda r: named(r, "TopicName"),
    ("AWS::KMS::Key", "Arn"): lambda r: f"{prefix('kms')}:key/{SAMPLE_KEY_ID}",
    ("AWS::KMS::Key", "KeyId"): lambda r: SAMPLE_KEY_ID,
    ("AWS::Events::EventBus", "Arn"): lambda r: f"{prefix('events')}:event-bus/{named(r, 'Name')}",
    ("AWS::Events::EventBus", "Name"): lambda r: named(r, "Name"),
    ("AWS::Logs::LogGroup", "Arn"): lambda r: f"{prefix('logs')}:log-group:{named(r, 'LogGroupName')}:*",
}

# What `Ref id` gives, by resource type (a queue's URL, not its ARN: a policy
# that grants on a queue's Ref is wrong, and parliament should say so).
REFS = {
    "AWS::SQS::Queue": lambda r: "https://sqs.{}.amazonaws.com/{}/{}".format(
        PSEUDO["AWS::Region"], PSEUDO["AWS::AccountId"], named(r, "QueueName")
    ),
    "AWS::SNS::Topic": ATTRIBUTES[("AWS::SNS::Topic", "TopicArn")],
    "AWS::KMS::Key": ATTRIBUTES[("AWS::KMS::Key", "KeyId")],
    "AWS::Events::EventBus": ATTRIBUTES[("AWS::Events::EventBus", "Name")],
    "AWS::SecretsManager::Secret": lambda r: f"{prefix('secretsmanager')}:secret:{named(r, 'Name')}-{SAMPLE_SECRET_SUFFIX}",
    PARAMETER: default,
}


def resolve(value, resources):
    if isinstance(value, list):
        return [r for r in (resolve(v, resources) for v in value) if r is not NO_VALUE]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (key, arg), = value.items()
        if key == "Ref" and arg == "AWS::NoValue":
            return NO_VALUE
        if key == "Ref":
            return ref(arg, resources)
        if key == "Fn::If":
            branch = arg[1] if condition_holds(resources[CONDITIONS][arg[0]], resources) else arg[2]
            return resolve(branch, resources)
        if key == "Fn::GetAtt":
            return get_att(arg[0], arg[1], resources)
        if key == "Fn::Sub" and isinstance(arg, str):
            return re.sub(r"\$\{([^}]+)\}", lambda m: sub_var(m.group(1), resources), arg)
        if key.startswith("Fn::"):
            raise Unresolvable(f"{key} is not resolved by this script")
    resolved = {k: resolve(v, resources) for k, v in value.items()}
    return {k: v for k, v in resolved.items() if v is not NO_VALUE}


def ref(name, resources):
    if name in PSEUDO:
        return PSEUDO[name]
    resource = resources.get(name)
    if resource is None or resource["Type"] not in REFS:
        raise Unresolvable(f"Ref {name}")
    return REFS[resource["Type"]](resource)


def get_att(name, attribute, resources):
    resource = resources.get(name)
    rule = resource and ATTRIBUTES.get((resource["Type"], attribute))
    if rule is None:
        raise Unresolvable(f"Fn::GetAtt {name}.{attribute}")
    return rule(resource)


def sub_var(var, resources):
    if "." in var:
        return get_att(*var.split(".", 1), resources)
    return ref(var, resources)


def main(out_dir, templates):
    out = Path(out_dir)
    written = 0
    for path in map(Path, templates):
        template = json.loads(path.read_text())
        resources = dict(template["Resources"])
        parameters = template.get("Parameters", {})
        for name, parameter in parameters.items():
            resources[name] = {"Type": PARAMETER, "Name": name, "Properties": parameter}
        resources[CONDITIONS] = template.get("Conditions", {})
        for role_id, role in template["Resources"].items():
            if role["Type"] != "AWS::IAM::Role":
                continue
            for policy in role.get("Properties", {}).get("Policies", []):
                document = policy["PolicyDocument"]
                varied = set()
                for condition in conditions_in(document, set()):
                    parameters_of(resources[CONDITIONS].get(condition, {}), resources[CONDITIONS], varied)
                variants = [("", resources)]
                for parameter in sorted(p for p in varied if "AllowedValues" in parameters.get(p, {})):
                    variants = [
                        (f"{tag}@{parameter}={value}", {**r, parameter: {**r[parameter], "Properties": {**r[parameter]["Properties"], "Default": value}}})
                        for tag, r in variants
                        for value in parameters[parameter]["AllowedValues"]
                    ]
                for tag, variant in variants:
                    name = f"{path.stem}{tag}.{role_id}.{policy['PolicyName']}.json"
                    try:
                        resolved = resolve(document, variant)
                    except Unresolvable as e:
                        sys.exit(f"{path}: {role_id}: cannot resolve {e} for parliament; teach {__file__} its ARN")
                    (out / name).write_text(json.dumps(resolved, indent=2) + "\n")
                    print(name)
                    written += 1
    if written == 0:
        sys.exit(f"no IAM role policy found in {', '.join(templates)}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
