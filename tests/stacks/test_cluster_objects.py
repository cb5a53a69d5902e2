"""Every Kubernetes object that Tessera writes into the Cluster stack passes kubernetes-validate --strict for the
cluster's version; Karpenter's objects validate against the vendored Karpenter CRD schemas."""

from __future__ import annotations

import json

import jsonschema
import kubernetes_validate
import pytest

from tests.kubernetes_objects import TOKEN_PLACEHOLDER, manifest_objects
from tests.stacks.test_karpenter_objects import SCHEMAS
from tests.synth import SynthesizedEnvironment


@pytest.mark.parametrize("environment", ["dev", "prod", "variant"])
def test_cluster_objects_are_valid_for_the_cluster_version(environment: str, request: pytest.FixtureRequest) -> None:
    synthesized: SynthesizedEnvironment = request.getfixturevalue(environment)
    objects = manifest_objects(synthesized, "Cluster")
    core = [obj for obj in objects if not obj["apiVersion"].startswith("karpenter.")]
    assert {obj["kind"] for obj in core} == {"ServiceAccount"}  # the controllers' accounts
    for obj in core:
        kubernetes_validate.validate(obj, synthesized.config.cluster.kubernetes_version, strict=True)
    karpenter = [obj for obj in objects if obj["apiVersion"].startswith("karpenter.")]
    assert {obj["kind"] for obj in karpenter} == {"EC2NodeClass", "NodePool"}
    for obj in karpenter:
        jsonschema.validate(_with_deploy_time_ids(obj), SCHEMAS[obj["kind"]])


def _with_deploy_time_ids(obj: dict) -> dict:
    """The cluster security group id is a CloudFormation reference at synth; the CRD wants `sg-...`."""
    text = json.dumps(obj).replace(f'{{"id": "{TOKEN_PLACEHOLDER}"}}', '{"id": "sg-0123456789abcdef0"}')
    return json.loads(text)


def test_strict_validation_rejects_unknown_fields() -> None:
    bad = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x"}, "automountToken": False}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.34", strict=True)
