"""A small evaluator of Kubernetes NetworkPolicy (networking.k8s.io/v1) for the policy-table tests.

No library evaluates NetworkPolicies offline (the CNI does it in the data path), so this follows the API reference:
- a pod is isolated for a direction if any policy in its namespace selects it with that policy type (policyTypes
  left out means Ingress, plus Egress when the policy has egress rules);
- an isolated pod admits a connection if any rule of any policy selecting it admits the peer and the port (the
  union of all such policies); a connection needs both the source's egress and the destination's ingress;
- a rule without `from`/`to` admits every peer, without `ports` every port; an ipBlock admits its CIDR minus
  `except`; podSelector alone means pods of the policy's namespace, namespaceSelector alone every pod of the
  selected namespaces, both together the selected pods of the selected namespaces.
ipBlocks are matched against pod addresses too, as the VPC CNI's eBPF agent does (it matches addresses, not
pods). What the evaluator leaves out, on purpose: traffic from a pod's own node (the kubelet's probes), which
the VPC CNI's agent always admits (aws/aws-network-policy-agent#56 and PR #65), and named or ranged ports.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Peer:
    """An address in the cluster's network: a pod (namespace and labels) or anything else (namespace None)."""

    name: str
    ip: str
    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


def _selects(selector: Mapping, labels: Mapping[str, str]) -> bool:
    if set(selector) - {"matchLabels"}:
        raise NotImplementedError(f"selector {selector}: only matchLabels is evaluated")
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


def _namespace_labels(namespace: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": namespace}  # set by the API server on every namespace


def _peer_matches(entry: Mapping, peer: Peer, policy_namespace: str) -> bool:
    if "ipBlock" in entry:
        block = entry["ipBlock"]
        address = ipaddress.ip_address(peer.ip)
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(excepted) for excepted in block.get("except", [])
        )
    if peer.namespace is None:
        return False
    if "namespaceSelector" in entry:
        if not _selects(entry["namespaceSelector"], _namespace_labels(peer.namespace)):
            return False
    elif peer.namespace != policy_namespace:
        return False
    return _selects(entry.get("podSelector", {}), peer.labels)


def _port_matches(entry: Mapping, port: int, protocol: str) -> bool:
    if not isinstance(entry.get("port", port), int) or "endPort" in entry:
        raise NotImplementedError(f"port {entry}: only numeric ports are evaluated")
    return entry.get("protocol", "TCP") == protocol and entry.get("port", port) == port


def _policy_types(spec: Mapping) -> list[str]:
    return spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else ["Ingress"])


def _admits(policies: Sequence[Mapping], pod: Peer, direction: str, other: Peer, port: int, protocol: str) -> bool:
    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    selecting = [
        policy
        for policy in policies
        if policy["metadata"]["namespace"] == pod.namespace
        and direction in _policy_types(policy["spec"])
        and _selects(policy["spec"]["podSelector"], pod.labels)
    ]
    if not selecting:
        return True
    return any(
        (not rule.get(peers_key) or any(_peer_matches(e, other, p["metadata"]["namespace"]) for e in rule[peers_key]))
        and (not rule.get("ports") or any(_port_matches(e, port, protocol) for e in rule["ports"]))
        for p in selecting
        for rule in p["spec"].get(rules_key, [])
    )


def allowed(policies: Sequence[Mapping], source: Peer, destination: Peer, port: int, protocol: str = "TCP") -> bool:
    """Whether the policies let `source` open a connection to `destination` on port/protocol."""
    network_policies = [policy for policy in policies if policy["kind"] == "NetworkPolicy"]
    egress = source.namespace is None or _admits(network_policies, source, "Egress", destination, port, protocol)
    ingress = destination.namespace is None or _admits(network_policies, destination, "Ingress", source, port, protocol)
    return egress and ingress
