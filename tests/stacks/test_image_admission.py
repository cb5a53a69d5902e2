"""Issue 21, problem 11: in `inference`, only images of this environment's service repositories run, and only by
digest. The ValidatingAdmissionPolicy's CEL is evaluated here with cel-python as the API server evaluates it (the
same CEL language and functions: has, all, exists, filter, map, startsWith, matches), for pods as Tessera renders
them and as someone else might create them."""

from __future__ import annotations

import copy
from typing import Any

import celpy
import kubernetes_validate
import pytest

from stacks.config.environment import EnvironmentConfig, config_path_for, load_config
from stacks.services.admission import POLICY_NAME, image_admission_objects
from tests.synth import SynthesizedEnvironment

REGISTRY = "111122223333.dkr.ecr.eu-west-1.amazonaws.com"
REPOSITORIES = [f"{REGISTRY}/tessera/dev/assistant", f"{REGISTRY}/tessera/dev/gateway"]
DIGEST = "sha256:" + "ab" * 32
ASSISTANT = f"{REGISTRY}/tessera/dev/assistant@{DIGEST}"


def _join(items: Any, separator: Any) -> celpy.celtypes.StringType:
    """Kubernetes' CEL string library's `<list<string>>.join(<string>)`, which cel-python leaves out."""
    return celpy.celtypes.StringType(str(separator).join(str(item) for item in items))


def _evaluate(expression: str, activation: dict) -> Any:
    environment = celpy.Environment()
    return environment.program(environment.compile(expression), functions={"join": _join}).evaluate(activation)


def admit(pod: dict) -> tuple[bool, str]:
    """The policy's verdict on a pod, and its message when it refuses."""
    policy, _ = image_admission_objects(REPOSITORIES)
    spec = policy["spec"]
    [variable] = spec["variables"]
    repositories = _evaluate(variable["expression"], {})
    activation = {
        "object": celpy.json_to_cel(pod),
        "variables": celpy.json_to_cel({"repositories": list(repositories)}),
    }
    [validation] = spec["validations"]
    admitted = bool(_evaluate(validation["expression"], activation))
    return admitted, "" if admitted else str(_evaluate(validation["messageExpression"], activation))


def pod(containers: list[str], init: list[str] | None = None, ephemeral: list[str] | None = None) -> dict:
    spec: dict = {"containers": [{"name": f"c{i}", "image": image} for i, image in enumerate(containers)]}
    if init is not None:
        spec["initContainers"] = [{"name": f"i{i}", "image": image} for i, image in enumerate(init)]
    if ephemeral is not None:
        spec["ephemeralContainers"] = [{"name": f"e{i}", "image": image} for i, image in enumerate(ephemeral)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "inference"}, "spec": spec}


def test_a_tessera_pod_by_digest_is_admitted() -> None:
    assert admit(pod([ASSISTANT], init=[ASSISTANT])) == (True, "")


@pytest.mark.parametrize(
    ("candidate", "refused"),
    [
        (pod([f"{REGISTRY}/tessera/dev/assistant:latest"]), f"{REGISTRY}/tessera/dev/assistant:latest"),
        (pod([f"docker.io/library/python@{DIGEST}"]), f"docker.io/library/python@{DIGEST}"),
        (pod([f"{REGISTRY}/tessera/dev/assistant-evil@{DIGEST}"]), f"{REGISTRY}/tessera/dev/assistant-evil@{DIGEST}"),
        (pod([f"{REGISTRY}/tessera/prod/assistant@{DIGEST}"]), f"{REGISTRY}/tessera/prod/assistant@{DIGEST}"),
        (pod([ASSISTANT], init=["busybox:1.36"]), "busybox:1.36"),
        (pod([ASSISTANT], ephemeral=["nicolaka/netshoot"]), "nicolaka/netshoot"),
        (pod([f"{ASSISTANT}x"]), f"{ASSISTANT}x"),
    ],
    ids=["tag", "other-registry", "prefix-sharing-repository", "other-environment", "init", "ephemeral", "bad-digest"],
)
def test_other_images_and_tags_are_refused_by_name(candidate: dict, refused: str) -> None:
    admitted, message = admit(candidate)
    assert not admitted
    assert message.endswith(f"refused: {refused}")


def test_the_policy_and_binding_are_valid_for_the_cluster_version() -> None:
    config: EnvironmentConfig = load_config(config_path_for("dev"))
    for obj in image_admission_objects(REPOSITORIES):
        kubernetes_validate.validate(copy.deepcopy(obj), config.cluster.kubernetes_version, strict=True)


def test_the_binding_denies_in_the_inference_namespace_only() -> None:
    _, binding = image_admission_objects(REPOSITORIES)
    assert binding["spec"] == {
        "policyName": POLICY_NAME,
        "validationActions": ["Deny"],
        "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "inference"}}},
    }


def test_the_services_stack_installs_the_policy_before_any_service_runs(dev: SynthesizedEnvironment) -> None:
    resources = dev.template_json("Services")["Resources"]
    [admission_id] = [
        name
        for name, resource in resources.items()
        if resource["Type"] == "Custom::AWSCDK-EKS-KubernetesResource" and POLICY_NAME in str(resource["Properties"])
    ]
    tracks = [r for r in resources.values() if r["Type"] == "Custom::TesseraServiceTracks"]
    assert tracks
    for resource in tracks:
        assert admission_id in resource.get("DependsOn", [])
    text = str(resources[admission_id]["Properties"])
    for repository in ("tessera/dev/assistant", "tessera/dev/embeddings", "tessera/dev/gateway"):
        assert repository in text
