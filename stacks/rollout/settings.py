"""A service's rollout settings: what the Prepare step reads (from SSM) to plan a rollout.

Pure: the Rollout stack passes CloudFormation references for the ARNs, tests pass real ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks.config.environment import PlacedService
from stacks.services.kubernetes_objects import NAMESPACE, track_name


@dataclass(frozen=True)
class RoutingArns:
    rule: str
    stable_target_group: str
    canary_target_group: str
    load_balancer: str


def rollout_settings(placed: PlacedService, *, routing: RoutingArns, image_registry: str, model_bucket: str) -> dict:
    service, pool = placed.spec, placed.pool
    policy = service.rollout
    return {
        "service": service.name,
        "namespace": NAMESPACE,
        "stable_deployment": track_name(service, "stable"),
        "canary_deployment": track_name(service, "canary"),
        "rule_arn": routing.rule,
        "stable_target_group": routing.stable_target_group,
        "canary_target_group": routing.canary_target_group,
        "load_balancer": routing.load_balancer,
        "image_repository_uri": f"{image_registry}/{service.image.repository}",
        "model_bucket": model_bucket,
        "model_prefix": service.model_prefix,
        # A new pod may take the whole model-load allowance, plus scheduling and a node scale-up.
        "ready_timeout_seconds": service.startup_allowance_minutes * 60 + 300,
        # The pool's Karpenter limits and types, for the preflight's capacity check (lambda/rollout/capacity.py).
        "pool": (
            {
                "name": pool.name,
                "max_nodes": pool.max_nodes,
                "max_neuron_cores": pool.max_neuron_cores,
                "cores_per_pod": service.accelerator.neuron_cores,
                "instance_types": [
                    {"name": spec.name, "cores": spec.cores, "devices": spec.chips} for spec in pool.instance_specs
                ],
            }
            if pool
            else None
        ),
        "policy": {
            "steps": policy.weights,
            "warmup_seconds": policy.warmup_minutes * 60,
            "bake_seconds": policy.bake_minutes * 60,
            "manual_approval": policy.manual_approval,
            "approval_timeout_seconds": policy.approval_timeout_minutes * 60,
            "analysis": policy.analysis.model_dump(),
        },
    }
