"""A track's cost per million requests, measured on the cluster: its pods (by the service and track labels)
and the nodes they run on, read through the Kubernetes API, priced by rollout.cost from the vendored table.

Meant for the judge: called once per track at a judgement, with the requests that track served in the
judgement's window (from the load balancer's RequestCount). Reads only: pods in the services' namespace
(list) and nodes (list), which the rollout function's Role and ClusterRole allow.
"""

from __future__ import annotations

from typing import Any, Protocol

from rollout.cost import TrackCost, node_from_api, pod_from_api, track_cost
from rollout.errors import RolloutError, TransientError
from rollout.kube.client import KubeClient
from tessera_shared.constants import SERVICE_LABEL, TRACK_LABEL
from tessera_shared.prices import PriceTable, price_table


class _WithKube(Protocol):
    kube: KubeClient


def track_selector(service: str, track: str) -> str:
    """The label selector of a track's pods, as the Services stack labels them."""
    return f"{SERVICE_LABEL}={service},{TRACK_LABEL}={track}"


def measure_track_cost(
    clients: _WithKube,
    *,
    namespace: str,
    service: str,
    track: str,
    region: str,
    interval_seconds: float,
    requests: int,
    prices: PriceTable | None = None,
) -> TrackCost:
    pods = [pod_from_api(item) for item in clients.kube.list_pods(namespace, track_selector(service, track))]
    # No pod on a node: nothing to price, and no need to read every node of the cluster.
    nodes = [node_from_api(item) for item in clients.kube.list_nodes()] if any(pod.node for pod in pods) else []
    return track_cost(
        pods,
        nodes,
        prices=prices or price_table(),
        region=region,
        interval_seconds=interval_seconds,
        requests=requests,
    )


def judgement_costs(
    clients: _WithKube,
    *,
    namespace: str,
    service: str,
    requests: dict[str, int],
    interval_seconds: float,
    region: str,
    prices: PriceTable | None = None,
) -> dict[str, dict[str, Any]]:
    """Each track's cost (TrackCost.to_json()) for a judgement's audit record, given the requests each
    track served in the window. Evidence, not a gate: a cluster that cannot be read (no access, throttled,
    unreachable) gives a figure of None with the reason instead of failing the judgement."""
    costs = {}
    for track, served in requests.items():
        try:
            cost = measure_track_cost(
                clients,
                namespace=namespace,
                service=service,
                track=track,
                region=region,
                interval_seconds=interval_seconds,
                requests=served,
                prices=prices,
            )
        except (RolloutError, TransientError) as error:
            hours = interval_seconds / 3600
            cost = TrackCost(None, None, served, hours, 0, False, f"could not read the cluster: {error}")
        costs[track] = cost.to_json()
    return costs
