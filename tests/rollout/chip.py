"""A change of chip: the dev assistant running on its GPU pool first, with Trainium as an allowed target, and
a new version built for Trainium (the registry recorded it fits the `trainium` pool)."""

from __future__ import annotations

import yaml

from rollout.contract import TrackPlacement
from rollout.kube.deployments import placement_change, running_placement
from stacks.config.environment import EnvironmentConfig, config_path_for, parse_config
from stacks.rollout.settings import rollout_target
from tessera_shared.constants import GPU_RESOURCE, SERVICE_LABEL, TRACK_LABEL
from tests.rollout.harness import NAMESPACE, NEW_VERSION, STABLE_VERSION, RolloutWorld

GPU_POOL = "gpu"
TRAINIUM_POOL = "trainium"
VERSION_POOLS = {STABLE_VERSION: GPU_POOL, NEW_VERSION: TRAINIUM_POOL}


def gpu_first_config(*, trainium_nodes: int = 6) -> EnvironmentConfig:
    """dev with the assistant on an L4 GPU and allowed on Trainium; the Trainium pool may grow to
    `trainium_nodes` trn1.2xlarge nodes (one 2-core pod each)."""
    data = yaml.safe_load(config_path_for("dev").read_text())
    assistant = next(service for service in data["services"] if service["name"] == "assistant")
    assistant["accelerator"] = {"type": "gpu", "gpus": 1, "pool": GPU_POOL}
    assistant["image"] = {"repository": assistant["image"]["repository"], "tag": "vllm-0.16.0-cuda12.8"}
    assistant["alternative_accelerators"] = [
        {"type": "trainium", "neuron_cores": 2, "image_tag": "vllm-0.16.0-neuronx-sdk2.31.1", "neuron_sdk": "2.31.1"}
    ]
    trainium = next(pool for pool in data["cluster"]["accelerator_pools"] if pool["name"] == TRAINIUM_POOL)
    trainium["max_nodes"] = trainium_nodes
    return parse_config(data, source="gpu-first dev")


def target_placement_of(config: EnvironmentConfig, pool: str) -> TrackPlacement:
    placed = next(placed for placed in config.placed_services if placed.name == "assistant")
    target = next(target for target in placed.targets if target.name == pool)
    return rollout_target(placed.spec, target).placement


def place_tracks(world: RolloutWorld, pool: str) -> None:
    """Both Deployments run where the first deploy put them (the service's current target)."""
    change = placement_change(target_placement_of(world.config, pool))
    for track in ("stable", "canary"):
        world.kube.update(NAMESPACE, f"assistant-{track}", change)


def pool_of(world: RolloutWorld, track: str) -> TrackPlacement:
    return running_placement(world.kube.deployment(NAMESPACE, f"assistant-{track}"))


# Allocatable resources as the device plugins and kubelet report them (the instance table's counts; CPU less
# the kubelet's reservation).
G6_2XLARGE = {"cpu": "7910m", "memory": "29Gi", "nvidia.com/gpu": "1"}
TRN1_2XLARGE = {"cpu": "7910m", "memory": "29Gi", "aws.amazon.com/neuron": "1", "aws.amazon.com/neuroncore": "2"}


def run_track_pods(
    world: RolloutWorld,
    track: str,
    *,
    instance_type: str,
    allocatable: dict[str, str],
    pods: int,
    accelerators: dict[str, str] | None = None,
) -> None:
    """`pods` pods of the track, each alone on an on-demand node of `instance_type`, requesting the accelerators
    the track's Deployment asks for now unless given (the double runs no scheduler: the pods stand for what it
    would have placed)."""
    wanted = pool_of(world, track).resources if accelerators is None else accelerators
    requests = {"cpu": "6", "memory": "24Gi", **wanted}
    for index in range(pods):
        node = f"{track}-{instance_type}-{index}"
        world.kube.add_node(node, instance_type=instance_type, capacity_type="on-demand", allocatable=allocatable)
        world.kube.add_pod(
            NAMESPACE,
            f"assistant-{track}-{index}",
            labels={SERVICE_LABEL: "assistant", TRACK_LABEL: track},
            node=node,
            requests=requests,
        )


def seat_tracks_for_the_move(world: RolloutWorld) -> None:
    """Stable's pods each on a g6.2xlarge (one L4 GPU each), the canary's on a trn1.2xlarge, as Karpenter would
    launch them for the GPU and Trainium placements."""
    run_track_pods(
        world, "stable", instance_type="g6.2xlarge", allocatable=G6_2XLARGE, pods=2, accelerators={GPU_RESOURCE: "1"}
    )
    neuron = {"aws.amazon.com/neuron": "1"}  # the Trainium target's placement requests one Neuron device
    run_track_pods(world, "canary", instance_type="trn1.2xlarge", allocatable=TRN1_2XLARGE, pods=1, accelerators=neuron)
