"""Every Kubernetes object that Tessera writes passes kubernetes-validate --strict for the cluster's version."""

from __future__ import annotations

import kubernetes_validate
import pytest

from tests.kubernetes_objects import manifest_objects
from tests.synth import SynthesizedEnvironment


@pytest.mark.parametrize("environment", ["dev", "prod", "variant"])
def test_cluster_objects_are_valid_for_the_cluster_version(environment: str, request: pytest.FixtureRequest) -> None:
    synthesized: SynthesizedEnvironment = request.getfixturevalue(environment)
    objects = manifest_objects(synthesized, "Cluster")
    assert {obj["kind"] for obj in objects} == {"ServiceAccount"}  # the controllers' accounts
    for obj in objects:
        kubernetes_validate.validate(obj, synthesized.config.cluster.kubernetes_version, strict=True)


def test_strict_validation_rejects_unknown_fields() -> None:
    bad = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x"}, "automountToken": False}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.34", strict=True)
