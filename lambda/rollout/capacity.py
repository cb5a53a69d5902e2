"""How many of a service's pods its accelerator pool can hold, from the pool's Karpenter limits.

Pure arithmetic over the pool of a service's rollout settings (rollout.contract.PoolCapacity, rendered
by stacks/rollout/settings.py).

Karpenter may launch any of the pool's types, up to `max_nodes` nodes and (when set) `accelerator_limit`
accelerators in total, counted in the pool's unit (NeuronCores, or GPUs on a GPU pool). The most
pods the pool can hold is the best case over its types: whole pods per node (a pod never spans nodes)
times the nodes the limits allow. Other services on the same pool are
not counted: this answers "can it ever fit", not "is there room now".
"""

from __future__ import annotations

from dataclasses import dataclass

from rollout.contract import PoolCapacity


@dataclass(frozen=True)
class PoolFit:
    pods: int
    cores_per_pod: int
    max_pods: int
    unit: str = "NeuronCore"

    @property
    def fits(self) -> bool:
        return self.pods <= self.max_pods

    @property
    def cores_needed(self) -> int:
        return self.pods * self.cores_per_pod

    @property
    def cores_usable(self) -> int:
        return self.max_pods * self.cores_per_pod

    @property
    def evidence(self) -> dict[str, int]:
        key = "gpus" if self.unit == "GPU" else "neuron_cores"
        return {f"{key}_needed": self.cores_needed, f"{key}_in_pool": self.cores_usable, "pods_in_pool": self.max_pods}

    @property
    def shortfall(self) -> str:
        return f"need {self.cores_needed} {self.unit}s, the pool has at most {self.cores_usable}"


def max_pods(pool: PoolCapacity) -> int:
    """The most pods of `per_pod` accelerators the pool's limits allow, over its instance types."""
    best = 0
    for instance in pool.instance_types:
        nodes = pool.max_nodes
        if pool.accelerator_limit is not None:
            nodes = min(nodes, pool.accelerator_limit // instance.accelerators)
        best = max(best, nodes * (instance.accelerators // pool.per_pod))
    return best


def pool_fit(pool: PoolCapacity, *, pods: int) -> PoolFit:
    return PoolFit(pods=pods, cores_per_pod=pool.per_pod, max_pods=max_pods(pool), unit=pool.unit)
