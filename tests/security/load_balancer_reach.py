"""Which service a client reaches through the Services stack's load balancers, read from the synthesized templates.

No library evaluates an ALB's reachability offline, so this follows the Elastic Load Balancing and VPC documentation
for what Tessera's templates use:
- an internet-facing load balancer has public addresses: clients in the VPC reach it from the NAT gateway's public
  address, not their own; an internal one has only VPC addresses, which the internet never reaches;
- its security groups admit a source by CIDR (`CidrIp`) or by the source's security group (`SourceSecurityGroupId`;
  pods and nodes carry the EKS cluster security group);
- a listener forwards to the service of the first listener rule whose path-pattern or host-header matches.
A pod's connection also needs its NetworkPolicy egress to the load balancer's address
(tests/security/network_policies.py).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass

from tessera_shared.constants import SERVICE_LABEL
from tests.synth import SynthesizedEnvironment

PODS_SECURITY_GROUP = "the EKS cluster security group"
NAT_PUBLIC_ADDRESS = "192.0.2.44"  # where an internet-facing load balancer sees a VPC client coming from


@dataclass(frozen=True)
class Listener:
    load_balancer: str
    internet_facing: bool
    port: int
    services: frozenset[str]  # routed by this listener's rules
    admitted_cidrs: tuple[str, ...]
    admits_pods: bool


def _stack_output(env: SynthesizedEnvironment, reference: Mapping) -> object:
    """Follows a Fn::GetStackOutput to the Network or Cluster stack's value (the VPC CIDR, the cluster group)."""
    name = reference["Fn::GetStackOutput"]["OutputName"]
    if "ClusterSecurityGroupId" in name:
        return PODS_SECURITY_GROUP
    value = env.template_json("Network")["Outputs"][name]["Value"]
    logical_id, attribute = value["Fn::GetAtt"]
    return env.template_json("Network")["Resources"][logical_id]["Properties"][attribute]


def _group_of(value: object) -> str:
    if isinstance(value, Mapping) and "Fn::GetAtt" in value:
        return value["Fn::GetAtt"][0]
    return json.dumps(value, sort_keys=True)


def _ingress_by_group(env: SynthesizedEnvironment) -> dict[str, list[Mapping]]:
    resources = env.template_json("Services")["Resources"]
    rules: dict[str, list[Mapping]] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::EC2::SecurityGroup":
            rules.setdefault(logical_id, []).extend(resource["Properties"].get("SecurityGroupIngress", []))
        elif resource["Type"] == "AWS::EC2::SecurityGroupIngress":
            rules.setdefault(_group_of(resource["Properties"]["GroupId"]), []).append(resource["Properties"])
    return rules


def _admitted(env: SynthesizedEnvironment, rules: list[Mapping], port: int) -> tuple[tuple[str, ...], bool]:
    cidrs: list[str] = []
    pods = False
    for rule in rules:
        if rule["IpProtocol"] not in ("tcp", "-1") or not rule["FromPort"] <= port <= rule["ToPort"]:
            continue
        if "CidrIp" in rule:
            cidr = rule["CidrIp"]
            cidrs.append(cidr if isinstance(cidr, str) else str(_stack_output(env, cidr)))
        elif "SourceSecurityGroupId" in rule:
            source = rule["SourceSecurityGroupId"]
            pods |= isinstance(source, Mapping) and _stack_output(env, source) == PODS_SECURITY_GROUP
    return tuple(cidrs), pods


def listeners(env: SynthesizedEnvironment) -> list[Listener]:
    resources = env.template_json("Services")["Resources"]
    ingress = _ingress_by_group(env)
    routed: dict[str, set[str]] = {}
    for resource in resources.values():
        if resource["Type"] == "AWS::ElasticLoadBalancingV2::ListenerRule":
            tags = {tag["Key"]: tag["Value"] for tag in resource["Properties"]["Tags"]}
            routed.setdefault(resource["Properties"]["ListenerArn"]["Ref"], set()).add(tags[SERVICE_LABEL])
    found = []
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::ElasticLoadBalancingV2::Listener":
            continue
        properties = resource["Properties"]
        balancer_id = properties["LoadBalancerArn"]["Ref"]
        balancer = resources[balancer_id]["Properties"]
        rules = [rule for group in balancer["SecurityGroups"] for rule in ingress.get(_group_of(group), [])]
        cidrs, pods = _admitted(env, rules, properties["Port"])
        found.append(
            Listener(
                load_balancer=balancer_id,
                internet_facing=balancer.get("Scheme") == "internet-facing",
                port=properties["Port"],
                services=frozenset(routed.get(logical_id, ())),
                admitted_cidrs=cidrs,
                admits_pods=pods,
            )
        )
    return found


def admits(listener: Listener, address: str, *, in_vpc: bool, pod: bool) -> bool:
    """Whether the listener's security groups let a client at `address` open a connection."""
    if listener.internet_facing and in_vpc:
        address, pod = NAT_PUBLIC_ADDRESS, False
    elif not listener.internet_facing and not in_vpc:
        return False
    ip = ipaddress.ip_address(address)
    return (pod and listener.admits_pods) or any(ip in ipaddress.ip_network(cidr) for cidr in listener.admitted_cidrs)
