"""A small client for the objects the rollout engine reads and writes through the Kubernetes API: the services'
Deployments, the stable track's autoscaler (HPA or KEDA ScaledObject), and lists of a track's pods and the nodes
they run on (to price the track).

Errors follow the rollout's contract (rollout.errors): what may pass on its own (throttling, 5xx, a network
failure, an object that keeps changing under us) is a TransientError, which Step Functions retries; what will
not (no access, no such deployment, an invalid object) is a RolloutError, which rolls the rollout back.
"""

from __future__ import annotations

import base64
import binascii
import copy
import http.client
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rollout.contract import TrackPlacement
from rollout.errors import RolloutError, TransientError
from rollout.kube.deployments import placement_change, version_change, writer_change
from tessera_shared.constants import KEDA_API_VERSION, SCALED_OBJECT_KIND, SCALED_OBJECTS

# EKS accepts a token for 15 minutes after it was signed; renew well before, so that a token is never
# close to expiry when a request (and its one 401 retry) goes out.
TOKEN_REUSE_SECONDS = 10 * 60

# A PUT that loses the optimistic-concurrency race is re-read and re-applied this many times in all.
REPLACE_ATTEMPTS = 5

_MESSAGE_LIMIT = 500


class NotFoundError(RolloutError):
    """The object does not exist (404)."""


