"""Edits of a Deployment's spec that the rollout steps and the track owner both make, so both write a track's
running version and placement the same way, and how to read a Deployment's progress."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rollout.contract import TrackPlacement
from rollout.errors import RolloutError
from tessera_shared.constants import (
    ACCELERATOR_RESOURCES,
    MODEL_LOADER_CONTAINER,
    MODEL_VERSION_LABEL,
    POOL_LABEL,
    ROLLOUT_WRITER_ANNOTATION,
    SERVING_CONTAINER,
)


def version_change(image: str, model_version: str, model_uri: str) -> Callable[[dict[str, Any]], None]:
    """The change that points a Deployment at a model version: the server container's image, its
    MODEL_VERSION and MODEL_S3_URI, and the pod label dashboards and the rollout group pods by. The
    rollout steps and the track owner both use it, so both write the running version the same way."""

    def change(deployment: dict[str, Any]) -> None:
        template = deployment.setdefault("spec", {}).setdefault("template", {})
        containers = template.setdefault("spec", {}).get("containers") or []
        server = next((c for c in containers if c.get("name") == SERVING_CONTAINER), None)
        if server is None:
            name = deployment.get("metadata", {}).get("name")
            raise RolloutError(f"deployment {name} has no container named {SERVING_CONTAINER!r}")
        # The model loader runs in the server's image and loads the version the server will serve.
        loaders = [c for c in template["spec"].get("initContainers") or [] if c.get("name") == MODEL_LOADER_CONTAINER]
        for container in [server, *loaders]:
            container["image"] = image
            env = container.setdefault("env", [])
            _set_env(env, "MODEL_VERSION", model_version)
            _set_env(env, "MODEL_S3_URI", model_uri)
        template.setdefault("metadata", {}).setdefault("labels", {})[MODEL_VERSION_LABEL] = model_version

    return change


def writer_change(mark: str | None) -> Callable[[dict[str, Any]], None]:
    """The change that records which rollout step last wrote the Deployment (its execution and lock epoch), in an
    annotation of the Deployment itself: a write that landed after its rollout lost the lock shows whose it was,
    and the pods do not restart for it. No mark: nothing changes."""

    def change(deployment: dict[str, Any]) -> None:
        if mark is not None:
            deployment.setdefault("metadata", {}).setdefault("annotations", {})[ROLLOUT_WRITER_ANNOTATION] = mark

    return change


def placement_change(placement: TrackPlacement) -> Callable[[dict[str, Any]], None]:
    """The change that moves a Deployment's pods onto a target: node selector, tolerations, scheduler, and the
    serving container's accelerator resources (requests and limits; cpu, memory and storage stay as rendered).
    The rollout steps and the track owner both use it, so both write the running placement the same way."""

    def change(deployment: dict[str, Any]) -> None:
        pod = deployment.setdefault("spec", {}).setdefault("template", {}).setdefault("spec", {})
        pod["nodeSelector"] = dict(placement.node_selector)
        _set_or_drop(pod, "tolerations", [dict(toleration) for toleration in placement.tolerations])
        _set_or_drop(pod, "schedulerName", placement.scheduler_name)
        server = server_container(deployment)
        resources = server.setdefault("resources", {})
        for kind in ("requests", "limits"):
            amounts = {k: v for k, v in resources.get(kind, {}).items() if k not in ACCELERATOR_RESOURCES}
            resources[kind] = amounts | dict(placement.resources)

    return change


def running_placement(deployment: dict[str, Any]) -> TrackPlacement:
    """Where the Deployment's pods run now, as placement_change writes it."""
    pod = deployment.get("spec", {}).get("template", {}).get("spec", {})
    requests = server_container(deployment).get("resources", {}).get("requests", {})
    selector = dict(pod.get("nodeSelector") or {})
    return TrackPlacement(
        pool=selector.get(POOL_LABEL, ""),
        node_selector=selector,
        tolerations=[dict(toleration) for toleration in pod.get("tolerations") or []],
        resources={k: str(v) for k, v in requests.items() if k in ACCELERATOR_RESOURCES},
        scheduler_name=pod.get("schedulerName"),
    )


def server_container(deployment: dict[str, Any]) -> dict[str, Any]:
    """The Deployment's serving container (named SERVING_CONTAINER), or a RolloutError naming the Deployment."""
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    server: dict[str, Any] | None = next((c for c in containers if c.get("name") == SERVING_CONTAINER), None)
    if server is None:
        name = deployment.get("metadata", {}).get("name")
        raise RolloutError(f"deployment {name} has no container named {SERVING_CONTAINER!r}")
    return server


def _set_or_drop(mapping: dict[str, Any], key: str, value: Any) -> None:
    if value:
        mapping[key] = value
    else:
        mapping.pop(key, None)


def _set_env(env: list[dict[str, Any]], name: str, value: str) -> None:
    """Set an env entry's value where it stands (dropping a valueFrom it may have), or append it."""
    for entry in env:
        if entry.get("name") == name:
            entry.pop("valueFrom", None)
            entry["value"] = value
            return
    env.append({"name": name, "value": value})


def deployment_ready(deployment: dict[str, Any]) -> bool:
    """True when the Deployment controller has acted on the latest spec and every pod it wants runs
    that spec and is available, with no pod of an older spec left (what `kubectl rollout status`
    waits for). A Deployment scaled to 0 is ready once the controller has observed it and no pods remain.
    """
    metadata = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    observed = status.get("observedGeneration")
    if observed is None or observed < metadata.get("generation", 0):
        return False
    wanted = _wanted_replicas(spec)
    counts = (
        status.get("updatedReplicas", 0),
        status.get("readyReplicas", 0),
        status.get("availableReplicas", 0),
        # All pods, old spec included: old pods still serving mean the rollout has not finished.
        status.get("replicas", 0),
    )
    return all(count == wanted for count in counts) and status.get("unavailableReplicas", 0) == 0


def ready_summary(deployment: dict[str, Any]) -> str:
    """One line on a Deployment's progress, for logs and error messages,
    e.g. "2/3 ready, 3 updated (generation 5 observed 5)"."""
    metadata = deployment.get("metadata") or {}
    status = deployment.get("status") or {}
    wanted = _wanted_replicas(deployment.get("spec") or {})
    updated = status.get("updatedReplicas", 0)
    extra = ""
    if status.get("unavailableReplicas", 0):
        extra += f", {status['unavailableReplicas']} unavailable"
    if status.get("replicas", 0) > updated:
        extra += f", {status['replicas'] - updated} outdated"
    observed = status.get("observedGeneration", "none")
    return (
        f"{status.get('readyReplicas', 0)}/{wanted} ready, {updated} updated{extra} "
        f"(generation {metadata.get('generation', 'none')} observed {observed})"
    )


def _wanted_replicas(spec: dict[str, Any]) -> int:
    """spec.replicas; the API server defaults it to 1, so a stored object always has it."""
    replicas = spec.get("replicas")
    return 1 if replicas is None else int(replicas)
