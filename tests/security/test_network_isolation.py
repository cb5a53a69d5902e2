"""Point 3: network policies that isolate, tested as a table of who may reach whom, derived from config and evaluated
over the NetworkPolicies the Services stack applies (tests/security/network_policies.py), with the addresses the
synthesized Network stack gives each subnet.

Expected, for every service: the load balancer reaches its pods on the service port and nothing else does (no pod,
no other address of the node subnets), except, for a service with `metrics`, the node subnets on its metrics port
(where the managed Prometheus collector's ENIs are; the `inference` pods' own egress never allows it); its pods
reach DNS, the EKS Pod Identity agent, the interface endpoints (S3's included), on HTTPS the addresses outside
the VPC its `egress` declares, and the load balancers' subnets only at the ports of the services config says it
calls; never another pod, instance metadata, any other address in the VPC, or a Service ClusterIP (the API
server's included: a policy may see the ClusterIP before kube-proxy translates it).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pytest

from stacks.config.environment import EnvironmentConfig
from stacks.config.services import ServiceSpec
from tests.kubernetes_objects import manifest_objects
from tests.security.addresses import (
    endpoint_subnets,
    host,
    load_balancer_subnets,
    node_subnets,
    pods,
    subnet_cidrs,
    subnet_group,
)
from tests.security.network_policies import Peer, allowed
from tests.synth import SynthesizedEnvironment

POD_IDENTITY_AGENT = Peer("pod identity agent", "169.254.170.23")
INSTANCE_METADATA = Peer("instance metadata", "169.254.169.254")
OUTSIDE = [
    Peer("S3 (public address)", "52.216.8.10"),
    Peer("an identity provider (198.51.100.20)", "198.51.100.20"),
    Peer("anywhere on the internet (93.184.216.34)", "93.184.216.34"),
]
# EKS gives a cluster without serviceIpv4Cidr its Service ClusterIPs from 10.100.0.0/16 or 172.20.0.0/16; the first
# address of the range is kubernetes.default, the API server.
CLUSTER_IPS = [
    Peer("kubernetes.default (172.20.0.1)", "172.20.0.1"),
    Peer("a Service ClusterIP (172.20.14.7)", "172.20.14.7"),
    Peer("kubernetes.default (10.100.0.1)", "10.100.0.1"),
    Peer("a Service ClusterIP (10.100.200.9)", "10.100.200.9"),
]


@dataclass(frozen=True)
class Row:
    source: Peer
    destination: Peer
    port: int
    protocol: str
    expected: bool

    def __str__(self) -> str:
        verdict = "allowed" if self.expected else "denied"
        return f"{self.source.name} -> {self.destination.name} {self.protocol}/{self.port}: expected {verdict}"


def _declared(service: ServiceSpec, peer: Peer) -> bool:
    return any(ipaddress.ip_address(peer.ip) in ipaddress.ip_network(cidr) for cidr in service.egress)


def policy_table(env: SynthesizedEnvironment) -> tuple[list[dict], list[Row]]:
    """The applied policies and the expected table for one environment."""
    config: EnvironmentConfig = env.config
    cidrs = subnet_cidrs(env)
    nodes = node_subnets(env)
    load_balancers = [Peer(f"load balancer ({cidrs[i]})", host(cidrs[i], 10)) for i in load_balancer_subnets(env)]
    endpoints = [Peer(f"interface endpoint ({cidrs[i]})", host(cidrs[i], 6)) for i in endpoint_subnets(env)]
    node_address = Peer("another node-subnet address", host(nodes[0], 50))
    kube_dns = Peer("kube-dns", host(nodes[1], 60), "kube-system", {"k8s-app": "kube-dns"})
    api_server = Peer("EKS API (private endpoint)", host(nodes[2], 70))
    listener_port = 443 if config.load_balancer.is_https else 80
    service_pods = pods(env)
    assert sorted(service_pods) == sorted(service.name for service in config.services)

    rows: list[Row] = []
    for service in config.services:
        for pod in service_pods[service.name]:
            for load_balancer in load_balancers:
                rows.append(Row(load_balancer, pod, service.port, "TCP", True))
                rows.append(Row(load_balancer, pod, service.port + 1, "TCP", False))
                # Calls go to the internal load balancer at the callee's port; the outside listener is for clients.
                rows.append(Row(pod, load_balancer, listener_port, "TCP", False))
                rows += [
                    Row(pod, load_balancer, callee.port, "TCP", callee.name in service.calls)
                    for callee in config.services
                    if callee != service
                ]
            # The managed Prometheus collector scrapes from the node subnets, on the metrics port only.
            metrics_port = (service.metrics.port or service.port) if service.metrics else None
            rows.append(Row(node_address, pod, service.port, "TCP", service.port == metrics_port))
            if metrics_port is not None:
                rows.append(Row(node_address, pod, metrics_port, "TCP", True))
                rows.append(Row(node_address, pod, metrics_port + 1, "TCP", False))
            rows += [
                Row(pod, other, callee.port, "TCP", False)
                for callee in config.services
                for other in service_pods[callee.name]
                if other != pod
            ]
            rows += [Row(pod, kube_dns, 53, protocol, True) for protocol in ("UDP", "TCP")]
            rows.append(Row(pod, POD_IDENTITY_AGENT, 80, "TCP", True))
            rows.append(Row(pod, INSTANCE_METADATA, 80, "TCP", False))
            # Outside the VPC only where config declares it (S3 comes through its interface endpoint).
            rows += [Row(pod, outside, 443, "TCP", _declared(service, outside)) for outside in OUTSIDE]
            rows += [Row(pod, outside, 80, "TCP", False) for outside in OUTSIDE]
            rows += [Row(pod, endpoint, 443, "TCP", True) for endpoint in endpoints]
            rows.append(Row(pod, api_server, 443, "TCP", False))
            rows += [Row(pod, cluster_ip, 443, "TCP", False) for cluster_ip in CLUSTER_IPS]
            rows.append(Row(pod, node_address, 443, "TCP", False))
    return manifest_objects(env, "Services"), rows


@pytest.mark.parametrize("environment", ["dev", "prod", "variant"])
def test_policies_admit_exactly_the_table(environment: str, request: pytest.FixtureRequest) -> None:
    env: SynthesizedEnvironment = request.getfixturevalue(environment)
    policies, rows = policy_table(env)
    assert len(rows) > 100
    wrong = [
        str(row)
        for row in rows
        if allowed(policies, row.source, row.destination, row.port, row.protocol) != row.expected
    ]
    assert wrong == []


def test_load_balancer_addresses_are_not_node_addresses(
    dev: SynthesizedEnvironment, variant: SynthesizedEnvironment
) -> None:
    """The table above means something only if the load balancer's subnets hold no node or pod."""
    for env in (dev, variant):
        cidrs = subnet_cidrs(env)
        node_networks = [ipaddress.ip_network(cidrs[i]) for i in cidrs if subnet_group(env, i) == "private"]
        for subnet in load_balancer_subnets(env) + endpoint_subnets(env):
            network = ipaddress.ip_network(cidrs[subnet])
            assert not any(network.overlaps(node) for node in node_networks), cidrs[subnet]
