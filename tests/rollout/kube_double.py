"""KubernetesApiDouble: a TEST DOUBLE of the Kubernetes API server, for the rollout's tests.

It is not a Kubernetes API server and not a fake of the whole API: it serves apps/v1 Deployments,
autoscaling/v2 HorizontalPodAutoscalers and KEDA's keda.sh/v1alpha1 ScaledObjects (GET, PUT and
DELETE of one object by namespace and name, POST to create one), and reads of core/v1 Pods (namespaced)
and Nodes (cluster-scoped): GET of one, and lists with `labelSelector`, `limit` and `continue`, on
127.0.0.1 over plain HTTP (or TLS when given a server context), and follows the real server's
semantics where the rollout client depends on them:

- every write bumps metadata.resourceVersion (a string, one counter across the server); a write that
  changes nothing is a no-op and bumps nothing;
- metadata.generation is bumped when the spec changes, never for metadata alone;
- PUT carries the whole object; its resourceVersion must be the stored one, or the answer is
  409 Conflict (a PUT without one is an unconditional update, as Deployments allow); status and the
  server-managed metadata in the body are ignored; spec.replicas defaults to 1;
- errors are Kubernetes Status objects (`{"kind": "Status", "status": "Failure", "reason": ..., "code": ...}`);
- requests need `Authorization: Bearer k8s-aws-v1.<...>` (an EKS token); missing, malformed or
  revoked tokens get 401;
- a list is a `<Kind>List` (`items` without kind and apiVersion, `metadata.resourceVersion`), in key
  order (namespace, name); `labelSelector` takes equality (`=`, `==`, `!=`), set (`in`, `notin`) and
  existence (`k`, `!k`) requirements, and a selector it cannot parse is a 400; with `limit` a page holds
  at most that many items and `metadata.continue` carries on after the page's last key (the real server
  also pins the first page's snapshot; tests that change objects between pages see the change here).

It also plays the Deployment controller, crudely: after a spec change the status shows a rollout in
progress for `ready_after_reads` GETs of that Deployment, then all replicas updated, ready and
available (0 reads: at once). Each such status change is a write (it bumps resourceVersion), as the
controller's status updates are.

With an `admission` callable (tests/deploy/cluster_double.py gives one), every create and update of these
objects is first shown to it, as the API server's own checks would see it (its namespace must exist, its
kind must be served, it must match its schema): an `AdmissionRefused` it raises becomes the error answer.

Tests steer it with `fail_next` (queued error responses, returned before anything else), `revoke`
(a token the server stops accepting), `update` (a write by someone else: an operator, the HPA) and
`set_ready_after_reads`; they observe it through `requests`, `tokens` and `deployment`.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import ssl
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL_VERSION_LABEL = "tessera.dev/model-version"
TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - the EKS token format, not a secret
_DEPLOYMENT_PATH = re.compile(r"^/apis/apps/v1/namespaces/(?P<namespace>[^/]+)/deployments/(?P<name>[^/]+)$")
_DEPLOYMENTS_PATH = re.compile(r"^/apis/apps/v1/namespaces/(?P<namespace>[^/]+)/deployments$")
_SCALER_PATH = re.compile(
    r"^/apis/(?P<group_version>autoscaling/v2|keda\.sh/v1alpha1)/namespaces/(?P<namespace>[^/]+)/"
    r"(?P<plural>horizontalpodautoscalers|scaledobjects)(/(?P<name>[^/]+))?$"
)
_POD_PATH = re.compile(r"^/api/v1/namespaces/(?P<namespace>[^/]+)/pods/(?P<name>[^/]+)$")
_PODS_PATH = re.compile(r"^/api/v1/namespaces/(?P<namespace>[^/]+)/pods$")
_NODE_PATH = re.compile(r"^/api/v1/nodes/(?P<name>[^/]+)$")
_NODES_PATH = re.compile(r"^/api/v1/nodes$")
_LABEL_KEY = r"[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?"
_LABEL_VALUE = r"([A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?)?"
_SET_REQUIREMENT = re.compile(rf"^(?P<key>{_LABEL_KEY})\s+(?P<op>in|notin)\s+\((?P<values>[^)]*)\)$")
_EQUALITY_REQUIREMENT = re.compile(rf"^(?P<key>{_LABEL_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_LABEL_VALUE})$")
_EXISTS_REQUIREMENT = re.compile(rf"^(?P<not>!?)\s*(?P<key>{_LABEL_KEY})$")


class _ScalerKind:
    """What the double checks of an autoscaler's floor: HPAs need 1 <= minReplicas <= maxReplicas (the
    API server's validation); KEDA's admission webhook needs minReplicaCount <= maxReplicaCount, and 0 is
    allowed (scale to zero)."""

    def __init__(self, kind: str, group_version: str, noun: str, min_field: str, max_field: str, lowest: int) -> None:
        self.kind, self.group_version, self.noun = kind, group_version, noun
        self.min_field, self.max_field, self.lowest = min_field, max_field, lowest


_SCALER_KINDS = {
    "horizontalpodautoscalers": _ScalerKind(
        "HorizontalPodAutoscaler",
        "autoscaling/v2",
        "horizontalpodautoscalers.autoscaling",
        "minReplicas",
        "maxReplicas",
        1,
    ),
    "scaledobjects": _ScalerKind(
        "ScaledObject", "keda.sh/v1alpha1", "scaledobjects.keda.sh", "minReplicaCount", "maxReplicaCount", 0
    ),
}
_REASONS = {
    400: "BadRequest",
    410: "Expired",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
_SERVER_MANAGED_METADATA = ("name", "namespace", "uid", "creationTimestamp", "generation", "resourceVersion")


class AdmissionRefused(Exception):  # noqa: N818 - an answer of the server, not a bug
    """What an admission check raises to refuse a write: the status code and message the client gets."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _ApiError(Exception):
    """An error reply, raised anywhere in request handling and turned into a Status response."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def status_body(code: int, message: str) -> dict:
    """A Kubernetes Status object, as the API server returns with every error."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": _REASONS.get(code, "Unknown"),
        "code": code,
    }


