"""The Karpenter controller's IAM policies and interruption rules, read from Karpenter's own
CloudFormation template (vendored in data/karpenter/, pinned by checksum). Pure: no CDK.

The template writes each policy as a `!Sub` JSON string (one condition key interpolates the cluster
name); `controller_policies()` substitutes the variables given, so the stack passes CDK tokens and
the tests (and cdk-nag acknowledgments) pass readable names.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import yaml

TEMPLATE_FILE = Path(__file__).parent / "data" / "karpenter" / "karpenter-v1.14.1-cloudformation.yaml"
TEMPLATE_SHA256 = "7ffeb01f04b5da482ef43087830de00a476098416e3b4576c38239ef1b0bef4b"
# The ManagedPolicy resources of the template that make up the controller's permissions.
CONTROLLER_POLICIES = (
    "NodeLifecyclePolicy",
    "IAMIntegrationPolicy",
    "EKSIntegrationPolicy",
    "InterruptionPolicy",
    "ZonalShiftPolicy",
    "ResourceDiscoveryPolicy",
)
# The variables the policies use, e.g. ${ClusterName}, ${KarpenterNodeRole.Arn}.
VARIABLES = (
    "ClusterName",
    "AWS::Partition",
    "AWS::Region",
    "AWS::AccountId",
    "KarpenterNodeRole.Arn",
    "KarpenterInterruptionQueue.Arn",
)
_VARIABLE = re.compile(r"\$\{([A-Za-z:.]+)\}")


class _CloudFormationLoader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags (!Sub, !Ref, !GetAtt) as plain values."""


def _tag_value(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> object:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    raise ValueError(f"unexpected YAML node {node!r}")


_CloudFormationLoader.add_multi_constructor("!", _tag_value)


def load_template() -> dict:
    raw = TEMPLATE_FILE.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != TEMPLATE_SHA256:
        raise ValueError(f"{TEMPLATE_FILE.name}: sha256 {digest} does not match the reviewed {TEMPLATE_SHA256}")
    return yaml.load(raw, Loader=_CloudFormationLoader)  # noqa: S506 - a SafeLoader subclass


def controller_policies(variables: dict[str, str]) -> dict[str, dict]:
    """Policy name -> IAM policy document, with every ${...} variable replaced."""
    missing = sorted(set(VARIABLES) - set(variables))
    if missing:
        raise ValueError(f"values missing for {missing}")
    resources = load_template()["Resources"]
    documents = {}
    for name in CONTROLLER_POLICIES:
        text = resources[name]["Properties"]["PolicyDocument"]
        unknown = sorted(set(_VARIABLE.findall(text)) - set(variables))
        if unknown:
            raise ValueError(f"{name}: the template uses variables Tessera does not supply: {unknown}")
        documents[name] = json.loads(_VARIABLE.sub(lambda match: variables[match.group(1)], text))
    return documents


def interruption_rules() -> dict[str, dict]:
    """Rule name -> EventBridge event pattern, for every rule that feeds the interruption queue."""
    resources = load_template()["Resources"]
    return {
        name: resource["Properties"]["EventPattern"]
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Events::Rule"
    }
