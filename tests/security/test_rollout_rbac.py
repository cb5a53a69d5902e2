"""Point 4: the rollout function reaches Kubernetes as a group bound to a namespaced Role (and, for nodes, a
ClusterRole) that allow exactly what its client calls, derived here from the code (lambda/rollout/kube/client.py
and every module of the rollout function that uses it)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from tessera_shared import constants
from tessera_shared.constants import NAMESPACE, ROLLOUT_KUBERNETES_GROUP
from tests.synth import REPO_ROOT, SynthesizedEnvironment

ROLLOUT_CODE = REPO_ROOT / "lambda" / "rollout"
KUBE_CLIENT = ROLLOUT_CODE / "kube" / "client.py"
# The track owner is a function of its own, with its own group and Role (stacks/services/track_owner.py).
OTHER_FUNCTIONS = ("track_owner.py",)


def callers() -> list[Path]:
    """Every module of the rollout function outside the client: their calls on `clients.kube` are its Kubernetes
    calls (found by walking the package, so a new module is scanned without being listed)."""
    return [
        path
        for path in sorted(ROLLOUT_CODE.rglob("*.py"))
        if path.name not in OTHER_FUNCTIONS and (ROLLOUT_CODE / "kube") not in path.parents
    ]


HTTP_VERBS = {"GET": "get", "PUT": "update", "POST": "create", "DELETE": "delete", "PATCH": "patch"}


def _resources(tree: ast.Module) -> dict[str, tuple[str, str]]:
    """Module constant -> (API group, plural), e.g. DEPLOYMENTS -> ("apps", "deployments"), NODES -> ("", "nodes")."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            call = node.value
            if isinstance(call.func, ast.Name) and call.func.id == "_Resource":
                # Literals, or names from the shared constants module.
                group_version, plural = (
                    arg.value if isinstance(arg, ast.Constant) else getattr(constants, arg.id) for arg in call.args[:2]
                )
                group = group_version.rsplit("/", 1)[0] if "/" in group_version else ""
                found[node.targets[0].id] = (group, plural)
    return found


def _cluster_scoped(tree: ast.Module) -> set[tuple[str, str]]:
    """(API group, plural) of the resources declared `namespaced=False`."""
    resources = _resources(tree)
    scoped = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            keywords = {k.arg: k.value for k in node.value.keywords}
            flag = keywords.get("namespaced")
            if isinstance(flag, ast.Constant) and flag.value is False:
                scoped.add(resources[node.targets[0].id])
    return scoped


def _client_methods(tree: ast.Module, resources: dict[str, tuple[str, str]]) -> dict[str, set]:
    """KubeClient method -> the (verb, group, plural) it may send, following calls between its methods."""
    [client] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "KubeClient"]
    direct: dict[str, set] = {}
    calls: dict[str, set] = {}
    for method in (n for n in client.body if isinstance(n, ast.FunctionDef)):
        direct[method.name], calls[method.name] = set(), set()
        for node in ast.walk(method):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if not (isinstance(node.func.value, ast.Name) and node.func.value.id == "self"):
                continue
            name, args = node.func.attr, node.args
            if name == "_request":
                # Inside _replace the resource is a parameter: its callers are resolved below instead.
                if isinstance(args[1], ast.Name) and args[1].id in resources:
                    direct[method.name].add((HTTP_VERBS[args[0].value], *resources[args[1].id]))
            elif name == "_replace" and isinstance(args[0], ast.Name) and args[0].id in resources:
                # Read, change, write back whole: GET then PUT.
                direct[method.name] |= {("get", *resources[args[0].id]), ("update", *resources[args[0].id])}
            elif name == "_list" and isinstance(args[0], ast.Name) and args[0].id in resources:
                # A GET of the collection, page by page: the list verb.
                direct[method.name].add(("list", *resources[args[0].id]))
            else:
                calls[method.name].add(name)
    effects: dict[str, set] = {}

    def effect(name: str, seen: frozenset = frozenset()) -> set:
        if name not in direct or name in seen:
            return set()
        total = set(direct[name])
        for callee in calls[name]:
            total |= effect(callee, seen | {name})
        return total

    for name in direct:
        effects[name] = effect(name)
    return effects


