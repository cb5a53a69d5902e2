"""Point 1: the Load Balancer Controller may only register pods into this environment's target groups, and
its chart installs no IngressClass, no Service controller and no Gateway API controllers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from stacks.cluster.platform_charts import load_lbc_policy
from tessera_shared.constants import TARGET_GROUP_OWNER_TAG
from tests.synth import REPO_ROOT, SynthesizedEnvironment

CHART_VALUES = REPO_ROOT / "stacks" / "cluster" / "data" / "aws-load-balancer-controller-v3.5.0-values.yaml"
CHART_VALUES_SHA256 = "c330e0b3aaeed9d6b75e70564563dcdb231ee970db587f23eff5c013461f2dd4"
READ_ONLY_PREFIXES = ("ec2:Describe", "elasticloadbalancing:Describe")


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _controller_statements(env: SynthesizedEnvironment) -> list[dict]:
    return [
        statement
        for policy in env.resources("Cluster", "AWS::IAM::Policy").values()
        if "LoadBalancerController" in json.dumps(policy["Properties"]["Roles"])
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _controller_values(env: SynthesizedEnvironment) -> dict:
    [release] = [
        chart["Properties"]
        for chart in env.resources("Cluster", "Custom::AWSCDK-EKS-HelmChart").values()
        if chart["Properties"]["Release"] == "aws-load-balancer-controller"
    ]
    values = release["Values"]
    text = (
        values
        if isinstance(values, str)
        else "".join(p if isinstance(p, str) else "ref" for p in values["Fn::Join"][1])
    )
    return json.loads(text)


def test_controller_writes_only_to_tagged_target_groups(dev: SynthesizedEnvironment) -> None:
    statements = _controller_statements(dev)
    writes = [s for s in statements if any(not a.startswith(READ_ONLY_PREFIXES) for a in _as_list(s["Action"]))]
    assert {a for s in writes for a in _as_list(s["Action"])} == {
        "elasticloadbalancing:RegisterTargets",
        "elasticloadbalancing:DeregisterTargets",
    }
    for statement in writes:
        assert ":targetgroup/" in json.dumps(statement["Resource"])
        condition = statement["Condition"]["StringEquals"]
        assert condition == {f"aws:ResourceTag/{TARGET_GROUP_OWNER_TAG}": dev.stacks.cluster.cluster_name}


def test_every_granted_action_comes_from_the_upstream_policy(dev: SynthesizedEnvironment) -> None:
    upstream = {a for s in load_lbc_policy()["Statement"] for a in _as_list(s["Action"])}
    granted = {a for s in _controller_statements(dev) for a in _as_list(s["Action"])}
    assert granted <= upstream
    assert not any("*" in action for action in granted)


def test_target_groups_carry_the_tag_the_controller_needs(dev: SynthesizedEnvironment) -> None:
    groups = dev.resources("Services", "AWS::ElasticLoadBalancingV2::TargetGroup").values()
    assert groups
    for group in groups:
        tags = {t["Key"]: t["Value"] for t in group["Properties"]["Tags"]}
        assert tags[TARGET_GROUP_OWNER_TAG] == dev.stacks.cluster.cluster_name


def test_chart_installs_only_the_target_group_binding_controller(dev: SynthesizedEnvironment) -> None:
    values = _controller_values(dev)
    assert values["createIngressClassResource"] is False
    assert values["disableIngressClassAnnotation"] is True
    assert values["enableServiceMutatorWebhook"] is False
    assert values["enableBackendSecurityGroup"] is False
    # All three Gateway gates set explicitly: the controller then skips its CRD auto-detection.
    assert values["controllerConfig"]["featureGates"] == {
        "EnableServiceController": False,
        "ALBGatewayAPI": False,
        "NLBGatewayAPI": False,
        "GatewayListenerSet": False,
    }


def test_chart_values_exist_in_the_pinned_chart(dev: SynthesizedEnvironment) -> None:
    raw = Path(CHART_VALUES).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == CHART_VALUES_SHA256
    chart = yaml.safe_load(raw)
    values = _controller_values(dev)
    assert set(values) <= set(chart), set(values) - set(chart)
    assert set(values["controllerConfig"]) <= set(chart["controllerConfig"])


def test_no_acknowledgment_claims_tag_conditions_the_policy_lacks(dev: SynthesizedEnvironment) -> None:
    reasons = [
        reason
        for metadata in dev.outdir.glob("*.metadata.json")
        for entries in json.loads(metadata.read_text()).values()
        for entry in entries
        if entry["type"] == "aws:cdk:acknowledged-rules"
        for reason in entry["data"].values()
    ]
    assert not [r for r in reasons if "guarded by its tag conditions" in r]
