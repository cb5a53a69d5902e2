"""Where a service's pods run and which accelerator resources they request, on each target config allows it.

Neuron pods request whole devices (`aws.amazon.com/neuron`) when their cores are a whole number of devices, one
`aws.amazon.com/neuroncore` for a single core, and only other shapes use the Neuron scheduler extension; GPU pods
request `nvidia.com/gpu` and tolerate the `nvidia.com/gpu` taint; pods on an EFA pool also request
`vpc.amazonaws.com/efa`; cpu services run on the Graviton general pool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from stacks.config.accelerator_pools import AcceleratorPool, GpuPoolConfig, NeuronPoolConfig
from stacks.config.environment import EnvironmentConfig
from stacks.config.instance_types import ACCELERATOR_INSTANCE_TYPES
from stacks.config.services import AcceleratorSpec, ServiceSpec
from tessera_shared.constants import (
    ACCELERATOR_LABEL,
    EFA_RESOURCE,
    GENERAL_POOL,
    GENERAL_POOL_ARCHITECTURE,
    GPU_RESOURCE,
    GPU_TAINT_KEY,
    NEURON_DEVICE_RESOURCE,
    NEURON_SCHEDULER_NAME,
    NEURON_TAINT_KEY,
    NEURONCORE_RESOURCE,
    POOL_LABEL,
)


@dataclass(frozen=True)
class Placement:
    """Where a service's pods may run and which accelerator resources they request."""

    node_selector: dict[str, str]
    tolerations: list[dict]
    neuron_resources: dict[str, int]  # aws.amazon.com/neuron (whole devices) or aws.amazon.com/neuroncore
    scheduler_name: str | None
    efa_interfaces: int = 0
    shm: str | None = None
    model_cache: str | None = None
    gpus: int = 0  # nvidia.com/gpu

    @property
    def accelerator_resources(self) -> dict[str, str]:
        """Every accelerator resource the serving container requests (and limits to the same amount)."""
        amounts = {name: str(count) for name, count in self.neuron_resources.items()}
        if self.gpus:
            amounts[GPU_RESOURCE] = str(self.gpus)
        if self.efa_interfaces:
            amounts[EFA_RESOURCE] = str(self.efa_interfaces)
        return amounts


def neuron_request(cores: int, pool: NeuronPoolConfig) -> tuple[dict[str, int], str | None]:
    """Whole devices when the cores are a whole number of devices, a single core as a core; only other
    shapes need the Neuron scheduler extension (for contiguous cores), whose choices Karpenter's own
    simulation cannot see (aws/karpenter-provider-aws#7265)."""
    per_device = pool.cores_per_device
    if cores % per_device == 0:
        return {NEURON_DEVICE_RESOURCE: cores // per_device}, None
    if cores == 1:
        return {NEURONCORE_RESOURCE: 1}, None
    return {NEURONCORE_RESOURCE: cores}, NEURON_SCHEDULER_NAME


def efa_request(share: int, pool: AcceleratorPool) -> int:
    """EFA interfaces in proportion to the node's accelerators (NeuronCores or GPUs) the pod takes, at least
    one, on an EFA pool."""
    if pool.efa is None:
        return 0
    interfaces = {name: ACCELERATOR_INSTANCE_TYPES[name].efa_interfaces for name in pool.instance_types}
    node = min(interfaces, key=interfaces.__getitem__)
    return max(1, math.ceil(interfaces[node] * share / pool.accelerators_per_node[node]))


def placement_for(service: ServiceSpec, pool: AcceleratorPool | None) -> Placement:
    """Where the service's pods run at first deploy (its current accelerator)."""
    return target_placement(service, service.accelerator, pool)


def target_placement(service: ServiceSpec, accelerator: AcceleratorSpec, pool: AcceleratorPool | None) -> Placement:
    """Where the service's pods run on one of its allowed targets (pool None: the Graviton general pool)."""
    resources = service.resources
    if pool is None:
        return Placement(
            node_selector={POOL_LABEL: GENERAL_POOL, "kubernetes.io/arch": GENERAL_POOL_ARCHITECTURE},
            tolerations=[],
            neuron_resources={},
            scheduler_name=None,
            shm=resources.shm,
            model_cache=resources.model_cache,
        )
    if isinstance(pool, GpuPoolConfig):
        return Placement(
            node_selector={ACCELERATOR_LABEL: pool.accelerator, POOL_LABEL: pool.name},
            tolerations=[{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
            neuron_resources={},
            scheduler_name=None,
            efa_interfaces=efa_request(accelerator.gpus, pool),
            shm=resources.shm,
            model_cache=resources.model_cache,
            gpus=accelerator.gpus,
        )
    cores = accelerator.neuron_cores
    neuron_resources, scheduler_name = neuron_request(cores, pool)
    return Placement(
        node_selector={ACCELERATOR_LABEL: pool.accelerator, POOL_LABEL: pool.name},
        tolerations=[{"key": NEURON_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
        neuron_resources=neuron_resources,
        scheduler_name=scheduler_name,
        efa_interfaces=efa_request(cores, pool),
        shm=resources.shm,
        model_cache=resources.model_cache,
    )


def needs_neuron_scheduler(config: EnvironmentConfig) -> bool:
    """Whether the cluster needs the Neuron scheduler pool: any allowed target of any service (not only where it runs
    now) whose cores take the scheduler extension, since a rollout can move a service onto it."""
    return any(
        target_placement(service, target.accelerator, target.pool).scheduler_name
        for service in config.services
        for target in config.allowed_targets(service)
    )