def _used_client_methods(path: Path) -> set[str]:
    """Names X in `<anything>.kube.X(...)` in one module."""
    used = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Attribute) and owner.attr == "kube":
                used.add(node.func.attr)
    return used


def rollout_kubernetes_calls() -> set[tuple[str, str, str]]:
    tree = ast.parse(KUBE_CLIENT.read_text())
    effects = _client_methods(tree, _resources(tree))
    used = set().union(*(_used_client_methods(module) for module in callers()))
    unknown = used - set(effects)
    assert not unknown, f"the steps call client methods this test cannot resolve: {unknown}"
    return set().union(*(effects[name] for name in used))


def split_by_scope(calls: set[tuple[str, str, str]]) -> tuple[set, set]:
    """(namespaced calls, cluster-scoped calls)."""
    scoped = _cluster_scoped(ast.parse(KUBE_CLIENT.read_text()))
    cluster = {call for call in calls if call[1:] in scoped}
    return calls - cluster, cluster


def _granted(role: dict) -> set[tuple[str, str, str]]:
    assert all("resourceNames" not in rule or rule["resourceNames"] for rule in role["rules"])
    return {
        (verb, group, resource)
        for rule in role["rules"]
        for verb in rule["verbs"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


def _rbac_objects(env: SynthesizedEnvironment) -> list[dict]:
    """The Role and RoleBinding the Rollout stack applies (their manifests hold no deploy-time tokens)."""
    objects = []
    for resource in env.resources("Rollout", "Custom::AWSCDK-EKS-KubernetesResource").values():
        manifest = resource["Properties"]["Manifest"]
        if isinstance(manifest, str):
            objects += [
                o
                for o in json.loads(manifest)
                if o["kind"] in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
            ]
    return objects


def test_the_derivation_sees_what_the_client_does() -> None:
    calls = rollout_kubernetes_calls()
    # The steps read and update both kinds of object; nothing creates or deletes them.
    assert ("get", "apps", "deployments") in calls
    assert ("update", "autoscaling", "horizontalpodautoscalers") in calls
    assert ("update", "keda.sh", "scaledobjects") in calls  # stable's floor for a service scaled by KEDA
    assert not {verb for verb, _, _ in calls} & {"create", "delete", "patch"}
    # Pricing a track lists its pods (namespaced) and the nodes (cluster-scoped), and only reads them.
    namespaced, cluster = split_by_scope(calls)
    assert ("list", "", "pods") in namespaced
    assert cluster == {("list", "", "nodes")}


def test_role_allows_exactly_what_the_rollout_client_calls(dev: SynthesizedEnvironment) -> None:
    objects = _rbac_objects(dev)
    [role] = [o for o in objects if o["kind"] == "Role"]
    assert role["metadata"]["namespace"] == NAMESPACE
    namespaced, _ = split_by_scope(rollout_kubernetes_calls())
    assert _granted(role) == namespaced


def test_cluster_role_allows_exactly_the_cluster_scoped_reads(dev: SynthesizedEnvironment) -> None:
    objects = _rbac_objects(dev)
    [cluster_role] = [o for o in objects if o["kind"] == "ClusterRole"]
    [binding] = [o for o in objects if o["kind"] == "ClusterRoleBinding"]
    _, cluster = split_by_scope(rollout_kubernetes_calls())
    assert _granted(cluster_role) == cluster
    assert {verb for verb, _, _ in _granted(cluster_role)} <= {"get", "list", "watch"}
    assert "namespace" not in cluster_role["metadata"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": cluster_role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": ROLLOUT_KUBERNETES_GROUP}
    ]


def test_role_is_bound_to_the_rollout_group_only(dev: SynthesizedEnvironment) -> None:
    objects = _rbac_objects(dev)
    [role] = [o for o in objects if o["kind"] == "Role"]
    [binding] = [o for o in objects if o["kind"] == "RoleBinding"]
    assert binding["metadata"]["namespace"] == NAMESPACE
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": ROLLOUT_KUBERNETES_GROUP}
    ]


def test_access_entry_maps_to_the_group_without_an_access_policy(dev: SynthesizedEnvironment) -> None:
    [entry] = dev.resources("Rollout", "AWS::EKS::AccessEntry").values()
    properties = entry["Properties"]
    assert properties["KubernetesGroups"] == [ROLLOUT_KUBERNETES_GROUP]
    assert not properties.get("AccessPolicies")
