"""A namespaced Role and its RoleBinding (and, for cluster-scoped objects such as nodes, a ClusterRole and
its ClusterRoleBinding) to the Kubernetes group an EKS access entry maps an IAM role to: how Tessera's
functions get exactly the Kubernetes access their client code uses. Pure: no CDK."""

from __future__ import annotations

from tessera_shared.constants import NAMESPACE

RBAC_GROUP = "rbac.authorization.k8s.io"


def access_objects(*, name: str, group: str, rules: list[dict], component: str) -> list[dict]:
    labels = {"app.kubernetes.io/part-of": "tessera", "app.kubernetes.io/component": component}
    metadata = {"name": name, "namespace": NAMESPACE, "labels": labels}
    return [
        {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "Role", "metadata": metadata, "rules": rules},
        {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "RoleBinding",
            "metadata": metadata,
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": name},
            "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": group}],
        },
    ]


def cluster_access_objects(*, name: str, group: str, rules: list[dict], component: str) -> list[dict]:
    """A ClusterRole with `rules` and its ClusterRoleBinding to `group`: only for cluster-scoped objects
    (a ClusterRole's namespaced rules would reach every namespace)."""
    labels = {"app.kubernetes.io/part-of": "tessera", "app.kubernetes.io/component": component}
    metadata = {"name": name, "labels": labels}
    return [
        {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRole", "metadata": metadata, "rules": rules},
        {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": metadata,
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
            "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": group}],
        },
    ]
