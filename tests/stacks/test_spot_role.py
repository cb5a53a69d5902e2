"""Issue 19 (4): EC2 Spot needs the AWSServiceRoleForEC2Spot service-linked role, which Karpenter's own policy
cannot create (AuthFailure.ServiceLinkedRoleCreationNotPermitted, pods stay Pending). The Cluster stack creates
it when a pool may buy Spot, before the NodePools exist, tolerates an existing role and never deletes it."""

from __future__ import annotations

import json
import re

import pytest

from stacks.cluster.karpenter_objects import node_pools_allow_spot
from tests.kubernetes_objects import MANIFEST_RESOURCE
from tests.synth import SynthesizedEnvironment

SPOT_SERVICE = "spot.amazonaws.com"
SPOT_ROLE_ARN = (
    "arn:<AWS::Partition>:iam::<AWS::AccountId>:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot"
)
# What IAM's CreateServiceLinkedRole can answer (its API reference), as the wire code and as the JavaScript SDK
# v3 error name that CDK's AwsCustomResource handler matches against.
OTHER_IAM_ERRORS = [
    "LimitExceeded",
    "LimitExceededException",
    "NoSuchEntity",
    "NoSuchEntityException",
    "ServiceFailure",
    "ServiceFailureException",
    "AccessDenied",
    "AccessDeniedException",
    "EntityAlreadyExists",  # CreateRole's code, not CreateServiceLinkedRole's: must not be ignored by accident
]


def _resources(env: SynthesizedEnvironment) -> dict[str, dict]:
    return env.template_json("Cluster")["Resources"]


def _spot_role_calls(env: SynthesizedEnvironment) -> dict[str, dict]:
    """Logical id -> parsed Create call, for every custom resource whose create call makes the Spot role."""
    calls = {}
    for logical_id, resource in _resources(env).items():
        create = resource.get("Properties", {}).get("Create")
        if create is None:
            continue
        call = json.loads(create)  # a JSON string; a token inside would make it an Fn::Join and fail here
        if (call["service"], call["action"]) == ("IAM", "createServiceLinkedRole"):
            assert call["parameters"] == {"AWSServiceName": SPOT_SERVICE}
            calls[logical_id] = call
    return calls


def _spot_role(env: SynthesizedEnvironment) -> tuple[str, dict]:
    [(logical_id, _call)] = _spot_role_calls(env).items()
    return logical_id, _resources(env)[logical_id]


def _text(value: object) -> str:
    """A template string value with `Ref`s written `<name>` (as cdk-nag writes them)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    assert isinstance(value, dict), value
    assert "Fn::Join" in value, value
    separator, parts = value["Fn::Join"]
    return separator.join(_text(part) for part in parts)


def _spot_pools(env: SynthesizedEnvironment) -> list[str]:
    return [pool.name for pool in env.config.cluster.accelerator_pools if pool.capacity.type == "spot"]


@pytest.mark.parametrize(("environment", "spot_pools"), [("dev", ["inferentia"]), ("variant", ["inferentia"])])
def test_a_spot_pool_gets_exactly_one_spot_role_resource(
    environment: str, spot_pools: list[str], request: pytest.FixtureRequest
) -> None:
    env: SynthesizedEnvironment = request.getfixturevalue(environment)
    assert _spot_pools(env) == spot_pools
    assert len(_spot_role_calls(env)) == 1


def test_no_spot_pool_no_spot_role_resource(prod: SynthesizedEnvironment) -> None:
    assert _spot_pools(prod) == []
    template = json.dumps(prod.template_json("Cluster"))
    assert "createServiceLinkedRole" not in template
    assert "iam:CreateServiceLinkedRole" not in template


def test_create_call_ignores_only_the_already_exists_error(dev: SynthesizedEnvironment) -> None:
    [call] = _spot_role_calls(dev).values()
    assert call["physicalResourceId"] == {"id": "AWSServiceRoleForEC2Spot"}  # fixed: an update never replaces it
    pattern = call["ignoreErrorCodesMatching"]
    # IAM answers an existing role with InvalidInput ("Service role name AWSServiceRoleForEC2Spot has been taken
    # in this account"); the handler tests the SDK v3 error name (InvalidInputException) with RegExp.test.
    assert re.search(pattern, "InvalidInput")
    assert re.search(pattern, "InvalidInputException")
    assert not [error for error in OTHER_IAM_ERRORS if re.search(pattern, error)]


def test_the_call_downloads_nothing_during_the_deploy(dev: SynthesizedEnvironment) -> None:
    """The IAM client is in the Lambda runtime: no npm install (and no internet dependency) mid-deploy."""
    _logical_id, resource = _spot_role(dev)
    assert resource["Properties"]["InstallLatestAwsSdk"] is False


def test_the_role_outlives_the_stack(dev: SynthesizedEnvironment) -> None:
    """Other workloads in the account may launch Spot with it: stack deletion calls nothing."""
    _logical_id, resource = _spot_role(dev)
    assert "Delete" not in resource["Properties"]
    assert "Update" not in resource["Properties"]


def test_the_call_may_create_only_the_spot_role(dev: SynthesizedEnvironment) -> None:
    _logical_id, resource = _spot_role(dev)
    resources = _resources(dev)
    function_id = resource["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
    role_id = resources[function_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    policies = {
        policy_id: policy
        for policy_id, policy in resources.items()
        if policy["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in policy["Properties"]["Roles"]
    }
    statements = [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]
    assert len(statements) == 1
    [statement] = statements
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "iam:CreateServiceLinkedRole"
    assert _text(statement["Resource"]) == SPOT_ROLE_ARN
    assert statement["Condition"] == {"StringEquals": {"iam:AWSServiceName": SPOT_SERVICE}}
    # The function's own role: CloudWatch logs only, besides the statement above.
    managed = [_text(arn) for arn in resources[role_id]["Properties"]["ManagedPolicyArns"]]
    assert managed == ["arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]
    # The permission exists before the call.
    assert set(policies) <= set(resource["DependsOn"])


def test_node_pools_wait_for_the_spot_role(dev: SynthesizedEnvironment) -> None:
    """No Spot launch before the role exists: the NodePools are applied after it."""
    logical_id, _resource = _spot_role(dev)
    resources = _resources(dev)
    [pools] = [
        resource
        for resource in resources.values()
        if resource["Type"] == MANIFEST_RESOURCE and "NodePool" in json.dumps(resource["Properties"]["Manifest"])
    ]
    assert logical_id in pools["DependsOn"]


def _node_pool(capacity_types: list[str]) -> dict:
    requirement = {"key": "karpenter.sh/capacity-type", "operator": "In", "values": capacity_types}
    return {"kind": "NodePool", "spec": {"template": {"spec": {"requirements": [requirement]}}}}


@pytest.mark.parametrize(
    ("capacity_types", "spot"),
    [(["on-demand"], False), (["reserved"], False), (["spot"], True), (["on-demand", "spot"], True)],
)
def test_any_node_pool_that_may_buy_spot_needs_the_role(capacity_types: list[str], spot: bool) -> None:
    """Decided from what the NodePools ask Karpenter for, so the general pool counts as much as an accelerator one."""
    general = _node_pool(["on-demand"])
    assert node_pools_allow_spot([{"kind": "EC2NodeClass", "spec": {}}, general, _node_pool(capacity_types)]) is spot
