#!/usr/bin/env python3
"""Check the config template.yaml gives the function, for every allowed parameter combination.

Evaluates the template's Rules, Conditions, the function's environment, its IAM policies and
the failure alarm for every combination of the parameters that shape them (every AllowedValues
value; representative values for free ones; those of the table, queue and metrics crossed with
each other and with the config source and buffer, see INDEPENDENT), then for each combination
the Rules allow:

- exactly one config source is set (BUCKET_TRIGGER_CONFIG, _FILE or _SSM);
- the config loads: `bucket-trigger validate` on the generated text, or on each example config
  (examples/*.yaml, and one that reads no secret) shipped as ConfigFile in a package laid out
  as bundle/Makefile lays it out;
- the policy grants secretsmanager:GetSecretValue on exactly the secrets `validate` lists
  (SecretNames set to what `validate` prints), ssm:GetParameter on exactly the config
  parameter (without its :version), and kms:Decrypt only with SecretsKmsKeyArn;
- with IdempotencyTable, the function is told the table (BUCKET_TRIGGER_IDEMPOTENCY_TABLE) and
  may GetItem, PutItem, UpdateItem and DeleteItem on exactly that table's ARN; without, no
  DynamoDB grant and no variable;
- it is told the failure queue (BUCKET_TRIGGER_FAILURE_QUEUE_URL) and may SendMessage to
  exactly it; with the SQS buffer, it is told the redrive policy's maxReceiveCount
  (BUCKET_TRIGGER_MAX_RECEIVE_COUNT, the same value the buffer queue is given);
- its statements grant nothing else (any other action, or these on another resource, fails);
- the failure alarm, when it exists, watches the un-dimensioned Failed total in the namespace
  the function writes to (>= 1 in 5 minutes, missing data not breaching), notifying
  AlarmTopicArn only when it is set.

Usage: check-template-configs.py --bin target/debug/bucket-trigger [--template template.yaml] [--fail-fast]
Needs PyYAML. Prints one line per failure and a summary; exits 1 on any failure.
"""

import argparse
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012"}
CONFIG_VARS = ("BUCKET_TRIGGER_CONFIG", "BUCKET_TRIGGER_CONFIG_FILE", "BUCKET_TRIGGER_CONFIG_SSM")
EXAMPLES = ("bucket-trigger.yaml", "alteryx.yaml", "google.yaml")
# A config that reads no secret: SecretNames stays empty and no secret may be granted.
NO_SECRETS = "routes:\n  - name: hook\n    target: { webhook: { url: 'https://hooks.example.com/landing' } }\n"


def example_text(example):
    if example == "(no secrets)":
        return NO_SECRETS
    with open(os.path.join(ROOT, "examples", example)) as f:
        return f.read()
NO_VALUE = object()

# Values for the parameters without AllowedValues that shape the config or the policy. A
# parameter the function's environment or policies use must be here or have AllowedValues.
FREE = {
    "DagId": ["ingest_csv"],
    "AirflowBaseUrl": ["https://airflow.example.com"],
    "AirflowSecretName": ["airflow/prod-trigger"],
    "AirflowCaBundleSecretName": ["", "tls/company-ca"],
    "BucketName": ["my-data-bucket"],
    "Prefix": ["", "incoming/"],
    "Suffix": ["", ".csv"],
    "ConfigFile": ["bucket-trigger.yaml"],
    "ConfigParameterName": ["", "/bucket-trigger/config", "/bucket-trigger/config:3"],
    "SecretsKmsKeyArn": ["", "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"],
    # SecretNames is what `validate` prints for the example shipped (see check()).
    "SecretNames": [None],
    "LogLevel": ["info"],
    "SecretsCacheTtlSeconds": ["300"],
    "IdempotencyTable": ["", "Create", "bucket-trigger-idempotency"],
    "MaxReceiveCount": ["7"],
    "MetricsNamespace": ["BucketTrigger/sales"],
    "AlarmTopicArn": ["", "arn:aws:sns:eu-west-1:123456789012:ops-alerts"],
}

# What the function may do beyond the config's own secrets, parameter and key.
IDEMPOTENCY_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")
# Grants from SAM policy templates (no Statement here), keyed by the template's name.
POLICY_TEMPLATES = {"SQSPollerPolicy"}


class Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, ...) read as their long forms."""


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Fn::" + suffix: value}


Loader.add_multi_constructor("!", _tag)


class Evaluator:
    def __init__(self, template, params):
        self.template = template
        self.params = params
        self.conditions = {}

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = self.eval(self.template["Conditions"][name])
        return self.conditions[name]

    def ref(self, name):
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.params:
            return self.params[name]
        if name in self.template.get("Resources", {}):
            return "<%s>" % name
        raise KeyError("unknown Ref %s" % name)

    def sub(self, text, variables):
        def one(match):
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return variables[name]
            value = self.ref(name)
            if isinstance(value, list):
                raise ValueError("Fn::Sub of the list parameter %s" % name)
            return value

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def eval(self, node):
        if isinstance(node, list):
            items = [self.eval(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::If":
                name, yes, no = arg
                return self.eval(yes if self.condition(name) else no)
            if key == "Fn::Equals":
                a, b = (self.eval(x) for x in arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self.eval(arg[0])
            if key == "Fn::And":
                return all(self.eval(x) for x in arg)
            if key == "Fn::Or":
                return any(self.eval(x) for x in arg)
            if key == "Fn::Join":
                sep, items = arg
                return self.eval(sep).join(str(x) for x in self.eval(items))
            if key == "Fn::Split":
                sep, text = arg
                return self.eval(text).split(self.eval(sep))
            if key == "Fn::Select":
                index, items = arg
                return self.eval(items)[int(self.eval(index))]
            if key == "Fn::Sub":
                if isinstance(arg, str):
                    return self.sub(arg, {})
                text, variables = arg
                return self.sub(text, {k: self.eval(v) for k, v in variables.items()})
            if key == "Fn::GetAtt":
                return "<%s>" % ".".join(arg)
            if key == "Fn::FindInMap":
                m, a, b = (self.eval(x) for x in arg)
                return self.template["Mappings"][m][str(a)][str(b)]
            if key.startswith("Fn::"):
                raise ValueError("no evaluation for %s" % key)
        out = {}
        for key, value in node.items():
            value = self.eval(value)
            if value is not NO_VALUE:
                out[key] = value
        return out

    def allowed(self):
        """Whether every Rule whose condition holds has its assertions hold."""
        for rule in self.template.get("Rules", {}).values():
            if "RuleCondition" in rule and not self.eval(rule["RuleCondition"]):
                continue
            if not all(self.eval(a["Assert"]) for a in rule["Assertions"]):
                return False
        return True


def parameter_refs(node, found):
    """Names of the parameters a part of the template refers to."""
    if isinstance(node, list):
        for item in node:
            parameter_refs(item, found)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                found.update(re.findall(r"\$\{([A-Za-z0-9]+)\}", text))
                parameter_refs(value if isinstance(value, str) else value[1], found)
            else:
                parameter_refs(value, found)
    return found


def condition_refs(node, conditions, found):
    """Names of the Conditions a part of the template uses, and those they use in turn."""
    names = []
    if isinstance(node, list):
        for item in node:
            condition_refs(item, conditions, found)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Fn::If":
                names.append(value[0])
                condition_refs(value[1:], conditions, found)
            elif key == "Condition" and isinstance(value, str):
                names.append(value)
            else:
                condition_refs(value, conditions, found)
    for name in names:
        if name not in found:
            found.add(name)
            condition_refs(conditions[name], conditions, found)
    return found


def statements(policies, action):
    found = []
    for policy in policies:
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            if statement.get("Action") == action:
                resource = statement["Resource"]
                found.extend(resource if isinstance(resource, list) else [resource])
    return found


def grants(policies):
    """Every (action, resource) pair the policies' statements allow, and the names of policy
    templates used."""
    pairs, templates = [], []
    for policy in policies:
        if not isinstance(policy, dict):
            continue
        if "Statement" not in policy:
            templates.extend(policy)
            continue
        for statement in policy["Statement"]:
            actions = statement.get("Action")
            resources = statement.get("Resource")
            actions = actions if isinstance(actions, list) else [actions]
            resources = resources if isinstance(resources, list) else [resources]
            if statement.get("Effect") != "Allow" or "NotAction" in statement or "NotResource" in statement:
                pairs.append(("(not a plain Allow)", str(statement)))
                continue
            pairs.extend((a, r) for a in actions for r in resources)
    return pairs, templates


def secret_arn(name):
    return "arn:aws:secretsmanager:%s:%s:secret:%s-??????" % (PSEUDO["AWS::Region"], PSEUDO["AWS::AccountId"], name)


class Validator:
    """Runs `bucket-trigger validate`, once per distinct config."""

    def __init__(self, binary):
        self.binary = binary
        self.cache = {}

    def run(self, env, cwd=None, tag=None):
        """Exit code, stderr and the secrets listed; `tag` names what is in `cwd`."""
        key = (tuple(sorted(env.items())), cwd, tag)
        if key not in self.cache:
            clean = {"PATH": os.environ.get("PATH", ""), "AWS_EC2_METADATA_DISABLED": "true"}
            clean.update(env)
            done = subprocess.run([self.binary, "validate"], env=clean, cwd=cwd, capture_output=True, text=True)
            secrets = []
            for line in done.stdout.splitlines():
                if line.startswith("template.yaml: SecretNames="):
                    secrets = [s for s in line.split("=", 1)[1].split(",") if s]
            self.cache[key] = (done.returncode, done.stderr.strip(), secrets)
        return self.cache[key]


# Parameters that shape only the idempotency table, the failure queue and the metrics: crossed
# with each other and with CROSSED in full, and held at their first value while the rest (the
# config and its secrets) is crossed in full. Their grants do not depend on the config's.
INDEPENDENT = ("IdempotencyTable", "EmitMetrics", "AlarmOnFailures", "AlarmTopicArn", "MaxReceiveCount", "MetricsNamespace")
CROSSED = ("ConfigSource", "ConfigParameterName", "UseSqsBuffer", "SecretsKmsKeyArn")


def combinations(choices):
    """Every combination of the INDEPENDENT parameters with CROSSED (the rest at their first
    value), then every combination of the config's parameters (INDEPENDENT at their first)."""
    names = sorted(choices)
    first = {n: choices[n][0] for n in names}
    other_names = [n for n in names if n in INDEPENDENT or n in CROSSED]
    for values in itertools.product(*(choices[n] for n in other_names)):
        combination = dict(first, **dict(zip(other_names, values)))
        if any(combination[n] != first[n] for n in INDEPENDENT if n in choices):
            yield combination
    config_names = [n for n in names if n not in INDEPENDENT]
    for values in itertools.product(*(choices[n] for n in config_names)):
        yield dict(first, **dict(zip(config_names, values)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="the bucket-trigger binary")
    parser.add_argument("--template", default=os.path.join(ROOT, "template.yaml"))
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first failure")
    args = parser.parse_args()

    with open(args.template) as f:
        template = yaml.load(f, Loader=Loader)
    function = template["Resources"]["Function"]
    properties = function["Properties"]
    parameters = template["Parameters"]

    alarm = template["Resources"].get("FailedDeliveriesAlarm", {})
    parts = [properties["Environment"], properties["Policies"], template.get("Rules", {}), alarm]
    conditions = template.get("Conditions", {})
    used = [conditions[name] for name in condition_refs(parts, conditions, set())]
    shaping = sorted(name for name in parameter_refs(parts + used, set()) if name in parameters)
    choices = {}
    for name in shaping:
        if "AllowedValues" in parameters[name]:
            choices[name] = [str(v) for v in parameters[name]["AllowedValues"]]
        elif name in FREE:
            choices[name] = FREE[name]
    missing = [n for n in shaping if n not in choices]
    if missing:
        print("check-template-configs: no values to try for parameter(s) %s: add them to FREE" % ", ".join(missing))
        return 1

    validator = Validator(os.path.abspath(args.bin))
    package = tempfile.mkdtemp(prefix="bucket-trigger-package-")
    failures, checked, excluded, sources = [], 0, 0, set()
    try:
        for base in combinations(choices):
            examples = EXAMPLES + ("(no secrets)",)
            for example in examples if base.get("ConfigSource") != "Generated" else (None,):
                params = {n: v for n, v in base.items() if v is not None}
                problem = check(template, properties, params, example, package, validator, sources)
                if problem is None:
                    excluded += 1
                    continue
                checked += 1
                if problem:
                    label = " ".join("%s=%s" % kv for kv in sorted(params.items()))
                    failures.append("%s%s: %s" % (label, " (example %s)" % example if example else "", problem))
                    if args.fail_fast:
                        break
            if failures and args.fail_fast:
                break
    finally:
        shutil.rmtree(package, ignore_errors=True)

    for failure in failures[:20]:
        print("FAIL: " + failure)
    if len(failures) > 20:
        print("... and %d more" % (len(failures) - 20))
    print(
        "check-template-configs: %d combinations checked (sources: %s), %d excluded by Rules, %d failed"
        % (checked, ", ".join(sorted(sources)), excluded, len(failures))
    )
    return 1 if failures or not checked else 0


def check(template, properties, params, example, package, validator, sources):
    """None when the Rules exclude the combination, "" when it is right, else what is wrong."""
    if example is not None:
        # The example goes into the package under ConfigFile; SecretNames is what validate prints.
        code, error, secrets = validator.run({"BUCKET_TRIGGER_CONFIG": example_text(example)})
        if code != 0:
            return "example %s does not load: %s" % (example, error)
        params["SecretNames"] = ",".join(secrets)
    evaluator = Evaluator(template, dict(params, SecretNames=params.get("SecretNames", "").split(",")))
    if not evaluator.allowed():
        return None
    env = evaluator.eval(properties["Environment"])["Variables"]
    policies = evaluator.eval(properties["Policies"])
    set_vars = [v for v in CONFIG_VARS if v in env]
    if len(set_vars) != 1:
        return "config variables set: %s (want exactly one)" % (", ".join(set_vars) or "none")
    source = set_vars[0]
    sources.add(source)

    if source == "BUCKET_TRIGGER_CONFIG":
        code, error, secrets = validator.run({source: env[source]})
        if code != 0:
            return "the generated config does not load: %s\n%s" % (error, env[source])
    elif source == "BUCKET_TRIGGER_CONFIG_FILE":
        target = os.path.join(package, env[source])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as f:
            f.write(example_text(example))
        code, error, secrets = validator.run({source: env[source]}, cwd=package, tag=example)
        if code != 0:
            return "the bundled config does not load from the package root: %s" % error
    else:
        secrets = [s for s in params["SecretNames"].split(",") if s]

    granted = sorted(statements(policies, "secretsmanager:GetSecretValue"))
    wanted = sorted(secret_arn(s) for s in secrets)
    if granted != wanted:
        return "GetSecretValue granted on %s, the config reads %s" % (granted, wanted)

    ssm = statements(policies, "ssm:GetParameter")
    if source == "BUCKET_TRIGGER_CONFIG_SSM":
        name = env[source].split(":")[0]
        arn = "arn:aws:ssm:%s:%s:parameter%s" % (PSEUDO["AWS::Region"], PSEUDO["AWS::AccountId"], name)
        if ssm != [arn]:
            return "ssm:GetParameter granted on %s, want [%s]" % (ssm, arn)
    elif ssm:
        return "ssm:GetParameter granted on %s without an SSM config" % ssm

    kms = statements(policies, "kms:Decrypt")
    want_kms = [params["SecretsKmsKeyArn"]] if params.get("SecretsKmsKeyArn") else []
    if kms != want_kms:
        return "kms:Decrypt granted on %s, want %s" % (kms, want_kms)
    return check_store_queue_metrics(template, evaluator, env, policies, params, wanted, ssm, kms)


def check_store_queue_metrics(template, evaluator, env, policies, params, secret_arns, ssm, kms):
    """The idempotency table, failure queue, receive count, alarm, and nothing else granted."""
    pairs, templates = grants(policies)
    expected = [("secretsmanager:GetSecretValue", arn) for arn in secret_arns]
    expected += [("ssm:GetParameter", arn) for arn in ssm] + [("kms:Decrypt", arn) for arn in kms]

    table = params.get("IdempotencyTable", "")
    told = env.get("BUCKET_TRIGGER_IDEMPOTENCY_TABLE")
    if table:
        name = "<IdempotencyRecords>" if table == "Create" else table
        arn = (
            "<IdempotencyRecords.Arn>"
            if table == "Create"
            else "arn:aws:dynamodb:%s:%s:table/%s" % (PSEUDO["AWS::Region"], PSEUDO["AWS::AccountId"], table)
        )
        if told != name:
            return "BUCKET_TRIGGER_IDEMPOTENCY_TABLE is %r, want %r" % (told, name)
        granted = sorted(a for a, r in pairs if a.startswith("dynamodb:") and r == arn)
        if granted != sorted(IDEMPOTENCY_ACTIONS):
            return "DynamoDB actions on %s: %s, want exactly %s" % (arn, granted, sorted(IDEMPOTENCY_ACTIONS))
        expected += [(a, arn) for a in IDEMPOTENCY_ACTIONS]
        if table == "Create":
            table_properties = template["Resources"]["IdempotencyRecords"]["Properties"]
            created = {
                k: evaluator.eval(table_properties.get(k))
                for k in ("KeySchema", "TimeToLiveSpecification", "BillingMode")
            }
            keys = [(k["AttributeName"], k["KeyType"]) for k in created.get("KeySchema", [])]
            ttl = created.get("TimeToLiveSpecification", {})
            if keys != [("pk", "HASH")] or ttl.get("AttributeName") != "expires_at" or ttl.get("Enabled") is not True:
                return "the created table is not keyed on pk with TTL on expires_at: %s" % created
            if created.get("BillingMode") != "PAY_PER_REQUEST":
                return "the created table is not on-demand"
    elif told is not None:
        return "BUCKET_TRIGGER_IDEMPOTENCY_TABLE set to %r without IdempotencyTable" % told

    if env.get("BUCKET_TRIGGER_FAILURE_QUEUE_URL") != "<FailureQueue>":
        return "BUCKET_TRIGGER_FAILURE_QUEUE_URL is %r, want the FailureQueue's URL" % env.get("BUCKET_TRIGGER_FAILURE_QUEUE_URL")
    sends = [r for a, r in pairs if a == "sqs:SendMessage"]
    if sends != ["<FailureQueue.Arn>"]:
        return "sqs:SendMessage granted on %s, want exactly the FailureQueue" % sends
    expected.append(("sqs:SendMessage", "<FailureQueue.Arn>"))

    receives = env.get("BUCKET_TRIGGER_MAX_RECEIVE_COUNT")
    if evaluator.condition("UseBuffer"):
        redrive = template["Resources"]["BufferQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
        redrive = str(evaluator.eval(redrive))
        if str(receives) != redrive or redrive != str(params.get("MaxReceiveCount")):
            return "BUCKET_TRIGGER_MAX_RECEIVE_COUNT is %r, the buffer's maxReceiveCount %r, MaxReceiveCount %r" % (
                receives, redrive, params.get("MaxReceiveCount"))
        if templates != ["SQSPollerPolicy"]:
            return "policy templates %s, want [SQSPollerPolicy] with the buffer" % templates
    else:
        if receives is not None:
            return "BUCKET_TRIGGER_MAX_RECEIVE_COUNT set without the SQS buffer"
        if templates:
            return "policy templates %s without the buffer" % templates

    extra = sorted(set(pairs) - set(expected))
    if extra:
        return "grants beyond what the function uses: %s" % ", ".join("%s on %s" % p for p in extra)

    namespace = env.get("BUCKET_TRIGGER_METRICS_NAMESPACE")
    if namespace != params.get("MetricsNamespace"):
        return "BUCKET_TRIGGER_METRICS_NAMESPACE is %r, want MetricsNamespace" % namespace
    metrics_off = params.get("EmitMetrics") == "false"
    if env.get("BUCKET_TRIGGER_METRICS") != ("0" if metrics_off else None):
        return "BUCKET_TRIGGER_METRICS is %r with EmitMetrics=%s" % (env.get("BUCKET_TRIGGER_METRICS"), params.get("EmitMetrics"))
    resource = template["Resources"].get("FailedDeliveriesAlarm")
    alarmed = resource is not None and evaluator.condition(resource["Condition"])
    if alarmed != (not metrics_off and params.get("AlarmOnFailures") == "true"):
        return "the failure alarm %s with EmitMetrics=%s AlarmOnFailures=%s" % (
            "exists" if alarmed else "is missing", params.get("EmitMetrics"), params.get("AlarmOnFailures"))
    if alarmed:
        alarm = evaluator.eval(resource["Properties"])
        topic = params.get("AlarmTopicArn")
        want = {
            "Namespace": namespace, "MetricName": "Failed", "Statistic": "Sum", "Period": 300,
            "EvaluationPeriods": 1, "Threshold": 1, "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching", "Dimensions": None,
            "AlarmActions": [topic] if topic else None, "OKActions": [topic] if topic else None,
        }
        wrong = {k: alarm.get(k) for k, v in want.items() if alarm.get(k) != v}
        if wrong:
            return "the failure alarm has %s, want %s" % (wrong, {k: want[k] for k in wrong})
    return ""


if __name__ == "__main__":
    sys.exit(main())
