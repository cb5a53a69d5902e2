"""A namespaced Role and its RoleBinding to the Kubernetes group an EKS access entry maps an IAM role
to: how Tessera's functions get exactly the Kubernetes access their client code uses. Pure: no CDK."""

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