class KubernetesApiDouble:
    """A test double of the Kubernetes API server: Deployments, HPAs, ScaledObjects (see the module docstring).

    Use as a context manager, or start() and stop(). `tls`, a server-side SSLContext, makes it serve HTTPS.
    """

    def __init__(self, *, tls: ssl.SSLContext | None = None, admission: Callable[[dict], None] | None = None) -> None:
        self._tls = tls
        self._admission = admission
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str], dict] = {}
        self._autoscalers: dict[tuple[str, str, str], dict] = {}
        self._ready_after_reads: dict[tuple[str, str], int] = {}
        self._pending_reads: dict[tuple[str, str], int] = {}
        self._faults: list[tuple[str, int, str | None]] = []
        self._revoked: set[str] = set()
        self._pods: dict[tuple[str, str], dict] = {}
        self._nodes: dict[str, dict] = {}
        self._resource_version = 1000
        self._uids = 0
        self.requests: list[tuple[str, str]] = []
        self.tokens: list[str | None] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> KubernetesApiDouble:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        if self._tls is not None:
            server.socket = self._tls.wrap_socket(server.socket, server_side=True)
        server.double = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="kubernetes-api-double", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> KubernetesApiDouble:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("the Kubernetes API double is not running")
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    # -- what tests set up -----------------------------------------------------------------------

    def add_deployment(
        self,
        namespace: str,
        name: str,
        replicas: int = 1,
        image: str = "111122223333.dkr.ecr.us-east-1.amazonaws.com/tessera/dev/assistant:1.0.0",
        env: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        *,
        ready_after_reads: int = 0,
    ) -> dict:
        """Store a Deployment shaped like Tessera's (one container "server", env as name/value pairs,
        the model version as a pod label), ready at its current spec. Returns the stored object."""
        env = {"MODEL_VERSION": "v1", "MODEL_S3_URI": "s3://models/assistant/v1/"} if env is None else env
        labels = {"app.kubernetes.io/name": name} if labels is None else labels
        selector = {key: value for key, value in labels.items() if key != MODEL_VERSION_LABEL}
        pod_labels = dict(labels)
        if "MODEL_VERSION" in env:
            pod_labels.setdefault(MODEL_VERSION_LABEL, env["MODEL_VERSION"])
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(selector)},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": selector},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": {
                    "metadata": {"labels": pod_labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "server",
                                "image": image,
                                "env": [{"name": key, "value": value} for key, value in env.items()],
                                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                            }
                        ]
                    },
                },
            },
        }
        return self.add_rendered_deployment(namespace, deployment, ready_after_reads=ready_after_reads)

    def add_rendered_deployment(self, namespace: str, deployment: dict, *, ready_after_reads: int = 0) -> dict:
        """Store a Deployment as given (for example one rendered by the Services stack), as a create would:
        the server fills in uid, generation, resourceVersion and status. Returns the stored object."""
        with self._lock:
            if (namespace, deployment["metadata"]["name"]) in self._objects:
                raise ValueError(f"deployment {namespace}/{deployment['metadata']['name']} already exists")
            return self._insert(namespace, deployment, ready_after_reads=ready_after_reads)

    def _insert(self, namespace: str, deployment: dict, *, ready_after_reads: int) -> dict:
        """Store a new Deployment (the caller holds the lock)."""
        deployment = copy.deepcopy(deployment)
        name = deployment["metadata"]["name"]
        deployment["metadata"]["namespace"] = namespace
        key = (namespace, name)
        self._uids += 1
        deployment["metadata"] |= {
            "uid": f"00000000-0000-4000-8000-{self._uids:012d}",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "generation": 1,
            "resourceVersion": self._next_resource_version(),
        }
        deployment["spec"].setdefault("replicas", 1)
        deployment["status"] = _ready_status(deployment)
        self._objects[key] = deployment
        self._ready_after_reads[key] = ready_after_reads
        self._pending_reads[key] = 0
        return copy.deepcopy(deployment)

    def set_ready_after_reads(self, namespace: str, name: str, reads: int) -> None:
        """How many GETs after each spec change see the rollout still in progress."""
        with self._lock:
            self._stored(namespace, name)
            self._ready_after_reads[(namespace, name)] = reads

    def clear_faults(self) -> None:
        """Forget every queued error response."""
        with self._lock:
            self._faults.clear()

    def fail_next(self, method: str, status_code: int, times: int = 1, message: str | None = None) -> None:
        """Answer the next `times` requests with this method with `status_code` (a Status body), before
        authentication or any other handling."""
        with self._lock:
            self._faults.extend([(method.upper(), status_code, message)] * times)

    def revoke(self, token: str) -> None:
        """Stop accepting `token` (as when it expires): requests bearing it get 401."""
        with self._lock:
            self._revoked.add(token)

    def update(self, namespace: str, name: str, change: Callable[[dict], None]) -> dict:
        """A write by someone else (an operator, the HPA), straight into the store: `change` edits the
        stored object, which is then written with the same semantics as a PUT."""
        with self._lock:
            desired = copy.deepcopy(self._stored(namespace, name))
            change(desired)
            return copy.deepcopy(self._write(namespace, name, desired))

    def add_pod(
        self,
        namespace: str,
        name: str,
        *,
        labels: dict[str, str],
        node: str | None,
        requests: dict[str, str],
        phase: str = "Running",
    ) -> dict:
        """Store a pod with one container "server" requesting `requests`, bound to `node` (None: Pending,
        unscheduled), as the scheduler and kubelet leave it."""
        pod = {
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "spec": {"containers": [{"name": "server", "image": "server", "resources": {"requests": dict(requests)}}]},
            "status": {"phase": phase if node is not None else "Pending"},
        }
        if node is not None:
            pod["spec"]["nodeName"] = node
        with self._lock:
            pod["metadata"]["resourceVersion"] = self._next_resource_version()
            self._pods[(namespace, name)] = pod
            return copy.deepcopy(pod)

    def delete_pod(self, namespace: str, name: str) -> None:
        with self._lock:
            del self._pods[(namespace, name)]

    def add_node(
        self,
        name: str,
        *,
        instance_type: str,
        capacity_type: str,
        allocatable: dict[str, str],
        labels: dict[str, str] | None = None,
    ) -> dict:
        """Store a node labelled as Karpenter labels its nodes (instance type, capacity type)."""
        node = {
            "metadata": {
                "name": name,
                "labels": {
                    "node.kubernetes.io/instance-type": instance_type,
                    "karpenter.sh/capacity-type": capacity_type,
                    **(labels or {}),
                },
            },
            "status": {"allocatable": dict(allocatable), "capacity": dict(allocatable)},
        }
        with self._lock:
            node["metadata"]["resourceVersion"] = self._next_resource_version()
            self._nodes[name] = node
            return copy.deepcopy(node)

    # -- what tests observe ----------------------------------------------------------------------

    _STORE = ("_objects", "_autoscalers", "_ready_after_reads", "_pending_reads", "_pods", "_nodes", "_uids")

    def snapshot(self) -> dict:
        """Everything the server stores (not its faults or request log), for `restore`."""
        with self._lock:
            return copy.deepcopy({name: getattr(self, name) for name in self._STORE})

    def restore(self, snapshot: dict) -> None:
        """Put back what `snapshot` took, as a new server would hold it; queued faults and the log are dropped.
        resourceVersions keep growing, as a real server's do."""
        with self._lock:
            for name, value in copy.deepcopy(snapshot).items():
                setattr(self, name, value)
            self._faults.clear()
            self._revoked.clear()
            self.requests.clear()
            self.tokens.clear()

    def deployment(self, namespace: str, name: str) -> dict:
        """The stored object (a copy), without counting as a read by the controller simulation."""
        with self._lock:
            return copy.deepcopy(self._stored(namespace, name))

    def requests_for(self, method: str) -> list[str]:
        """Paths of the requests with this method, in order."""
        return [path for recorded_method, path in self.requests if recorded_method == method]

    def remove_namespace(self, namespace: str) -> None:
        """What deleting a namespace does to the objects in it: they go with it."""
        with self._lock:
            for key in [key for key in self._objects if key[0] == namespace]:
                del self._objects[key]
            for key in [key for key in self._autoscalers if key[1] == namespace]:
                del self._autoscalers[key]
            for key in [key for key in self._pods if key[0] == namespace]:
                del self._pods[key]

    def stored_objects(self, namespace: str) -> list[dict]:
        """Every Deployment and autoscaler stored in `namespace` (copies), for tests that compare the cluster
        with what config renders."""
        with self._lock:
            found = [obj for key, obj in self._objects.items() if key[0] == namespace]
            found += [obj for key, obj in self._autoscalers.items() if key[1] == namespace]
            return copy.deepcopy(found)

    # -- request handling (server threads) -------------------------------------------------------

    def _handle(self, method: str, path: str, authorization: str | None, content_type: str, body: bytes) -> dict:
        """The JSON answer to one request; raises _ApiError for an error answer."""
        with self._lock:
            token = authorization[len("Bearer ") :] if authorization and authorization.startswith("Bearer ") else None
            self.requests.append((method, path))
            self.tokens.append(token)
            for index, (fault_method, code, message) in enumerate(self._faults):
                if fault_method == method:
                    del self._faults[index]
                    raise _ApiError(code, message or f"injected {code} for {method} {path}")
            if token is None or not token.startswith(TOKEN_PREFIX) or token == TOKEN_PREFIX:
                raise _ApiError(401, "Unauthorized")
            if token in self._revoked:
                raise _ApiError(401, "Unauthorized")
            path, _, query = path.partition("?")
            if (read := self._core_read(method, path, urllib.parse.parse_qs(query))) is not None:
                return read
            match = _SCALER_PATH.match(path)
            if match is not None and _SCALER_KINDS[match["plural"]].group_version == match["group_version"]:
                kind = _SCALER_KINDS[match["plural"]]
                if match["name"] is None and method == "POST":
                    return self._create_autoscaler(kind, match["namespace"], content_type, body)
                if match["name"] is not None:
                    return self._autoscaler_request(kind, method, match["namespace"], match["name"], content_type, body)
            if (match := _DEPLOYMENTS_PATH.match(path)) is not None and method == "POST":
                return self._create(match["namespace"], content_type, body)
            match = _DEPLOYMENT_PATH.match(path)
            if match is None:
                raise _ApiError(404, "the server could not find the requested resource")
            namespace, name = match["namespace"], match["name"]
            if method == "GET":
                return self._get(namespace, name)
            if method == "PUT":
                return self._put(namespace, name, content_type, body)
            if method == "DELETE":
                self._stored(namespace, name)
                del self._objects[(namespace, name)]
                return status_body(200, "deleted") | {"status": "Success"}
            raise _ApiError(405, f"{method} is not supported by this test double")

    def _core_read(self, method: str, path: str, query: dict[str, list[str]]) -> dict | None:
        """Answer a request for pods or nodes (None: the path is not theirs). Only reads are served."""
        if match := _PODS_PATH.match(path):
            objects = {key: pod for key, pod in self._pods.items() if key[0] == match["namespace"]}
            kind, single = "PodList", None
        elif match := _POD_PATH.match(path):
            objects, kind = {}, None
            single = self._pods.get((match["namespace"], match["name"])), f'pods "{match["name"]}" not found'
        elif _NODES_PATH.match(path):
            objects = {("", name): node for name, node in self._nodes.items()}
            kind, single = "NodeList", None
        elif match := _NODE_PATH.match(path):
            objects, kind = {}, None
            single = self._nodes.get(match["name"]), f'nodes "{match["name"]}" not found'
        else:
            return None
        if method != "GET":
            raise _ApiError(405, f"{method} is not supported by this test double")
        if single is not None:
            found, missing = single
            if found is None:
                raise _ApiError(404, missing)
            return copy.deepcopy(found) | {"kind": "Pod" if "pods" in path else "Node", "apiVersion": "v1"}
        return self._list(kind, objects, query)

    def _list(self, kind: str, objects: dict[tuple[str, str], dict], query: dict[str, list[str]]) -> dict:
        matches = _label_selector(query.get("labelSelector", [""])[0])
        keys = sorted(key for key, obj in objects.items() if matches(obj["metadata"].get("labels") or {}))
        if token := query.get("continue", [""])[0]:
            try:
                after = tuple(json.loads(base64.urlsafe_b64decode(token.encode()))["after"])
            except (ValueError, KeyError, TypeError):
                raise _ApiError(400, "continue key is not valid") from None
            keys = [key for key in keys if key > after]
        metadata: dict[str, Any] = {"resourceVersion": str(self._resource_version)}
        limit = query.get("limit", [""])[0]
        if limit:
            if not limit.isdigit():
                raise _ApiError(400, f"limit: Invalid value: {limit!r}")
            page = int(limit)
            if 0 < page < len(keys):
                keys, rest = keys[:page], keys[page:]
                metadata["continue"] = base64.urlsafe_b64encode(json.dumps({"after": keys[-1]}).encode()).decode()
                if not query.get("labelSelector", [""])[0]:
                    metadata["remainingItemCount"] = len(rest)
        return {
            "kind": kind,
            "apiVersion": "v1",
            "metadata": metadata,
            "items": [copy.deepcopy(objects[k]) for k in keys],
        }

    def _create(self, namespace: str, content_type: str, body: bytes) -> dict:
        desired = _json_object(content_type, body)
        name = (desired.get("metadata") or {}).get("name")
        if (namespace, name) in self._objects:
            raise _ApiError(409, f'deployments.apps "{name}" already exists')
        self._admit(desired | {"metadata": {**desired.get("metadata", {}), "namespace": namespace}})
        spec = desired.get("spec") or {}
        spec.setdefault("replicas", 1)
        _validate(spec, spec)
        desired["metadata"] = {k: v for k, v in desired["metadata"].items() if k not in ("uid", "resourceVersion")}
        return self._insert(namespace, desired, ready_after_reads=0)

    def _create_autoscaler(self, kind: _ScalerKind, namespace: str, content_type: str, body: bytes) -> dict:
        desired = _json_object(content_type, body)
        name = desired["metadata"]["name"]
        if (kind.kind, namespace, name) in self._autoscalers:
            raise _ApiError(409, f'{kind.noun} "{name}" already exists')
        self._admit(desired | {"metadata": {**desired["metadata"], "namespace": namespace}})
        _validate_floor(kind, desired.get("spec") or {})
        desired["metadata"] |= {"namespace": namespace, "resourceVersion": self._next_resource_version()}
        self._autoscalers[(kind.kind, namespace, name)] = desired
        return copy.deepcopy(desired)

    def _autoscaler_request(
        self, kind: _ScalerKind, method: str, namespace: str, name: str, content_type: str, body: bytes
    ) -> dict:
        key = (kind.kind, namespace, name)
        if key not in self._autoscalers:
            raise _ApiError(404, f'{kind.noun} "{name}" not found')
        stored = self._autoscalers[key]
        if method == "GET":
            return copy.deepcopy(stored)
        if method == "DELETE":
            del self._autoscalers[key]
            return status_body(200, "deleted") | {"status": "Success"}
        if method != "PUT":
            raise _ApiError(405, f"{method} is not supported by this test double")
        desired = _json_object(content_type, body)
        sent_version = (desired.get("metadata") or {}).get("resourceVersion")
        if sent_version is not None and sent_version != stored["metadata"]["resourceVersion"]:
            raise _ApiError(409, f'Operation cannot be fulfilled on {kind.noun} "{name}"')
        self._admit(desired | {"metadata": {**(desired.get("metadata") or {}), "namespace": namespace}})
        spec = desired.get("spec") or {}
        _validate_floor(kind, spec)
        if spec != stored["spec"]:
            stored = {**stored, "spec": copy.deepcopy(spec)}
            stored["metadata"] = {**stored["metadata"], "resourceVersion": self._next_resource_version()}
            self._autoscalers[key] = stored
        return copy.deepcopy(stored)

    def add_autoscaler(self, namespace: str, name: str, *, min_replicas: int, max_replicas: int) -> None:
        """Store an autoscaling/v2 HPA of the Deployment of the same name."""
        self._add_scaler(_SCALER_KINDS["horizontalpodautoscalers"], namespace, name, min_replicas, max_replicas)

    def add_scaled_object(self, namespace: str, name: str, *, min_replicas: int, max_replicas: int) -> None:
        """Store a KEDA ScaledObject of the Deployment of the same name."""
        self._add_scaler(_SCALER_KINDS["scaledobjects"], namespace, name, min_replicas, max_replicas)

    def _add_scaler(self, kind: _ScalerKind, namespace: str, name: str, min_replicas: int, max_replicas: int) -> None:
        with self._lock:
            self._autoscalers[(kind.kind, namespace, name)] = {
                "apiVersion": kind.group_version,
                "kind": kind.kind,
                "metadata": {"name": name, "namespace": namespace, "resourceVersion": self._next_resource_version()},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                    kind.min_field: min_replicas,
                    kind.max_field: max_replicas,
                },
            }

    def autoscaler(self, namespace: str, name: str) -> dict:
        """The stable autoscaler of that name: the ScaledObject if there is one (KEDA's), else the HPA."""
        with self._lock:
            for kind in ("ScaledObject", "HorizontalPodAutoscaler"):
                if (kind, namespace, name) in self._autoscalers:
                    return copy.deepcopy(self._autoscalers[(kind, namespace, name)])
            raise KeyError(f"no autoscaler {namespace}/{name}")

    def autoscaler_floor(self, namespace: str, name: str) -> int:
        scaler = self.autoscaler(namespace, name)
        kind = next(k for k in _SCALER_KINDS.values() if k.kind == scaler["kind"])
        return scaler["spec"].get(kind.min_field, kind.lowest)

    def scale_as_autoscaler(self, namespace: str, name: str, wanted: int) -> int:
        """What the HPA controller (KEDA's HPA included) does: set the Deployment's replicas to `wanted`
        within the autoscaler's [min, max]."""
        scaler = self.autoscaler(namespace, name)
        kind = next(k for k in _SCALER_KINDS.values() if k.kind == scaler["kind"])
        spec = scaler["spec"]
        replicas = max(spec.get(kind.min_field, kind.lowest), min(wanted, spec[kind.max_field]))
        self.update(namespace, name, lambda deployment: deployment["spec"].__setitem__("replicas", replicas))
        return replicas

    def _get(self, namespace: str, name: str) -> dict:
        key = (namespace, name)
        answer = copy.deepcopy(self._stored(namespace, name))
        if self._pending_reads[key] > 0:
            self._pending_reads[key] -= 1
            if self._pending_reads[key] == 0:
                stored = self._objects[key]
                stored["status"] = _ready_status(stored)
                stored["metadata"]["resourceVersion"] = self._next_resource_version()
        return answer

    def _put(self, namespace: str, name: str, content_type: str, body: bytes) -> dict:
        desired = _json_object(content_type, body)
        if desired.get("apiVersion") != "apps/v1" or desired.get("kind") != "Deployment":
            raise _ApiError(400, "the body must be an apps/v1 Deployment (apiVersion and kind)")
        metadata = desired.get("metadata") or {}
        if metadata.get("name") != name:
            raise _ApiError(
                400, f"the name of the object ({metadata.get('name')}) does not match the name on the URL ({name})"
            )
        if metadata.get("namespace", namespace) != namespace:
            raise _ApiError(
                400, "the namespace of the provided object does not match the namespace sent on the request"
            )
        stored = self._stored(namespace, name)
        sent_version = metadata.get("resourceVersion")
        if sent_version is not None and sent_version != stored["metadata"]["resourceVersion"]:
            raise _ApiError(
                409,
                f'Operation cannot be fulfilled on deployments.apps "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again",
            )
        self._admit(desired | {"metadata": {**metadata, "namespace": namespace}})
        return copy.deepcopy(self._write(namespace, name, desired))

    # -- the store (callers hold the lock) -------------------------------------------------------

    def _admit(self, desired: dict) -> None:
        if self._admission is None:
            return
        try:
            self._admission(copy.deepcopy(desired))
        except AdmissionRefused as refused:
            raise _ApiError(refused.code, refused.message) from refused

    def _stored(self, namespace: str, name: str) -> dict:
        try:
            return self._objects[(namespace, name)]
        except KeyError:
            raise _ApiError(404, f'deployments.apps "{name}" not found') from None

    def _next_resource_version(self) -> str:
        self._resource_version += 1
        return str(self._resource_version)

    def _write(self, namespace: str, name: str, desired: dict) -> dict:
        """Store `desired` over the current object the way the API server does: server-managed metadata
        and status are kept, spec is defaulted and validated, generation follows spec changes."""
        key = (namespace, name)
        stored = self._objects[key]
        spec = copy.deepcopy(desired.get("spec") or {})
        spec.setdefault("replicas", 1)
        _validate(spec, stored["spec"])
        metadata = {k: v for k, v in (desired.get("metadata") or {}).items() if k not in _SERVER_MANAGED_METADATA}
        metadata |= {k: stored["metadata"][k] for k in _SERVER_MANAGED_METADATA if k in stored["metadata"]}
        if spec == stored["spec"] and metadata == stored["metadata"]:
            return stored  # a no-op update: nothing is written, the resourceVersion stays
        new = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata,
            "spec": spec,
            "status": stored["status"],
        }
        new["metadata"]["resourceVersion"] = self._next_resource_version()
        if spec != stored["spec"]:
            new["metadata"]["generation"] = stored["metadata"]["generation"] + 1
            reads = self._ready_after_reads[key]
            if reads:
                new["status"] = _progressing_status(new, previous=stored)
            else:
                new["status"] = _ready_status(new)
            self._pending_reads[key] = reads
        self._objects[key] = new
        return new