class _ConflictError(TransientError):
    """A 409: the object changed since it was read. replace_deployment re-reads and retries; if one
    escapes (REPLACE_ATTEMPTS exhausted elsewhere) it is still a TransientError."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """The API server does not redirect these requests; following one would send the bearer token
    to wherever it points, so a 3xx is surfaced as an HTTP error instead."""

    def redirect_request(self, *_: Any, **__: Any) -> None:
        return None


@dataclass(frozen=True)
class _Resource:
    """One kind of object the client handles: its API path and the name errors use."""

    group_version: str  # "apps/v1"; "v1" for the core group
    plural: str  # "deployments"
    noun: str  # "deployments.apps", as the API server names it in messages
    namespaced: bool = True

    def path(self, namespace: str | None, name: str | None = None) -> str:
        # The core group lives under /api, every other group under /apis.
        root = "/apis" if "/" in self.group_version else "/api"
        scope = f"/namespaces/{urllib.parse.quote(namespace or '', safe='')}" if self.namespaced else ""
        base = f"{root}/{self.group_version}{scope}/{self.plural}"
        return base if name is None else f"{base}/{urllib.parse.quote(name, safe='')}"


DEPLOYMENTS = _Resource("apps/v1", "deployments", "deployments.apps")

AUTOSCALERS = _Resource("autoscaling/v2", "horizontalpodautoscalers", "horizontalpodautoscalers.autoscaling")

KEDA_SCALED_OBJECTS = _Resource(KEDA_API_VERSION, SCALED_OBJECTS, "scaledobjects.keda.sh")

# KEDA's documented default when a ScaledObject leaves minReplicaCount out.
KEDA_DEFAULT_MIN_REPLICAS = 0

PODS = _Resource("v1", "pods", "pods")

NODES = _Resource("v1", "nodes", "nodes", namespaced=False)

# Items per page of a list; the server may return fewer, with a continue token for the rest.
LIST_PAGE_SIZE = 500


class KubeClient:
    """Reads and updates apps/v1 Deployments and autoscaling/v2 HorizontalPodAutoscalers on one cluster.

    `endpoint` is the API server URL (`https://<id>.<zone>.<region>.eks.amazonaws.com`). `ca_data` is
    the cluster's certificate authority as EKS reports it (base64 of PEM); when given, the server's
    certificate is checked against it alone, otherwise against the system trust store.
    `token_provider` returns a fresh bearer token; it is called lazily, and its token reused for
    TOKEN_REUSE_SECONDS or until the server refuses it. `clock` exists for tests.
    """

    def __init__(
        self,
        endpoint: str,
        token_provider: Callable[[], str],
        ca_data: str | None = None,
        timeout: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parsed = urllib.parse.urlsplit(endpoint)
        if parsed.scheme not in ("https", "http") or not parsed.netloc:
            raise ValueError(f"Kubernetes API endpoint must be an http(s) URL, got {endpoint!r}")
        self.endpoint = endpoint.rstrip("/")
        self._token_provider = token_provider
        self._timeout = timeout
        self._clock = clock
        self._token: str | None = None
        self._token_at = 0.0
        handlers: list[urllib.request.BaseHandler] = [
            # Straight to the API server: a proxy from the environment would see the bearer token.
            urllib.request.ProxyHandler({}),
            _NoRedirects(),
        ]
        if parsed.scheme == "https":
            handlers.append(urllib.request.HTTPSHandler(context=_tls_context(ca_data)))
        self._opener = urllib.request.build_opener(*handlers)

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any]:
        """The Deployment as stored, including metadata.resourceVersion and status."""
        return self._request("GET", DEPLOYMENTS, namespace, name)

    def replace_deployment(self, namespace: str, name: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        return self._replace(DEPLOYMENTS, namespace, name, change)

    def autoscaler_floor(self, namespace: str, kind: str, name: str) -> int | None:
        """The stable autoscaler's own floor: an HPA's minReplicas, or a KEDA ScaledObject's minReplicaCount
        (KEDA owns the HPA it makes and would undo a write there)."""
        if kind == SCALED_OBJECT_KIND:
            spec = self._request("GET", KEDA_SCALED_OBJECTS, namespace, name).get("spec", {})
            floor: int | None = spec.get("minReplicaCount", KEDA_DEFAULT_MIN_REPLICAS)
        else:
            floor = self._request("GET", AUTOSCALERS, namespace, name).get("spec", {}).get("minReplicas")
        return floor

    def set_autoscaler_floor(self, namespace: str, kind: str, name: str, min_replicas: int) -> dict[str, Any]:
        """Set the floor (never above the autoscaler's maximum, which the API would refuse)."""
        if kind == SCALED_OBJECT_KIND:
            return self._replace(
                KEDA_SCALED_OBJECTS,
                namespace,
                name,
                _floor_change("minReplicaCount", "maxReplicaCount", min_replicas, lowest=0),
            )
        return self._replace(
            AUTOSCALERS, namespace, name, _floor_change("minReplicas", "maxReplicas", min_replicas, lowest=1)
        )

    def _replace(
        self, resource: _Resource, namespace: str, name: str, change: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        """Apply `change` to the current Deployment and store it, without losing concurrent writes.

        Optimistic concurrency: the object is read, changed in a copy and PUT back whole, carrying the
        resourceVersion it was read at; if anyone (the HPA, an operator, another step) wrote it in
        between, the server answers 409 and the change is re-applied to a fresh read. `change` may
        therefore run more than once and must only depend on the object it is given. If the object
        keeps changing, TransientError after REPLACE_ATTEMPTS. When `change` leaves the object as it
        was, nothing is written. Returns the object as stored.
        """
        for _ in range(REPLACE_ATTEMPTS):
            current = self._request("GET", resource, namespace, name)
            desired = copy.deepcopy(current)
            change(desired)
            if desired == current:
                return current
            try:
                return self._request("PUT", resource, namespace, name, body=desired)
            except _ConflictError:
                continue
        raise TransientError(
            f"{resource.noun} {namespace}/{name} changed under every one of {REPLACE_ATTEMPTS} updates (409 Conflict)"
        )

    def scale(self, namespace: str, name: str, replicas: int, *, mark: str | None = None) -> dict[str, Any]:
        """Set spec.replicas (the canary's size is the rollout's to set; the stable track's is the HPA's). `mark`
        names the rollout step's writer (see writer_change)."""
        if replicas < 0:
            raise ValueError(f"replicas must be 0 or more, got {replicas}")
        marked = writer_change(mark)

        def change(deployment: dict[str, Any]) -> None:
            deployment.setdefault("spec", {})["replicas"] = replicas
            marked(deployment)

        return self.replace_deployment(namespace, name, change)

    def set_version(
        self,
        namespace: str,
        name: str,
        *,
        image: str,
        model_version: str,
        model_uri: str,
        placement: TrackPlacement | None = None,
        mark: str | None = None,
    ) -> dict[str, Any]:
        """Point the Deployment at a model version: the server container's image, its MODEL_VERSION and
        MODEL_S3_URI, and the pod label that dashboards and the rollout group pods by; with a placement,
        also where its pods run (one write, so a change of chip is one rolling update). `mark` names the
        rollout step's writer (see writer_change).

        Env entries are updated in place, so that the other entries and their order stay as rendered
        (a reordered env list is a spec change, and would roll the pods for nothing).
        """
        changes = [version_change(image, model_version, model_uri), writer_change(mark)]
        if placement is not None:
            changes.append(placement_change(placement))

        def change(deployment: dict[str, Any]) -> None:
            for one in changes:
                one(deployment)

        return self.replace_deployment(namespace, name, change)

    def apply(
        self,
        resource: _Resource,
        namespace: str,
        name: str,
        merge: Callable[[dict[str, Any] | None], dict[str, Any] | None],
    ) -> dict[str, Any] | None:
        """Create or update one object from `merge(stored)` (stored: None when there is none; merge returns None
        to leave it alone), keeping what the server manages. `merge` runs on every read of the conflict-checked
        replace, so what is written is always merged with the object it overwrites, never with an older read.
        The one write path the track owner uses, for Deployments and autoscalers alike."""

        def change(current: dict[str, Any]) -> None:
            desired = merge(copy.deepcopy(current))
            if desired is not None:
                current["spec"] = copy.deepcopy(desired["spec"])
                current["metadata"]["labels"] = copy.deepcopy(desired["metadata"].get("labels", {}))

        try:  # _replace reads the object first: a 404 there means it is new
            return self._replace(resource, namespace, name, change)
        except NotFoundError:
            created = merge(None)
            return None if created is None else self._request("POST", resource, namespace, None, body=created)

    def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        """The pods in `namespace` whose labels match `label_selector` (e.g. `a=b,c=d`)."""
        return self._list(PODS, namespace, label_selector)

    def list_nodes(self) -> list[dict[str, Any]]:
        """Every node of the cluster (their instance types, capacity types and allocatable resources)."""
        return self._list(NODES, None, None)

    def _list(self, resource: _Resource, namespace: str | None, label_selector: str | None) -> list[dict[str, Any]]:
        """All items of a list, page by page: each page's metadata.continue token asks for the next."""
        items: list[dict[str, Any]] = []
        token = None
        while True:
            query = {"limit": str(LIST_PAGE_SIZE)}
            if label_selector:
                query["labelSelector"] = label_selector
            if token:
                query["continue"] = token
            page = self._request("GET", resource, namespace, None, query=urllib.parse.urlencode(query))
            items += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

    def find(self, resource: _Resource, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._request("GET", resource, namespace, name)
        except NotFoundError:
            return None

    def delete(self, resource: _Resource, namespace: str, name: str) -> None:
        try:
            self._request("DELETE", resource, namespace, name)
        except NotFoundError:
            return

    def _bearer(self, *, fresh: bool) -> str:
        """The token to send: the cached one while it is young enough, otherwise a new one."""
        now = self._clock()
        if fresh or self._token is None or now - self._token_at >= TOKEN_REUSE_SECONDS:
            self._token = self._token_provider()
            self._token_at = now
        return self._token

    def _request(
        self,
        method: str,
        resource: _Resource,
        namespace: str | None,
        name: str | None,
        body: dict[str, Any] | None = None,
        *,
        query: str = "",
    ) -> dict[str, Any]:
        """Send one request, map its failure to the rollout's errors, and retry once on 401 with a
        new token (the cached one may have expired or been revoked)."""
        path = resource.path(namespace, name) + (f"?{query}" if query else "")
        verb = {"GET": "get", "POST": "create", "DELETE": "delete"}.get(method, "update")
        if method == "GET" and name is None:
            verb = "list"
        where = f"{namespace}/" if resource.namespaced else ""
        target = f"{resource.noun} {where}{name or (body or {}).get('metadata', {}).get('name', '')}"
        data = None if body is None else json.dumps(body).encode("utf-8")
        fresh = False
        while True:
            request = urllib.request.Request(self.endpoint + path, data=data, method=method)  # noqa: S310 - http(s) only, checked in __init__
            request.add_header("Authorization", f"Bearer {self._bearer(fresh=fresh)}")
            request.add_header("Accept", "application/json")
            if data is not None:
                request.add_header("Content-Type", "application/json")
            try:
                with self._opener.open(request, timeout=self._timeout) as response:
                    payload = response.read()
            except urllib.error.HTTPError as error:
                status, message = error.code, _api_message(error)
                if status == 401 and not fresh:
                    fresh = True
                    continue
                raise _map_status(status, message, verb=verb, target=target) from error
            except urllib.error.URLError as error:
                if isinstance(error.reason, ssl.SSLCertVerificationError):
                    raise RolloutError(
                        f"Kubernetes API at {self.endpoint} presented a certificate the cluster CA does not "
                        f"vouch for: {error.reason}"
                    ) from error
                raise TransientError(f"cannot reach the Kubernetes API at {self.endpoint}: {error.reason}") from error
            except (TimeoutError, ConnectionError, http.client.HTTPException, ssl.SSLError) as error:
                raise TransientError(
                    f"Kubernetes API at {self.endpoint} failed during {method} {path}: {error!r}"
                ) from error
            try:
                document: dict[str, Any] = json.loads(payload)
                return document
            except ValueError as error:
                raise TransientError(f"Kubernetes API answered {method} {path} with a body that is not JSON") from error


def _tls_context(ca_data: str | None) -> ssl.SSLContext:
    """A TLS context that trusts the cluster's own CA (EKS serves a certificate signed by it)."""
    if ca_data is None:
        return ssl.create_default_context()
    try:
        pem = base64.b64decode(ca_data, validate=True).decode("ascii")
        return ssl.create_default_context(cadata=pem)
    except (binascii.Error, UnicodeDecodeError, ssl.SSLError) as error:
        raise RolloutError(f"the cluster CA data is not a base64-encoded PEM certificate: {error}") from error


def _floor_change(min_field: str, max_field: str, floor: int, *, lowest: int) -> Callable[[dict[str, Any]], None]:
    """An HPA's floor is at least 1; a ScaledObject's may be 0 (scale to zero, when config asks for it)."""

    def change(autoscaler: dict[str, Any]) -> None:
        spec = autoscaler.setdefault("spec", {})
        spec[min_field] = max(lowest, min(floor, spec.get(max_field, floor)))

    return change


def _api_message(error: urllib.error.HTTPError) -> str:
    """The message of the Kubernetes Status in an error response, or the start of the raw body."""
    try:
        raw = error.read()
    except (OSError, http.client.HTTPException):
        raw = b""
    try:
        status = json.loads(raw)
    except ValueError:
        status = None
    if isinstance(status, dict) and status.get("message"):
        return str(status["message"])[:_MESSAGE_LIMIT]
    text = raw.decode("utf-8", "replace").strip()[:_MESSAGE_LIMIT]
    return text or (error.reason if isinstance(error.reason, str) else "") or f"HTTP {error.code}"


def _map_status(status: int, message: str, *, verb: str, target: str) -> Exception:
    """The rollout error an HTTP error status stands for."""
    resource = target
    if status == 401:
        return RolloutError(
            f"Kubernetes API refused the credentials (401) twice, the second time with a fresh token: {message}"
        )
    if status == 403:
        return RolloutError(
            f"Kubernetes API forbids {verb} on {resource}: the rollout Lambda's role lacks access "
            f"(check its EKS access entry and policy): {message}"
        )
    if status == 404:
        return NotFoundError(f"{resource} not found")
    if status == 409:
        return _ConflictError(f"{verb} {resource}: conflict: {message}")
    if status == 429 or status >= 500:
        return TransientError(f"Kubernetes API answered {status} to {verb} {resource}: {message}")
    return RolloutError(f"Kubernetes API rejected {verb} {resource} ({status}): {message}")
