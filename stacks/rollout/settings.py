"""A service's rollout settings: what the Prepare step reads (from SSM) to plan a rollout, built as the
rollout contract's ServiceSettings so that both sides agree on every field.

Pure: the Rollout stack passes CloudFormation references for the ARNs, tests pass real ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from rollout.contract import InstanceCapacity, PoolCapacity, ServiceSettings
from stacks.config.environment import PlacedService
from stacks.observability.names import service_alarm_names
from stacks.services.kubernetes_objects import track_name
from tessera_shared.constants import HPA_KIND, NAMESPACE, SCALED_OBJECT_KIND


@dataclass(frozen=True)
class RoutingArns:
    rule: str
    stable_target_group: str
    canary_target_group: str
    load_balancer: str


def rollout_settings(
    placed: PlacedService, *, environment: str, routing: RoutingArns, image_registry: str, model_bucket: str
) -> ServiceSettings:
    service, pool = placed.spec, placed.pool
    policy = service.rollout
    return ServiceSettings(
        service=service.name,
        namespace=NAMESPACE,
        stable_deployment=track_name(service, "stable"),
        canary_deployment=track_name(service, "canary"),
        stable_autoscaler=track_name(service, "stable"),
        stable_autoscaler_kind=SCALED_OBJECT_KIND if service.scaling else HPA_KIND,
        rule_arn=routing.rule,
        stable_target_group=routing.stable_target_group,
        canary_target_group=routing.canary_target_group,
        load_balancer=routing.load_balancer,
        image_repository_uri=f"{image_registry}/{service.image.repository}",
        model_bucket=model_bucket,
        model_prefix=service.model_prefix,
        # The pool's Karpenter limits and types, for the preflight's capacity check (lambda/rollout/capacity.py).
        pool=PoolCapacity(
            name=pool.name,
            max_nodes=pool.max_nodes,
            max_neuron_cores=pool.max_neuron_cores,
            cores_per_pod=service.accelerator.neuron_cores,
            instance_types=[
                InstanceCapacity(name=spec.name, cores=spec.cores, devices=spec.chips) for spec in pool.instance_specs
            ],
        )
        if pool
        else None,
        policy=policy.as_contract(ready_timeout_seconds=service.ready_timeout_seconds),
        # The service's composite alarm (Observability stack), watched unless the policy opts out.
        service_alarm=service_alarm_names(environment, service.name).composite if policy.watch_service_alarms else None,
    )
