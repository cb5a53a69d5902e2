"""Registry stack: the register Lambda, its trigger, catalog and least-privilege role."""

from __future__ import annotations

import json

from registry.catalog import Catalog
from stacks.registration.catalog import build_catalog
from tests.synth import SynthesizedEnvironment


def _function(env: SynthesizedEnvironment) -> dict:
    [function] = env.resources("Registry", "AWS::Lambda::Function").values()
    return function["Properties"]


def test_register_function_runs_on_graviton_with_powertools(dev: SynthesizedEnvironment) -> None:
    function = _function(dev)
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["Handler"] == "registry.handler.handle"
    [layer] = function["Layers"]
    assert "017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-arm64:27" in json.dumps(layer)


def test_function_knows_its_bucket_table_and_catalog(dev: SynthesizedEnvironment) -> None:
    variables = _function(dev)["Environment"]["Variables"]
    assert variables["REGISTRY_TABLE"] == "tessera-dev-model-registry"
    catalog_ref = variables["CATALOG_PARAMETER"]["Ref"]
    catalog = dev.template_json("Registry")["Resources"][catalog_ref]
    assert catalog["Properties"]["Name"] == "/tessera/dev/registry/catalog"
    assert "tessera-dev-models-" in json.dumps(variables["MODEL_BUCKET"])


def test_catalog_parameter_is_rendered_from_config(dev: SynthesizedEnvironment) -> None:
    [parameter] = [
        p["Properties"]
        for p in dev.resources("Registry", "AWS::SSM::Parameter").values()
        if p["Properties"].get("Name") == "/tessera/dev/registry/catalog"
    ]
    catalog = Catalog.from_json(parameter["Value"])
    assert catalog == build_catalog(dev.config)
    assert catalog.services["assistant"].instance_family == "trn1"
    assert catalog.services["embeddings"].neuron_sdk == "2.31.1"
    assert catalog.block_severity == "HIGH"


def test_rule_matches_only_manifest_uploads_in_the_model_bucket(dev: SynthesizedEnvironment) -> None:
    [rule] = dev.resources("Registry", "AWS::Events::Rule").values()
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.s3"]
    assert pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["object"]["key"] == [{"wildcard": "models/*/*/manifest.json"}]
    assert "tessera-dev-models-" in json.dumps(pattern["detail"]["bucket"]["name"])
    [target] = rule["Properties"]["Targets"]
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 4, "MaximumEventAgeInSeconds": 7200}
    assert "DeadLetterConfig" in target


def test_role_is_least_privilege(dev: SynthesizedEnvironment) -> None:
    [policy] = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in dev.resources("Registry", "AWS::IAM::Policy").values()
        if "RegisterRole" in json.dumps(p["Properties"]["Roles"])
    ]
    actions = {a for s in policy for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert not any(action.endswith("*") for action in actions)
    by_sid = {s.get("Sid"): s for s in policy}
    writes = [s for s in policy if "s3:PutObject" in json.dumps(s["Action"])]
    assert writes == [by_sid["RecordRegisteredVersions"]], "the function writes only the registered records"
    assert json.dumps(writes[0]["Resource"]).endswith('/registered/*"]]}')
    assert by_sid["ReadModelVersions"]["Action"] == ["s3:GetObject", "s3:GetObjectVersion"]
    assert json.dumps(by_sid["ReadModelVersions"]["Resource"]).endswith('"/models/*"]]}')
    ecr_resources = json.dumps(by_sid["ServingImages"]["Resource"])
    for repository in ("tessera/dev/assistant", "tessera/dev/embeddings", "tessera/dev/gateway"):
        assert f"repository/{repository}" in ecr_resources
    assert set(by_sid["RegistryTable"]["Action"]) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",  # marks a version announced once EventBridge took the announcement
        "dynamodb:Query",
        "dynamodb:ConditionCheckItem",
    }


def test_ignored_uploads_raise_an_alarm(dev: SynthesizedEnvironment) -> None:
    """Issue 11, case 3: an upload the function cannot place is counted, and the count alarms."""
    [alarm] = dev.resources("Registry", "AWS::CloudWatch::Alarm").values()
    properties = alarm["Properties"]
    assert (properties["Namespace"], properties["MetricName"]) == ("Tessera", "RegistrationIgnored")
    assert properties["Dimensions"] == [{"Name": "service", "Value": "tessera-registry"}]
    assert (properties["Statistic"], properties["Period"], properties["Threshold"]) == ("Sum", 300, 1)
    assert properties["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert properties["TreatMissingData"] == "notBreaching"


def test_function_logs_are_retained_and_private(dev: SynthesizedEnvironment) -> None:
    [group] = dev.resources("Registry", "AWS::Logs::LogGroup").values()
    assert group["Properties"]["RetentionInDays"] == 90
    role = next(iter(dev.resources("Registry", "AWS::IAM::Role").values()))
    assert "ManagedPolicyArns" not in role["Properties"]


def test_failure_queues_are_encrypted(dev: SynthesizedEnvironment) -> None:
    """Events the rule could not deliver, and registrations that failed after Lambda's retries (the function's
    on-failure destination), each land in an encrypted queue."""
    queues = dev.resources("Registry", "AWS::SQS::Queue")
    assert len(queues) == 2
    assert all(queue["Properties"]["SqsManagedSseEnabled"] is True for queue in queues.values())
    [config] = dev.resources("Registry", "AWS::Lambda::EventInvokeConfig").values()
    assert config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0] in queues
