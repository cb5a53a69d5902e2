"""What the Kubernetes-object renderers take besides config (the deploy-time values and the network the
NetworkPolicies name) and what every object carries (its name, namespace and labels)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from stacks.config.services import ServiceSpec
from tessera_shared.constants import NAMESPACE, SERVICE_LABEL, TRACK_LABEL, track_object_name

PROMETHEUS_PLACEHOLDER = "<prometheus-workspace-endpoint>"


@dataclass(frozen=True)
class ServiceNetwork:
    """The addresses the NetworkPolicies name (IPv4 only: Tessera's VPC has no IPv6 CIDR). The load balancer and
    the interface endpoints sit in subnets of their own (stacks/network/stack.py), which no node or pod shares."""

    vpc_cidr: str
    load_balancer_cidrs: Sequence[str]
    endpoint_cidrs: Sequence[str]
    internal_ports: Mapping[str, int]  # where each non-public service is reached on the internal load balancer
    # Where the managed Prometheus collector's ENIs are: the cluster's private subnets (the AMP user guide asks for
    # the cluster's subnets), which the NetworkPolicy of a service with `metrics` admits on its metrics port only.
    collector_cidrs: Sequence[str] = ()


@dataclass(frozen=True)
class DeployTimeValues:
    """Values that exist only in the deployed account (CDK tokens at synth, placeholders for review)."""

    image_uri: str
    model_bucket: str
    target_group_arns: Mapping[str, str]
    network: ServiceNetwork
    # What KEDA's CloudWatch triggers query by: the region, the cluster (Container Insights' ClusterName) and the
    # stable target group's and load balancer's metric dimension values (`targetgroup/...`, `app/...`).
    region: str
    cluster_name: str
    stable_target_group_dimension: str
    load_balancer_dimension: str
    # KEDA's prometheus triggers' serverAddress: the workspace's endpoint without its trailing slash. The Services
    # stack always passes it when a service has `metrics`; review renders keep the placeholder.
    prometheus_server_address: str = PROMETHEUS_PLACEHOLDER


def track_name(service: ServiceSpec, track: str) -> str:
    return track_object_name(service.name, track)


def labels(service: ServiceSpec, track: str | None = None) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": service.name,
        "app.kubernetes.io/part-of": "tessera",
        SERVICE_LABEL: service.name,
    }
    if track is not None:
        labels[TRACK_LABEL] = track
    return labels


def metadata(name: str, labels: dict[str, str]) -> dict:
    return {"name": name, "namespace": NAMESPACE, "labels": labels}