def _validate_floor(kind: _ScalerKind, spec: dict) -> None:
    low, high = spec.get(kind.min_field, kind.lowest), spec.get(kind.max_field)
    if high is None or not kind.lowest <= low <= high:
        raise _ApiError(
            422, f"spec.{kind.min_field}: Invalid value: must be between {kind.lowest} and {kind.max_field}"
        )


def _label_selector(text: str) -> Callable[[dict[str, str]], bool]:
    """A label selector as the API server parses it (equality, set and existence requirements, ANDed);
    400 for one it cannot parse."""
    checks: list[Callable[[dict[str, str]], bool]] = []
    for raw in re.split(r",(?![^(]*\))", text) if text.strip() else []:
        requirement = raw.strip()
        if match := _SET_REQUIREMENT.match(requirement):
            values = {value.strip() for value in match["values"].split(",")}
            key, inside = match["key"], match["op"] == "in"
            checks.append(
                lambda labels, k=key, v=values, i=inside: (labels.get(k) in v) if i else labels.get(k) not in v
            )
        elif match := _EQUALITY_REQUIREMENT.match(requirement):
            key, value, equal = match["key"], match["value"], match["op"] != "!="
            checks.append(lambda labels, k=key, v=value, e=equal: (labels.get(k) == v) == e)
        elif match := _EXISTS_REQUIREMENT.match(requirement):
            key, present = match["key"], not match["not"]
            checks.append(lambda labels, k=key, p=present: (k in labels) == p)
        else:
            raise _ApiError(400, f"unable to parse requirement: {requirement!r}")
    return lambda labels: all(check(labels) for check in checks)


