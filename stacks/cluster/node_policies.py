"""The AWS managed policies of every node role (the managed node groups' and Karpenter's), each with why, in one
place."""

from __future__ import annotations

BASE_NODE_POLICIES = {
    "AmazonEKSWorkerNodePolicy": "Lets the kubelet join the cluster and describe its node; AWS maintains it for nodes.",
    "AmazonEC2ContainerRegistryPullOnly": "Nodes pull the service and controller images; pull-only, no push.",
}
SESSION_MANAGER_POLICY = "AmazonSSMManagedInstanceCore"


def node_managed_policies(*, session_manager: bool) -> dict[str, str]:
    """A Session Manager shell on a node bypasses Kubernetes RBAC: only where config asks for it."""
    if not session_manager:
        return dict(BASE_NODE_POLICIES)
    reason = "Session Manager shells on nodes, asked for by cluster.node_session_manager (no SSH keys or open ports)."
    return {**BASE_NODE_POLICIES, SESSION_MANAGER_POLICY: reason}
