"""One owner of the running version (case 11): the track owner custom resource applies a service's
Deployments and stable autoscaler so that a `cdk deploy` after a promotion keeps the promoted version,
and a deploy during a rollout leaves the canary and stable's floor as the rollout set them. The
handler runs as CloudFormation's provider framework would call it, against the Kubernetes API double."""

from __future__ import annotations

import json

import pytest

from rollout import track_owner
from rollout.image_digests import ecr_resolver
from rollout.kube.client import DEPLOYMENTS
from stacks.config.environment import EnvironmentConfig
from stacks.services.kubernetes_objects import service_objects
from stacks.services.placement import placement_for
from stacks.services.render_inputs import DeployTimeValues, ServiceNetwork
from stacks.services.service_resources import ENGINE_OWNED_KINDS
from tessera_shared.constants import image_repository_variable
from tests.deploy.cloudformation_double import cloudformation_strings
from tests.rollout.harness import ACCOUNT, NAMESPACE, NEW_VERSION, REGION, STABLE_VERSION, RolloutWorld
from tests.rollout.scenarios import Rollouts

# The track owner's environment, as the Services stack sets it: the assistant's image repository.
ENVIRONMENT = {
    image_repository_variable("assistant"): f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/tessera/dev/assistant"
}


def rendered(config: EnvironmentConfig, *, env: dict[str, str] | None = None) -> list[dict]:
    """The assistant's engine-owned objects as the Services stack renders them (deploy-time values filled)."""
    placed = next(p for p in config.placed_services if p.name == "assistant")
    spec = placed.spec if env is None else placed.spec.model_copy(update={"env": env})
    objects = service_objects(
        spec,
        placement=placement_for(spec, placed.pool),
        values=DeployTimeValues(
            image_uri=f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/tessera/dev/assistant:img-{STABLE_VERSION}",
            model_bucket="models-bucket",
            target_group_arns={"stable": "tg-stable", "canary": "tg-canary"},
            network=ServiceNetwork(
                vpc_cidr="10.40.0.0/16",
                load_balancer_cidrs=["10.40.128.0/26"],
                endpoint_cidrs=["10.40.128.192/26"],
                internal_ports={"embeddings": 8080},
            ),
            region=REGION,
            cluster_name="tessera-dev",
            stable_target_group_dimension="targetgroup/assistant-stable/0123456789abcdef",
            load_balancer_dimension="app/tessera-dev/0123456789abcdef",
        ),
        drain_seconds=30,
    )
    owned = [obj for obj in objects if obj["kind"] in ENGINE_OWNED_KINDS]
    for obj in owned:  # the config's initial version is the one the harness's registry knows as stable
        if obj["kind"] == "Deployment":
            for entry in obj["spec"]["template"]["spec"]["containers"][0]["env"]:
                if entry["name"] == "MODEL_VERSION":
                    entry["value"] = STABLE_VERSION
            obj["spec"]["template"]["metadata"]["labels"]["tessera.dev/model-version"] = STABLE_VERSION
    return owned


def _stable_autoscaler(rollouts: Rollouts) -> dict:
    """The stable autoscaler the config renders: a KEDA ScaledObject for the assistant in dev, else an HPA."""
    [scaler] = [obj for obj in rendered(rollouts.world.config) if obj["kind"] in track_owner.FLOOR_FIELDS]
    return scaler


def properties(objects: list[dict]) -> dict:
    """The resource's properties as CloudFormation sends them (the objects as one JSON string)."""
    return cloudformation_strings({"Namespace": NAMESPACE, "Service": "assistant", "Objects": json.dumps(objects)})


def deploy(rollouts: Rollouts, objects: list[dict], request: str) -> dict:
    """A Create, Update (from the first deploy's objects) or Delete, as the provider framework passes it on."""
    return deploy_tracks(rollouts.world, objects, request)


def deploy_tracks(world: RolloutWorld, objects: list[dict], request: str) -> dict:
    event = {"RequestType": request, "ResourceProperties": properties(objects)}
    if request == "Update":
        event["OldResourceProperties"] = properties(rendered(world.config))
    images = ecr_resolver(world.clients.ecr)
    return track_owner.on_event(event, world.clients.kube, world.clients.ledger, ENVIRONMENT, images=images)


