"""A change of chip: the dev assistant running on its GPU pool first, with Trainium as an allowed target, and
a new version built for Trainium (the registry recorded it fits the `trainium` pool)."""

from __future__ import annotations

import yaml

from rollout.contract import TrackPlacement
from rollout.kube import placement_change, running_placement
from stacks.config.environment import EnvironmentConfig, config_path_for, parse_config
from stacks.rollout.settings import rollout_target
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
