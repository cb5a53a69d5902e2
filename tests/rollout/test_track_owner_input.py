"""Issue 20, sequence 14 (item 11), the track owner's half: its function may be invoked by anyone allowed
`lambda:InvokeFunction`, not only by CloudFormation, so it applies only its own service's track objects: the
kinds Deployment, HorizontalPodAutoscaler and ScaledObject, the names `<service>-stable` / `<service>-canary`,
the service's labels (on the object, its pods and its selector), the service's own account, autoscalers of the
service's stable Deployment, and images from the service's own ECR repository, which the function's environment
names (set by the Services stack, out of any event's reach). Anything else is refused, naming the object and
the field, before the first write. Properties arrive as CloudFormation sends them: every scalar a string."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable

import pytest

from rollout import track_owner
from rollout.image_digests import ecr_resolver
from rollout.kube.client import DEPLOYMENTS
from tessera_shared.constants import image_repository_variable
from tests.deploy.cloudformation_double import cloudformation_strings
from tests.rollout.harness import ACCOUNT, NAMESPACE, REGION, STABLE_VERSION, RolloutWorld
from tests.rollout.test_track_owner import rendered

REPOSITORY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/tessera/dev/assistant"
ENVIRONMENT = {image_repository_variable("assistant"): REPOSITORY}
STABLE, CANARY, SCALER = 0, 1, 2  # the rendered objects, in order


def event(objects: object, request: str = "Create", **properties: str) -> dict:
    def props(objs: object) -> dict:
        text = objs if isinstance(objs, str) else json.dumps(objs)
        return cloudformation_strings({"Namespace": NAMESPACE, "Service": "assistant", "Objects": text, **properties})

    sent = {"RequestType": request, "ResourceProperties": props(objects)}
    if request == "Update":
        sent["OldResourceProperties"] = props(objects)
    return sent


def apply(world: RolloutWorld, sent: dict, environment: dict[str, str] = ENVIRONMENT) -> dict:
    images = ecr_resolver(world.clients.ecr)
    return track_owner.on_event(sent, world.clients.kube, world.clients.ledger, environment, images=images)


@pytest.fixture
def objects(world: RolloutWorld) -> list[dict]:
    """The assistant's rendered track objects, none applied yet, and another service's Deployment that nothing
    here may touch."""
    kube = world.clients.kube
    found = rendered(world.config)
    for obj in found:
        kube.delete(track_owner.KINDS[obj["kind"]], NAMESPACE, obj["metadata"]["name"])
    world.kube.add_deployment(NAMESPACE, "gateway-stable", replicas=2, env={"MODEL_VERSION": "1"})
    assert [(obj["kind"], obj["metadata"]["name"]) for obj in found] == [
        ("Deployment", "assistant-stable"),
        ("Deployment", "assistant-canary"),
        ("ScaledObject", "assistant-stable"),
    ]
    return found


def state(world: RolloutWorld) -> list[dict | None]:
    kube = world.clients.kube
    names = ("assistant-stable", "assistant-canary", "gateway-stable")
    return [kube.find(DEPLOYMENTS, NAMESPACE, name) for name in names]


def pod(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


def set_path(*path: str | int, value: object) -> Callable[[list[dict]], None]:
    def change(objs: list[dict]) -> None:
        target: dict | list = objs
        for key in path[:-1]:
            target = target[key]  # type: ignore[index]
        target[path[-1]] = value  # type: ignore[index]

    return change


FOREIGN = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/tessera/dev/gateway:1.4.2"
HOSTILE = [
    pytest.param(
        set_path(STABLE, "metadata", "name", value="gateway-stable"),
        r"Objects\[0\] Deployment 'gateway-stable': metadata\.name: expected one of",
        id="another-services-name",
    ),
    pytest.param(
        set_path(SCALER, "kind", value="ClusterRoleBinding"),
        r"Objects\[2\]\.kind: expected one of",
        id="another-kind",
    ),
    pytest.param(
        set_path(STABLE, "metadata", "labels", "tessera.dev/service", value="gateway"),
        r"Deployment 'assistant-stable': metadata\.labels\.tessera\.dev/service: expected 'assistant'",
        id="another-services-label",
    ),
    pytest.param(
        set_path(CANARY, "spec", "template", "metadata", "labels", "tessera.dev/service", value="gateway"),
        r"'assistant-canary': spec\.template\.metadata\.labels\.tessera\.dev/service: expected 'assistant'",
        id="pods-of-another-service",
    ),
    pytest.param(
        set_path(CANARY, "spec", "selector", "matchLabels", "tessera.dev/track", value="stable"),
        r"'assistant-canary': spec\.selector\.matchLabels\.tessera\.dev/track: expected 'canary'",
        id="canary-pods-behind-stable",
    ),
    pytest.param(
        set_path(STABLE, "spec", "template", "spec", "containers", 0, "image", value="evil.example.com/miner:latest"),
        r"'assistant-stable': spec\.template\.spec\.containers\[0\]\.image: .*not from .*tessera/dev/assistant",
        id="another-registry",
    ),
    pytest.param(
        set_path(STABLE, "spec", "template", "spec", "containers", 0, "image", value=FOREIGN),
        r"containers\[0\]\.image: '[^']*tessera/dev/gateway:1\.4\.2' is not from",
        id="another-services-repository",
    ),
    pytest.param(
        set_path(STABLE, "spec", "template", "spec", "containers", 0, "image", value=f"{REPOSITORY}-evil:1"),
        r"containers\[0\]\.image: .* is not from",
        id="a-repository-sharing-the-prefix",
    ),
    pytest.param(
        lambda objs: pod(objs[CANARY]).setdefault("initContainers", []).append({"name": "x", "image": FOREIGN}),
        r"'assistant-canary': spec\.template\.spec\.initContainers\[1\]\.image",
        id="an-init-container",
    ),
    pytest.param(
        set_path(STABLE, "spec", "template", "spec", "serviceAccountName", value="gateway"),
        r"'assistant-stable': spec\.template\.spec\.serviceAccountName: expected 'assistant'",
        id="another-services-identity",
    ),
    pytest.param(
        set_path(SCALER, "spec", "scaleTargetRef", "name", value="gateway-stable"),
        r"ScaledObject 'assistant-stable': spec\.scaleTargetRef\.name: expected 'assistant-stable'",
        id="scaling-another-deployment",
    ),
    pytest.param(
        set_path(STABLE, "metadata", "namespace", value="kube-system"),
        r"'assistant-stable': metadata\.namespace: expected 'inference'",
        id="another-namespace",
    ),
    pytest.param(
        set_path(STABLE, "metadata", "labels", value=["tessera.dev/service=assistant"]),
        r"'assistant-stable': metadata\.labels: expected an object",
        id="labels-of-the-wrong-type",
    ),
    pytest.param(
        set_path(CANARY, "spec", "template", "spec", "containers", value="server"),
        r"'assistant-canary': spec\.template\.spec\.containers: expected a list",
        id="containers-of-the-wrong-type",
    ),
    pytest.param(
        set_path(CANARY, "spec", "template", "spec", "containers", 0, "image", value=12),
        r"containers\[0\]\.image: expected a string, got 12",
        id="an-image-of-the-wrong-type",
    ),
    pytest.param(
        set_path(STABLE, "metadata", "name", value="a" * 10_000),
        r"Deployment 'a+\.\.\. \(10002 characters\): metadata\.name: expected one of",
        id="a-long-name",
    ),
]


@pytest.mark.parametrize(("change", "message"), HOSTILE)
@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_objects_of_another_service_are_refused_before_any_write(
    world: RolloutWorld, objects: list[dict], change: Callable[[list[dict]], None], message: str, request_type: str
) -> None:
    hostile = copy.deepcopy(objects)
    hostile[STABLE]["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "LOG_LEVEL", "value": "x"})
    change(hostile)
    before = state(world)
    with pytest.raises(ValueError, match=message):
        apply(world, event(hostile, request_type))
    assert state(world) == before  # not even the valid objects before the bad one were written


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"Namespace": "kube-system"}, r"ResourceProperties\.Namespace: expected 'inference', got 'kube-system'"),
        ({"Service": "gateway"}, r"Objects\[0\] Deployment 'assistant-stable': metadata\.name: expected one of"),
        ({"Service": "x" * 5000}, r"ResourceProperties\.Service: .*\(5002 characters\) is not a service name"),
        ({"Service": "painter"}, r"service 'painter' has no image repository in the track owner's environment"),
    ],
)
def test_properties_that_are_not_this_environments_service_are_refused(
    world: RolloutWorld, objects: list[dict], properties: dict[str, str], message: str
) -> None:
    both = {**ENVIRONMENT, image_repository_variable("gateway"): FOREIGN.rsplit(":", 1)[0]}
    before = state(world)
    with pytest.raises(ValueError, match=message):
        apply(world, event(objects, "Create", **properties), both)
    assert state(world) == before


def test_a_delete_names_only_its_own_services_objects(world: RolloutWorld, objects: list[dict]) -> None:
    apply(world, event(objects))
    foreign = copy.deepcopy(objects)
    foreign[STABLE]["metadata"]["name"] = "gateway-stable"
    before = state(world)
    with pytest.raises(ValueError, match=r"Objects\[0\] Deployment 'gateway-stable': metadata\.name"):
        apply(world, event(foreign, "Delete"))
    assert state(world) == before


def test_an_update_deletes_only_its_own_services_objects(world: RolloutWorld, objects: list[dict]) -> None:
    """What config stopped rendering is deleted by the names in OldResourceProperties: they must be the service's."""
    apply(world, event(objects))
    sent = event(objects, "Update")
    old = copy.deepcopy(objects)
    old[CANARY]["metadata"]["name"] = "gateway-stable"
    sent["OldResourceProperties"]["Objects"] = json.dumps(old)
    before = state(world)
    with pytest.raises(ValueError, match=r"OldResourceProperties\.Objects\[1\] Deployment 'gateway-stable'"):
        apply(world, sent)
    assert state(world) == before


def test_the_services_own_objects_are_applied(world: RolloutWorld, objects: list[dict]) -> None:
    answer = apply(world, event(objects))
    assert answer["Data"]["Applied"] == "assistant-stable,assistant-canary,assistant-stable"
    # Rendered by tag, run by the digest ECR holds for the tag (issue 21, problem 11: no deploy by tag).
    assert world.deployed_image("canary") == f"{REPOSITORY}@{world.image_digests[STABLE_VERSION]}"


def test_an_image_tag_ecr_does_not_hold_stops_the_deploy_with_its_name(
    world: RolloutWorld, objects: list[dict]
) -> None:
    for obj in objects:
        if obj["kind"] == "Deployment":
            for container in [*pod(obj)["containers"], *pod(obj)["initContainers"]]:
                container["image"] = f"{REPOSITORY}:never-pushed"
    before = state(world)
    with pytest.raises(ValueError, match=f"image {REPOSITORY}:never-pushed does not exist in ECR"):
        apply(world, event(objects))
    assert state(world) == before
