"""What the rollout function may do in Kubernetes: a Role in the services' namespace and a read-only
ClusterRole for nodes, both bound to the group its EKS access entry maps its IAM role to. Pure: no CDK.

The rules are exactly the calls of the rollout client (lambda/rollout/kube.py) that the steps make: read
and update (read, change, PUT back) the Deployments and the stable track's autoscaler (a HorizontalPodAutoscaler,
or for a service scaled by KEDA its ScaledObject, whose minReplicaCount holds stable's floor), and, to price a
track (rollout.track_cost), list its pods and list the nodes they run on. No create or delete, no Secrets, no
writes to pods or nodes: tests/security/test_rollout_rbac.py derives the calls from the code and compares.
"""

from __future__ import annotations

from stacks.common.kubernetes_access import access_objects, cluster_access_objects
from tessera_shared.constants import KEDA_API_VERSION, ROLLOUT_KUBERNETES_GROUP, SCALED_OBJECTS

ROLE_NAME = "tessera-rollout"
ROLLOUT_RULES = [
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "update"]},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": ["get", "update"]},
    {"apiGroups": [KEDA_API_VERSION.split("/")[0]], "resources": [SCALED_OBJECTS], "verbs": ["get", "update"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
]
# Nodes are cluster-scoped: a namespaced Role cannot grant them.
ROLLOUT_CLUSTER_RULES = [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}]


def rollout_access_objects() -> list[dict]:
    return access_objects(
        name=ROLE_NAME, group=ROLLOUT_KUBERNETES_GROUP, rules=ROLLOUT_RULES, component="rollout"
    ) + cluster_access_objects(
        name=f"{ROLE_NAME}-nodes", group=ROLLOUT_KUBERNETES_GROUP, rules=ROLLOUT_CLUSTER_RULES, component="rollout"
    )
