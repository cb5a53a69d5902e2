"""A service's rollout settings: what the Prepare step reads (from SSM) to plan a rollout, built as the
rollout contract's ServiceSettings so that both sides agree on every field.

Pure: the Rollout stack passes CloudFormation references for the ARNs, tests pass real ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from rollout.contract import (
    InstanceCapacity,
    PoolCapacity,
    RolloutTarget,
    RuntimeMetrics,
    ServiceSettings,
    TrackPlacement,
)
from stacks.config.accelerator_pools import AcceleratorPool
from stacks.config.environment import PlacedService, ServiceTarget
from stacks.config.services import ServiceSpec
from stacks.observability.names import service_alarm_names
from stacks.services.placement import target_placement
from stacks.services.render_inputs import track_name
from tessera_shared.constants import HPA_KIND, NAMESPACE, SCALED_OBJECT_KIND


@dataclass(frozen=True)
class RoutingArns:
    rule: str
    stable_target_group: str
    canary_target_group: str
    load_balancer: str


@dataclass(frozen=True)
class PrometheusEndpoint:
    """The environment's Prometheus workspace, as the judge queries it."""

    endpoint: str  # the workspace's Prometheus endpoint: https://aps-workspaces.<region>.amazonaws.com/workspaces/<id>/
    region: str


def rollout_settings(
    placed: PlacedService,
    *,
    environment: str,
    routing: RoutingArns,
    image_registry: str,
    model_bucket: str,
    prometheus: PrometheusEndpoint | None = None,
) -> ServiceSettings:
    """`prometheus` is required for a service with `metrics` (its canary is judged on the runtime's figures)."""
    service, pool = placed.spec, placed.pool
    policy = service.rollout
    if service.metrics and prometheus is None:
        raise ValueError(f"service {service.name} has metrics: its rollout settings need the Prometheus workspace")
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
        pool=pool_capacity(pool, service.accelerator.per_pod) if pool else None,
        policy=policy.as_contract(ready_timeout_seconds=service.ready_timeout_seconds),
        # Where a version compiled for each allowed target runs (a change of chip moves the tracks there).
        targets=[rollout_target(service, target) for target in placed.targets],
        # The service's composite alarm (Observability stack), watched unless the policy opts out.
        service_alarm=service_alarm_names(environment, service.name).composite if policy.watch_service_alarms else None,
        stable_floor=service.replicas.min,
        runtime_metrics=_runtime_metrics(service, prometheus),
    )


def _runtime_metrics(service: ServiceSpec, prometheus: PrometheusEndpoint | None) -> RuntimeMetrics | None:
    if service.metrics is None or prometheus is None:
        return None
    return RuntimeMetrics(
        query_url=f"{prometheus.endpoint}api/v1/query", region=prometheus.region, runtime=service.metrics.runtime
    )


def rollout_target(service: ServiceSpec, target: ServiceTarget) -> RolloutTarget:
    placement = target_placement(service, target.accelerator, target.pool)
    pool = target.pool
    return RolloutTarget(
        name=target.name,
        accelerator=target.accelerator.type,
        placement=TrackPlacement(
            pool=target.name,
            node_selector=dict(placement.node_selector),
            tolerations=[dict(toleration) for toleration in placement.tolerations],
            resources=placement.accelerator_resources,
            scheduler_name=placement.scheduler_name,
        ),
        pool=pool_capacity(pool, target.accelerator.per_pod) if pool is not None else None,
    )


def pool_capacity(pool: AcceleratorPool, per_pod: int) -> PoolCapacity:
    """`per_pod`: a pod's accelerators in the pool's unit (NeuronCores or GPUs)."""
    return PoolCapacity(
        name=pool.name,
        max_nodes=pool.max_nodes,
        accelerator_limit=pool.accelerator_limit,
        per_pod=per_pod,
        instance_types=[
            InstanceCapacity(name=name, accelerators=count) for name, count in pool.accelerators_per_node.items()
        ],
        unit=pool.unit,
    )
