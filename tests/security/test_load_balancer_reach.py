"""Issue 22, problem 1: who reaches which service through the load balancers, as a table derived from config and
evaluated over the synthesized templates (tests/security/load_balancer_reach.py) and the NetworkPolicies.

Expected: a client outside the cluster (on the internet, or elsewhere in the VPC) reaches a service only if config
marks it public and `load_balancer` admits the client (its scheme and allowed_cidrs); a pod reaches exactly the
services its own service lists in `calls`, and never a public one.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pytest

from stacks.config.environment import EnvironmentConfig
from stacks.config.services import ServiceSpec
from tests.kubernetes_objects import manifest_objects
from tests.security.addresses import host, load_balancer_subnets, pods, subnet_cidrs
from tests.security.load_balancer_reach import Listener, admits, listeners
from tests.security.network_policies import Peer, allowed
from tests.synth import SynthesizedEnvironment

INTERNET_CLIENT = "203.0.113.9"


@dataclass(frozen=True)
class Client:
    name: str
    address: str
    in_vpc: bool
    pod: Peer | None = None


def _clients(env: SynthesizedEnvironment) -> list[Client]:
    config: EnvironmentConfig = env.config
    vpc = ipaddress.ip_network(config.network.vpc_cidr)
    clients = [
        Client("an internet client", INTERNET_CLIENT, in_vpc=False),
        Client("a VPC client outside the cluster", str(vpc.broadcast_address - 10), in_vpc=True),
    ]
    clients += [
        Client(f"an allowed client ({cidr})", host(cidr, 7), in_vpc=ipaddress.ip_network(cidr).subnet_of(vpc))
        for cidr in config.load_balancer.allowed_cidrs or []
    ]
    return clients


def _expected_from_outside(config: EnvironmentConfig, client: Client, service: ServiceSpec) -> bool:
    settings = config.load_balancer
    if not service.public:
        return False
    if settings.internet_facing and not settings.allowed_cidrs:
        return True  # the open-internet variant, behind its WAF web ACL
    if settings.internet_facing and client.in_vpc:
        return False  # it arrives from the NAT gateway's address, which allowed_cidrs does not name
    if not settings.internet_facing and not client.in_vpc:
        return False
    cidrs = settings.allowed_cidrs or [config.network.vpc_cidr]
    return any(ipaddress.ip_address(client.address) in ipaddress.ip_network(cidr) for cidr in cidrs)


def _reaches(client: Client, service: str, found: list[Listener], policies: list[dict], balancer: Peer) -> bool:
    return any(
        service in listener.services
        and admits(listener, client.address, in_vpc=client.in_vpc, pod=client.pod is not None)
        and (client.pod is None or allowed(policies, client.pod, balancer, listener.port))
        for listener in found
    )


def reach_table(env: SynthesizedEnvironment) -> list[str]:
    """Every row whose evaluated reach differs from what config says."""
    config: EnvironmentConfig = env.config
    found = listeners(env)
    policies = manifest_objects(env, "Services")
    cidrs = subnet_cidrs(env)
    balancer = Peer("load balancer", host(cidrs[load_balancer_subnets(env)[0]], 10))
    service_pods = pods(env)
    wrong = []
    rows = 0
    for service in config.services:
        for client in _clients(env):
            expected = _expected_from_outside(config, client, service)
            rows += 1
            if _reaches(client, service.name, found, policies, balancer) != expected:
                wrong.append(f"{client.name} -> {service.name}: expected {'allowed' if expected else 'denied'}")
        for caller in config.services:
            for pod in service_pods[caller.name]:
                client = Client(f"a {pod.name} pod", pod.ip, in_vpc=True, pod=pod)
                expected = service.name in caller.calls
                rows += 1
                if _reaches(client, service.name, found, policies, balancer) != expected:
                    wrong.append(f"{client.name} -> {service.name}: expected {'allowed' if expected else 'denied'}")
    assert rows == len(config.services) * (len(_clients(env)) + 2 * len(config.services))  # 2 tracks per caller
    return wrong


@pytest.mark.parametrize("environment", ["dev", "prod", "variant"])
def test_only_public_services_face_clients_and_only_callers_reach_the_rest(
    environment: str, request: pytest.FixtureRequest
) -> None:
    assert reach_table(request.getfixturevalue(environment)) == []


def test_the_outside_listener_admits_what_config_allows(dev: SynthesizedEnvironment) -> None:
    """The evaluator's own check: the public gateway is reached from the VPC in dev, so a denial above is not
    the evaluator failing to find a route."""
    found = listeners(dev)
    assert any("gateway" in listener.services and listener.admitted_cidrs for listener in found)
