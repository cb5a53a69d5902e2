"""The preflight's capacity arithmetic (lambda/rollout/capacity.py) over a pool's Karpenter limits."""

from __future__ import annotations

from rollout.capacity import max_pods, pool_fit
from rollout.contract import PoolCapacity
from stacks.config.environment import config_path_for, load_config
from stacks.rollout.settings import RoutingArns, rollout_settings

ROUTING = RoutingArns(rule="rule", stable_target_group="stable", canary_target_group="canary", load_balancer="lb")


def _pool(environment: str, service: str) -> PoolCapacity:
    config = load_config(config_path_for(environment))
    placed = next(p for p in config.placed_services if p.name == service)
    pool = rollout_settings(
        placed, environment="dev", routing=ROUTING, image_registry="registry", model_bucket="bucket"
    ).pool
    assert pool is not None
    return pool


def test_settings_carry_the_pools_karpenter_limits_and_types() -> None:
    pool = _pool("prod", "embeddings").to_json()
    assert pool["max_nodes"] == 20
    assert pool["accelerator_limit"] == 320
    assert pool["unit"] == "NeuronCore"
    assert pool["instance_types"] == [
        {"name": "inf2.24xlarge", "accelerators": 12},
        {"name": "inf2.48xlarge", "accelerators": 24},
    ]
    assert pool["per_pod"] == 1


def test_mixed_sizes_count_the_type_that_holds_the_most_pods() -> None:
    """Issue 12 case 5: not max nodes x the smallest type's cores. 20 nodes of inf2.48xlarge would be 480
    cores, but the 320-core limit allows 13 of them (312 one-core pods); 20 inf2.24xlarge hold 240."""
    assert max_pods(_pod_pool(max_nodes=20, max_cores=320, cores_per_pod=1)) == 312


def _pod_pool(*, max_nodes: int, max_cores: int | None, cores_per_pod: int) -> PoolCapacity:
    return PoolCapacity.from_json(
        {
            "name": "inferentia",
            "max_nodes": max_nodes,
            "accelerator_limit": max_cores,
            "per_pod": cores_per_pod,
            "instance_types": [
                {"name": "inf2.24xlarge", "accelerators": 12},
                {"name": "inf2.48xlarge", "accelerators": 24},
            ],
        }
    )


def test_pods_never_span_nodes() -> None:
    # 5-core pods: 2 per inf2.24xlarge, 4 per inf2.48xlarge; 3 nodes of the larger type hold 12.
    assert max_pods(_pod_pool(max_nodes=3, max_cores=None, cores_per_pod=5)) == 12
    # A pod larger than every type fits nowhere.
    assert max_pods(_pod_pool(max_nodes=3, max_cores=None, cores_per_pod=32)) == 0


def test_fit_reports_its_evidence() -> None:
    fit = pool_fit(_pool("dev", "assistant"), pods=5)
    assert not fit.fits
    assert fit.evidence == {"neuron_cores_needed": 10, "neuron_cores_in_pool": 8, "pods_in_pool": 4}
    assert fit.shortfall == "need 10 NeuronCores, the pool has at most 8"
    assert pool_fit(_pool("dev", "assistant"), pods=4).fits
