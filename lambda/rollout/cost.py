"""Cost per million requests of a service track, from where its pods run and what those nodes cost.

Each pod is charged its share of its node's hourly on-demand price: the share of the node's allocatable
accelerators it requests (NeuronCores, Neuron devices or NVIDIA GPUs) for an accelerator pod, else its
share of the node's allocatable vCPUs. The track's hourly cost is the sum over its pods; over an
interval, cost per million requests = hourly cost x hours / requests x 1e6.

What the figure is, and is not:
- The pods and nodes are a snapshot taken at the judgement, assumed to have run through the interval.
- Prices are on-demand list prices from the vendored table (tessera_shared.prices). A pod on a spot node
  is charged the on-demand price too, so the figure is an upper bound (`upper_bound`). A node in an
  on-demand capacity reservation is billed at the on-demand rate, so it is charged exactly; a capacity
  block is priced otherwise and is not told apart here.
- With no requests, no running pods, an unknown node or a missing price there is no figure (None) and a
  reason, never a made-up number.

Pure: no I/O (rollout.track_cost reads the pods and nodes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tessera_shared.constants import GPU_RESOURCE, NEURON_DEVICE_RESOURCE, NEURONCORE_RESOURCE
from tessera_shared.prices import PriceTable

# A pod is charged by the first of these it requests: cores before devices, as Tessera's pods ask for cores.
ACCELERATOR_RESOURCES = (NEURONCORE_RESOURCE, NEURON_DEVICE_RESOURCE, GPU_RESOURCE)
CPU_RESOURCE = "cpu"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
SPOT = "spot"
_FINISHED_PHASES = ("Succeeded", "Failed")
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_SUFFIX = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
_SUFFIX["Ti"] = 2**40


def quantity(value: object) -> float:
    """A Kubernetes resource quantity as a number (`500m` -> 0.5, `2` -> 2.0)."""
    match = _QUANTITY.match(str(value).strip())
    if match is None:
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


@dataclass(frozen=True)
class Node:
    name: str
    instance_type: str | None
    capacity_type: str | None
    allocatable: dict[str, float]


@dataclass(frozen=True)
class Pod:
    name: str
    node: str | None  # spec.nodeName; None until scheduled
    requests: dict[str, float]
    finished: bool = False


def node_from_api(obj: dict[str, Any]) -> Node:
    metadata, status = obj.get("metadata") or {}, obj.get("status") or {}
    labels = metadata.get("labels") or {}
    return Node(
        name=metadata.get("name", ""),
        instance_type=labels.get(INSTANCE_TYPE_LABEL),
        capacity_type=labels.get(CAPACITY_TYPE_LABEL),
        allocatable={key: quantity(value) for key, value in (status.get("allocatable") or {}).items()},
    )


def pod_from_api(obj: dict[str, Any]) -> Pod:
    """The pod's requests summed over its containers (a limit stands in for a missing request, as the API
    server defaults it); init containers are not counted, they are gone once the pod serves."""
    spec = obj.get("spec") or {}
    requests: dict[str, float] = {}
    for container in spec.get("containers") or []:
        resources = container.get("resources") or {}
        wanted = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        for key, value in wanted.items():
            requests[key] = requests.get(key, 0.0) + quantity(value)
    phase = (obj.get("status") or {}).get("phase")
    return Pod(
        name=(obj.get("metadata") or {}).get("name", ""),
        node=spec.get("nodeName"),
        requests=requests,
        finished=phase in _FINISHED_PHASES,
    )


@dataclass(frozen=True)
class TrackCost:
    cost_per_million_requests: float | None  # USD; None when there is no honest figure (see reason)
    dollars_per_hour: float | None  # the track's pods' shares of their nodes' hourly prices
    requests: int
    hours: float
    pods: int  # pods on a node, charged
    upper_bound: bool  # some pods ran on spot nodes, charged the on-demand price
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "cost_per_million_requests": _round(self.cost_per_million_requests),
            "dollars_per_hour": _round(self.dollars_per_hour),
            "requests": self.requests,
            "hours": round(self.hours, 6),
            "pods": self.pods,
            "upper_bound": self.upper_bound,
            "reason": self.reason,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def pod_share(pod: Pod, node: Node) -> tuple[float | None, str | None]:
    """The fraction of `node` that `pod` takes (accelerators if it asks for any, else vCPUs), or a reason."""
    for resource in ACCELERATOR_RESOURCES:
        wanted = pod.requests.get(resource, 0.0)
        if wanted > 0:
            return _fraction(wanted, node, resource)
    wanted = pod.requests.get(CPU_RESOURCE, 0.0)
    if wanted <= 0:
        return None, f"pod {pod.name} requests neither accelerators nor CPU: its share of {node.name} is unknown"
    return _fraction(wanted, node, CPU_RESOURCE)


def _fraction(wanted: float, node: Node, resource: str) -> tuple[float | None, str | None]:
    available = node.allocatable.get(resource, 0.0)
    if available <= 0:
        return None, f"node {node.name} advertises no allocatable {resource}"
    return min(1.0, wanted / available), None


def track_cost(
    pods: Iterable[Pod],
    nodes: Iterable[Node],
    *,
    prices: PriceTable,
    region: str,
    interval_seconds: float,
    requests: int,
) -> TrackCost:
    """The track's cost per million requests over an interval (see the module docstring)."""
    hours = interval_seconds / 3600
    by_name = {node.name: node for node in nodes}
    placed = [pod for pod in pods if pod.node is not None and not pod.finished]

    def none(reason: str, per_hour: float | None = None, upper: bool = False) -> TrackCost:
        return TrackCost(None, per_hour, requests, hours, len(placed), upper, reason)

    if not placed:
        return none("no pods of the track are on a node")
    per_hour, upper_bound = 0.0, False
    for pod in placed:
        node = by_name.get(pod.node or "")
        if node is None:
            return none(f"node {pod.node} of pod {pod.name} was not found")
        if node.instance_type is None:
            return none(f"node {node.name} has no {INSTANCE_TYPE_LABEL} label")
        price = prices.hourly(region, node.instance_type)
        if price is None:
            return none(f"no on-demand price for {node.instance_type} in {region} in the price table")
        share, reason = pod_share(pod, node)
        if share is None:
            return none(reason or "unknown share")
        per_hour += share * price
        upper_bound = upper_bound or node.capacity_type == SPOT
    if requests <= 0:
        return none("no requests in the interval", per_hour, upper_bound)
    if hours <= 0:
        return none("the interval is empty", per_hour, upper_bound)
    return TrackCost(per_hour * hours / requests * 1e6, per_hour, requests, hours, len(placed), upper_bound)
