"""Point 3: network policies that isolate, tested as a table of who may reach whom, derived from config and evaluated
over the NetworkPolicies the Services stack applies (tests/security/network_policies.py), with the addresses the
synthesized Network stack gives each subnet.

Expected, for every service: the load balancer reaches its pods on the service port and nothing else does (no pod,
no other address of the node subnets); its pods reach DNS, the EKS Pod Identity agent, HTTPS outside the VPC
(S3 through the gateway endpoint) and the interface endpoints, and the load balancer only if config says the
service calls others; never another pod, instance metadata, any other address in the VPC, or a Service ClusterIP
(the API server's included: a policy may see the ClusterIP before kube-proxy translates it).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pytest

from stacks.config.environment import EnvironmentConfig
from tests.kubernetes_objects import manifest_objects
from tests.security.network_policies import Peer, allowed
from tests.synth import SynthesizedEnvironment

NAMESPACE = "inference"
POD_IDENTITY_AGENT = Peer("pod identity agent", "169.254.170.23")
INSTANCE_METADATA = Peer("instance metadata", "169.254.169.254")
S3_PUBLIC = Peer("S3 (public address)", "52.216.8.10")
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


def _subnet_cidrs(env: SynthesizedEnvironment) -> dict[str, str]:
    return {
        logical_id: resource["Properties"]["CidrBlock"]
        for logical_id, resource in env.resources("Network", "AWS::EC2::Subnet").items()
    }


def _group_of(env: SynthesizedEnvironment, logical_id: str) -> str:
    tags = env.template_json("Network")["Resources"][logical_id]["Properties"]["Tags"]
    return next(tag["Value"] for tag in tags if tag["Key"] == "aws-cdk:subnet-name")


def _load_balancer_subnets(env: SynthesizedEnvironment) -> list[str]:
    """The load balancer's subnets, followed from the Services template's references to the Network's outputs."""
    outputs = env.template_json("Network")["Outputs"]
    [load_balancer] = env.resources("Services", "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    return [
        outputs[subnet["Fn::GetStackOutput"]["OutputName"]]["Value"]["Ref"]
        for subnet in load_balancer["Properties"]["Subnets"]
    ]


def _endpoint_subnets(env: SynthesizedEnvironment) -> list[str]:
    endpoints = env.resources("Network", "AWS::EC2::VPCEndpoint").values()
    return sorted(
        {
            subnet["Ref"]
            for e in endpoints
            if e["Properties"].get("VpcEndpointType") == "Interface"
            for subnet in e["Properties"]["SubnetIds"]
        }
    )


def _host(cidr: str, offset: int) -> str:
    return str(ipaddress.ip_network(cidr).network_address + offset)


def _pods(env: SynthesizedEnvironment, node_subnets: list[str]) -> dict[str, list[Peer]]:
    """One pod per track of each service, at an address of the node subnets (the VPC CNI's pod addresses)."""
    deployments = [obj for obj in manifest_objects(env, "Services") if obj["kind"] == "Deployment"]
    pods: dict[str, list[Peer]] = {}
    for index, deployment in enumerate(deployments):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        cidr = node_subnets[index % len(node_subnets)]
        pods.setdefault(labels["tessera.dev/service"], []).append(
            Peer(deployment["metadata"]["name"], _host(cidr, 1000 + index), NAMESPACE, labels)
        )
    return pods


def policy_table(env: SynthesizedEnvironment) -> tuple[list[dict], list[Row]]:
    """The applied policies and the expected table for one environment."""
    config: EnvironmentConfig = env.config
    cidrs = _subnet_cidrs(env)
    node_subnets = sorted(cidrs[i] for i in cidrs if _group_of(env, i) == "private")
    load_balancers = [Peer(f"load balancer ({cidrs[i]})", _host(cidrs[i], 10)) for i in _load_balancer_subnets(env)]
    endpoints = [Peer(f"interface endpoint ({cidrs[i]})", _host(cidrs[i], 6)) for i in _endpoint_subnets(env)]
    node_address = Peer("another node-subnet address", _host(node_subnets[0], 50))
    kube_dns = Peer("kube-dns", _host(node_subnets[1], 60), "kube-system", {"k8s-app": "kube-dns"})
    api_server = Peer("EKS API (private endpoint)", _host(node_subnets[2], 70))
    listener_port = 443 if config.load_balancer.is_https else 80
    pods = _pods(env, node_subnets)
    assert sorted(pods) == sorted(service.name for service in config.services)

    rows: list[Row] = []
    for service in config.services:
        for pod in pods[service.name]:
            for load_balancer in load_balancers:
                rows.append(Row(load_balancer, pod, service.port, "TCP", True))
                rows.append(Row(load_balancer, pod, service.port + 1, "TCP", False))
                rows.append(Row(pod, load_balancer, listener_port, "TCP", bool(service.calls)))
            rows.append(Row(node_address, pod, service.port, "TCP", False))
            rows += [
                Row(pod, other, callee.port, "TCP", False)
                for callee in config.services
                for other in pods[callee.name]
                if other != pod
            ]
            rows += [Row(pod, kube_dns, 53, protocol, True) for protocol in ("UDP", "TCP")]
            rows.append(Row(pod, POD_IDENTITY_AGENT, 80, "TCP", True))
            rows.append(Row(pod, INSTANCE_METADATA, 80, "TCP", False))
            rows.append(Row(pod, S3_PUBLIC, 443, "TCP", True))
            rows.append(Row(pod, S3_PUBLIC, 80, "TCP", False))
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
        cidrs = _subnet_cidrs(env)
        node_networks = [ipaddress.ip_network(cidrs[i]) for i in cidrs if _group_of(env, i) == "private"]
        for subnet in _load_balancer_subnets(env) + _endpoint_subnets(env):
            network = ipaddress.ip_network(cidrs[subnet])
            assert not any(network.overlaps(node) for node in node_networks), cidrs[subnet]
