"""What the rollout function may do in Kubernetes: a Role in the services' namespace, bound to the group
its EKS access entry maps its IAM role to. Pure: no CDK.

The rules are exactly the calls of the rollout client (lambda/rollout/kube.py) that the steps make: read
and update (read, change, PUT back) the Deployments and the stable track's HorizontalPodAutoscaler.
No create or delete, no Secrets, no pods: tests/security/test_rollout_rbac.py derives the calls from the
code and compares. Extend both together (for example with KEDA ScaledObjects).
"""

from __future__ import annotations

from tessera_shared.constants import NAMESPACE, ROLLOUT_KUBERNETES_GROUP

ROLE_NAME = "tessera-rollout"
RBAC_GROUP = "rbac.authorization.k8s.io"
ROLLOUT_RULES = [
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "update"]},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": ["get", "update"]},
]


def rollout_access_objects() -> list[dict]:
    labels = {"app.kubernetes.io/part-of": "tessera", "app.kubernetes.io/component": "rollout"}
    metadata = {"name": ROLE_NAME, "namespace": NAMESPACE, "labels": labels}
    return [
        {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "Role", "metadata": metadata, "rules": ROLLOUT_RULES},
        {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "RoleBinding",
            "metadata": metadata,
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": ROLE_NAME},
            "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": ROLLOUT_KUBERNETES_GROUP}],
        },
    ]
