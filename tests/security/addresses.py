"""Addresses of a synthesized environment for the reachability tables: each subnet's CIDR from the Network template,
the load balancers' and interface endpoints' subnets, and one pod per track of each service in the node subnets."""

from __future__ import annotations

import ipaddress

from tests.kubernetes_objects import manifest_objects
from tests.security.network_policies import Peer
from tests.synth import SynthesizedEnvironment

NAMESPACE = "inference"


def subnet_cidrs(env: SynthesizedEnvironment) -> dict[str, str]:
    return {
        logical_id: resource["Properties"]["CidrBlock"]
        for logical_id, resource in env.resources("Network", "AWS::EC2::Subnet").items()
    }


def subnet_group(env: SynthesizedEnvironment, logical_id: str) -> str:
    tags = env.template_json("Network")["Resources"][logical_id]["Properties"]["Tags"]
    return next(tag["Value"] for tag in tags if tag["Key"] == "aws-cdk:subnet-name")


def node_subnets(env: SynthesizedEnvironment) -> list[str]:
    cidrs = subnet_cidrs(env)
    return sorted(cidrs[i] for i in cidrs if subnet_group(env, i) == "private")


def load_balancer_subnets(env: SynthesizedEnvironment) -> list[str]:
    """Every load balancer's subnets, followed from the Services template's references to the Network's outputs."""
    outputs = env.template_json("Network")["Outputs"]
    return sorted(
        {
            outputs[subnet["Fn::GetStackOutput"]["OutputName"]]["Value"]["Ref"]
            for load_balancer in env.resources("Services", "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
            for subnet in load_balancer["Properties"]["Subnets"]
        }
    )


def endpoint_subnets(env: SynthesizedEnvironment) -> list[str]:
    endpoints = env.resources("Network", "AWS::EC2::VPCEndpoint").values()
    return sorted(
        {
            subnet["Ref"]
            for e in endpoints
            if e["Properties"].get("VpcEndpointType") == "Interface"
            for subnet in e["Properties"]["SubnetIds"]
        }
    )


def host(cidr: str, offset: int) -> str:
    return str(ipaddress.ip_network(cidr).network_address + offset)


def pods(env: SynthesizedEnvironment) -> dict[str, list[Peer]]:
    """One pod per track of each service, at an address of the node subnets (the VPC CNI's pod addresses)."""
    deployments = [obj for obj in manifest_objects(env, "Services") if obj["kind"] == "Deployment"]
    subnets = node_subnets(env)
    found: dict[str, list[Peer]] = {}
    for index, deployment in enumerate(deployments):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        cidr = subnets[index % len(subnets)]
        found.setdefault(labels["tessera.dev/service"], []).append(
            Peer(deployment["metadata"]["name"], host(cidr, 1000 + index), NAMESPACE, labels)
        )
    return found