def first_deploy(world: RolloutWorld) -> None:
    """A first deploy through the track owner (instead of the harness's hand-made objects)."""
    kube = world.clients.kube
    for name in ("assistant-stable", "assistant-canary"):
        kube.delete(DEPLOYMENTS, NAMESPACE, name)
    [scaler] = [obj for obj in rendered(world.config) if obj["kind"] in track_owner.FLOOR_FIELDS]
    kube.delete(track_owner.KINDS[scaler["kind"]], NAMESPACE, "assistant-stable")
    deploy_tracks(world, rendered(world.config), "Create")
    world.kube.scale_as_autoscaler(NAMESPACE, "assistant-stable", 2)


@pytest.fixture
def deployed(rollouts: Rollouts) -> Rollouts:
    first_deploy(rollouts.world)
    return rollouts


def test_a_deploy_after_a_promotion_keeps_the_promoted_version(deployed: Rollouts) -> None:
    world = deployed.world
    assert deployed.start()["status"] == "SUCCEEDED"
    assert world.deployed_version("stable") == NEW_VERSION
    promoted_image = world.deployed_image("stable")

    deploy(deployed, rendered(world.config, env={"LOG_LEVEL": "debug"}), "Update")  # an unrelated config change

    stable = world.kube.deployment(NAMESPACE, "assistant-stable")
    [server] = stable["spec"]["template"]["spec"]["containers"]
    assert world.deployed_version("stable") == NEW_VERSION
    assert server["image"] == promoted_image
    assert {"name": "LOG_LEVEL", "value": "debug"} in server["env"]  # config's change did land
    assert stable["spec"]["replicas"] == 2  # the autoscaler's size, not the API default
    assert world.canary_replicas() == 0


def test_a_deploy_during_a_rollout_leaves_the_canary_and_the_floor_alone(deployed: Rollouts) -> None:
    world = deployed.world
    world.pause_before("judge_interval")
    running = deployed.begin()
    world.wait_until_paused()
    canary_before = world.kube.deployment(NAMESPACE, "assistant-canary")
    floor_before = world.kube.autoscaler_floor(NAMESPACE, "assistant-stable")

    result = deploy(deployed, rendered(world.config, env={"LOG_LEVEL": "debug"}), "Update")

    canary = world.kube.deployment(NAMESPACE, "assistant-canary")
    assert canary["spec"] == canary_before["spec"]
    assert world.kube.autoscaler_floor(NAMESPACE, "assistant-stable") == floor_before == 2
    assert "assistant-canary" not in result["Data"]["Applied"]
    world.resume()
    ended = deployed.wait(running["executionArn"])
    assert ended["status"] == "SUCCEEDED"
    deployed.assert_invariants(ended)


def test_delete_removes_the_track_objects(deployed: Rollouts) -> None:
    deploy(deployed, rendered(deployed.world.config), "Delete")
    kube = deployed.world.clients.kube
    assert kube.find(DEPLOYMENTS, NAMESPACE, "assistant-stable") is None
    assert kube.find(DEPLOYMENTS, NAMESPACE, "assistant-canary") is None
    scaler = track_owner.KINDS[_stable_autoscaler(deployed)["kind"]]
    assert kube.find(scaler, NAMESPACE, "assistant-stable") is None


def test_merge_rules() -> None:
    stable = {
        "kind": "Deployment",
        "metadata": {"name": "s", "labels": {"tessera.dev/track": "stable"}},
        "spec": {
            "template": {
                "metadata": {"labels": {"tessera.dev/model-version": "old"}},
                "spec": {
                    "containers": [
                        {"name": "server", "image": "img:old", "env": [{"name": "MODEL_VERSION", "value": "old"}]}
                    ]
                },
            }
        },
    }
    running = {
        "spec": {
            "replicas": 3,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "image": "img@sha256:new",
                            "env": [{"name": "MODEL_VERSION", "value": "new"}],
                        }
                    ]
                }
            },
        }
    }
    merged = track_owner.merged(stable, running, rollout_running=False)
    assert merged["spec"]["replicas"] == 3
    assert merged["spec"]["template"]["spec"]["containers"][0]["image"] == "img@sha256:new"
    assert merged["spec"]["template"]["metadata"]["labels"]["tessera.dev/model-version"] == "new"
    assert track_owner.merged(stable, None, rollout_running=True) == stable
    canary = {**stable, "metadata": {"name": "c", "labels": {"tessera.dev/track": "canary"}}}
    assert track_owner.merged(canary, running, rollout_running=True) is None
