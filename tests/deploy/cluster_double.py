"""ClusterDouble: a TEST DOUBLE of a Kubernetes API server's object store and admission, for what a deploy
writes through kubectl and helm (tests/deploy/kubectl_double.py) and, through the admission hook of
tests/rollout/kube_double.py, for what Tessera's track owner writes over HTTP.

It is not a Kubernetes API server. It keeps objects by (group, kind, namespace, name) and refuses a write the
way the API server does for the mistakes a deploy can make:

- a namespaced object whose namespace does not exist (404 `namespaces "x" not found`), or whose namespace is
  being deleted;
- a kind that nothing serves: a custom resource before its CustomResourceDefinition (404 `no matches for
  kind`), which in a deploy means before the chart that installs it;
- an object that fails its schema: built-in kinds against the Kubernetes OpenAPI schemas of the cluster's
  minor (kubernetes-validate, strict: the server would drop an unknown field), custom kinds against the
  vendored CRD schemas (tests/crd_schemas.py), where Tessera has one (422 `Invalid`).

Deleting a CRD deletes its objects; deleting a namespace deletes what is in it, here and in the HTTP double.
Scope (namespaced or not) of built-in kinds comes from a table below; of custom kinds from their CRD.

It also remembers who made each namespace and CRD (the `actor`, a deploy's resource, set by the caller
around each call) and who relied on them: a write that succeeded only because another resource happened to
run first is a deploy that fails in another order (`reliances`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import jsonschema
import kubernetes_validate

from tests import crd_schemas
from tests.rollout.kube_double import AdmissionRefused, KubernetesApiDouble

# Built-in kinds that are not namespaced (the API server's discovery says `namespaced: false`).
CLUSTER_SCOPED_BUILT_INS = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
        "APIService",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "RuntimeClass",
        "CSIDriver",
    }
)
# API groups the API server itself serves (everything else needs a CRD).
BUILT_IN_GROUPS = frozenset(
    {
        "",
        "apps",
        "batch",
        "autoscaling",
        "policy",
        "rbac.authorization.k8s.io",
        "networking.k8s.io",
        "storage.k8s.io",
        "scheduling.k8s.io",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "apiregistration.k8s.io",
        "coordination.k8s.io",
        "node.k8s.io",
        "discovery.k8s.io",
    }
)


@dataclass(frozen=True)
class Crd:
    """A CustomResourceDefinition, as much of it as admission needs."""

    group: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def name(self) -> str:
        return f"{self.plural}.{self.group}"


Key = tuple[str, str, str, str]  # group, kind, namespace ("" when cluster-scoped), name


def group_of(obj: dict) -> str:
    api_version = obj.get("apiVersion", "")
    return api_version.split("/")[0] if "/" in api_version else ""


class ClusterDouble:
    """The objects of one cluster (see the module docstring). `api` is the HTTP double the track owner talks to;
    this double becomes its admission, so both refuse the same writes."""

    def __init__(self, api: KubernetesApiDouble, *, kubernetes_version: str) -> None:
        self.api = api
        self.kubernetes_version = kubernetes_version
        self._objects: dict[Key, dict] = {}
        self._crds: dict[tuple[str, str], Crd] = {}
        self.actor: str | None = None  # the deploy's resource whose call is under way
        self._made_by: dict[Key, str] = {}
        self.reliances: set[tuple[str, str, str]] = set()  # (actor, what it relied on, the resource that made it)
        for namespace in ("default", "kube-system", "kube-public", "kube-node-lease"):  # EKS makes these
            self._objects[("", "Namespace", "", namespace)] = _namespace(namespace)
        api._admission = self.admit

    # -- what kubectl and helm do ------------------------------------------------------------------

    def create(self, obj: dict) -> None:
        key = self._key(obj)
        if key in self._objects:
            raise AdmissionRefused(409, f'{obj["kind"]} "{key[3]}" already exists')
        self.admit(obj)
        self._store(key, obj)

    def apply(self, obj: dict) -> None:
        """Create or replace (kubectl apply's outcome for the fields a manifest names)."""
        self.admit(obj)
        self._store(self._key(obj), obj)

    def delete(self, obj: dict) -> bool:
        """Delete one object; False when there was none (kubectl reports NotFound)."""
        key = self._key(obj)
        if self._objects.pop(key, None) is None:
            return False
        self._made_by.pop(key, None)
        if obj["kind"] == "Namespace":
            self._remove_namespace(key[3])
        if obj["kind"] == "CustomResourceDefinition":
            crd = next((crd for crd in self._crds.values() if crd.name == key[3]), None)
            if crd is not None:
                self.remove_crd(crd)
        return True

    def install_crd(self, crd: Crd) -> None:
        """What the API server does when a CRD is created: the kind is served from then on."""
        self._crds[(crd.group, crd.kind)] = crd
        definition = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition"}
        self._store(
            ("apiextensions.k8s.io", "CustomResourceDefinition", "", crd.name),
            definition | {"metadata": {"name": crd.name}},
        )

    def remove_crd(self, crd: Crd) -> None:
        """Deleting a CRD deletes every object of its kind."""
        self._crds.pop((crd.group, crd.kind), None)
        definition = ("apiextensions.k8s.io", "CustomResourceDefinition", "", crd.name)
        self._objects.pop(definition, None)
        self._made_by.pop(definition, None)
        for key in [key for key in self._objects if key[:2] == (crd.group, crd.kind)]:
            del self._objects[key]

    # -- what tests observe ------------------------------------------------------------------------

    def objects(self, kind: str | None = None) -> list[dict]:
        return [copy.deepcopy(obj) for key, obj in sorted(self._objects.items()) if kind in (None, key[1])]

    def has_namespace(self, name: str) -> bool:
        return ("", "Namespace", "", name) in self._objects

    def serves(self, group: str, kind: str) -> bool:
        return group in BUILT_IN_GROUPS or (group, kind) in self._crds

    # -- admission ---------------------------------------------------------------------------------

    def admit(self, obj: dict) -> None:
        """Refuse what the API server would refuse of this object (see the module docstring)."""
        group, kind = group_of(obj), obj.get("kind", "")
        if not self.serves(group, kind):
            raise AdmissionRefused(
                404, f'no matches for kind "{kind}" in version "{obj.get("apiVersion")}": is its CRD installed?'
            )
        namespace = (obj.get("metadata") or {}).get("namespace")
        if self._namespaced(group, kind):
            if not namespace:
                raise AdmissionRefused(
                    400, f"{kind} {obj['metadata'].get('name')}: a namespaced kind needs a namespace"
                )
            if not self.has_namespace(namespace):
                raise AdmissionRefused(404, f'namespaces "{namespace}" not found')
            self._rely_on(("", "Namespace", "", namespace))
        if group not in BUILT_IN_GROUPS:
            self._rely_on(("apiextensions.k8s.io", "CustomResourceDefinition", "", self._crds[(group, kind)].name))
        self._validate(group, kind, obj)

    def _rely_on(self, key: Key) -> None:
        maker = self._made_by.get(key)
        if maker is not None and self.actor is not None and maker != self.actor:
            self.reliances.add((self.actor, f"{key[1]} {key[3]}", maker))

    def _store(self, key: Key, obj: dict) -> None:
        if key not in self._objects and self.actor is not None:
            self._made_by[key] = self.actor
        self._objects[key] = copy.deepcopy(obj)

    def _validate(self, group: str, kind: str, obj: dict) -> None:
        try:
            if group in BUILT_IN_GROUPS:
                kubernetes_validate.validate(obj, self.kubernetes_version, strict=True)
            elif kind in crd_schemas.CRDS or kind == "TargetGroupBinding":
                jsonschema.validate(obj, crd_schemas.schema(kind))
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as error:
            raise AdmissionRefused(422, f"{kind} {obj['metadata'].get('name')} is invalid: {error.message}") from error

    def _namespaced(self, group: str, kind: str) -> bool:
        if group in BUILT_IN_GROUPS:
            return kind not in CLUSTER_SCOPED_BUILT_INS
        return self._crds[(group, kind)].namespaced

    def _key(self, obj: dict) -> Key:
        group, kind = group_of(obj), obj["kind"]
        namespaced = self.serves(group, kind) and self._namespaced(group, kind)
        namespace = (obj["metadata"].get("namespace") or "") if namespaced else ""
        return group, kind, namespace, obj["metadata"]["name"]

    def _remove_namespace(self, name: str) -> None:
        for key in [key for key in self._objects if key[2] == name]:
            del self._objects[key]
        self.api.remove_namespace(name)


def _namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