def _json_object(content_type: str, body: bytes) -> dict:
    if content_type.split(";")[0].strip() != "application/json":
        raise _ApiError(415, f"the body of the request was in an unknown format: {content_type or 'none'}")
    try:
        desired = json.loads(body)
    except ValueError as error:
        raise _ApiError(400, f"invalid JSON body: {error}") from error
    if not isinstance(desired, dict):
        raise _ApiError(400, "the request body is not a JSON object")
    return desired


def _validate(spec: dict, stored_spec: dict) -> None:
    """The checks of the API server's Deployment validation a client could trip over."""
    replicas = spec.get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise _ApiError(422, f"spec.replicas: Invalid value: {replicas!r}: must be greater than or equal to 0")
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    if selector != ((stored_spec.get("selector") or {}).get("matchLabels") or {}):
        raise _ApiError(422, "spec.selector: Invalid value: field is immutable")
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        raise _ApiError(
            422, "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`"
        )
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    if not containers or any(not c.get("name") or not c.get("image") for c in containers):
        raise _ApiError(422, "spec.template.spec.containers: Required value: every container needs a name and an image")


def _ready_status(deployment: dict) -> dict:
    """The status once the controller has rolled out the current spec and every pod is available."""
    replicas = deployment["spec"]["replicas"]
    return {
        "observedGeneration": deployment["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}],
    }


def _progressing_status(deployment: dict, *, previous: dict) -> dict:
    """The status while the controller works on a new spec: it has observed it, the old pods still
    run, and none runs a changed template yet (a pure scale keeps the pods it has)."""
    wanted = deployment["spec"]["replicas"]
    before = previous["status"]
    template_changed = deployment["spec"].get("template") != previous["spec"].get("template")
    available = before.get("availableReplicas", 0)
    status = {
        "observedGeneration": deployment["metadata"]["generation"],
        "replicas": before.get("replicas", 0),
        "updatedReplicas": 0 if template_changed else min(before.get("updatedReplicas", 0), wanted),
        "readyReplicas": before.get("readyReplicas", 0),
        "availableReplicas": available,
        "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}],
    }
    if wanted > available:
        status["unavailableReplicas"] = wanted - available
    return status


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP requests into KubernetesApiDouble._handle calls and their answers into JSON responses."""

    server: Any

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            code, answer = (
                200,
                self.server.double._handle(
                    self.command,
                    self.path,
                    self.headers.get("Authorization"),
                    self.headers.get("Content-Type") or "",
                    body,
                ),
            )
        except _ApiError as reply:
            code, answer = reply.code, status_body(reply.code, reply.message)
        payload = json.dumps(answer).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if code == 429:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _serve  # noqa: N815 - BaseHTTPRequestHandler's names

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests assert on `requests`, not on a log on stderr."""
