"""What the track owner may apply or delete for one service, whoever invoked it.

Its function answers CloudFormation, but anyone allowed `lambda:InvokeFunction` can send it an event too. So an
event may name only its own service's track objects: a Deployment per track (`<service>-stable`,
`<service>-canary`) and stable's autoscaler (an HPA or a KEDA ScaledObject named like stable's Deployment) in
the services' namespace, labelled for the service and track on the object, its pods and its selector (a
Service and TargetGroupBinding pick pods by those labels), running as the service's own account (its Pod
Identity), scaling only the service's stable Deployment, with every image from the service's own ECR
repository. That repository is named by the function's environment (set by the Services stack, which no event
reaches). Every object is checked before the first write; a refusal names the object and the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rollout.authority import shown
from tessera_shared import constants as shared

AUTOSCALER_KINDS = frozenset(shared.AUTOSCALER_KINDS)


def request_scope(properties: Mapping[str, object], field: str) -> tuple[str, str]:
    """(namespace, service) of a track owner event: the services' namespace and a service's name."""
    namespace, service = properties.get("Namespace"), properties.get("Service")
    if namespace != shared.NAMESPACE:
        raise ValueError(f"{field}.Namespace: expected {shared.NAMESPACE!r}, got {shown(namespace)}")
    if not isinstance(service, str) or not re.match(shared.SERVICE_NAME_PATTERN, service):
        raise ValueError(f"{field}.Service: {shown(service)} is not a service name ({shared.SERVICE_NAME_PATTERN})")
    return namespace, service


def image_repository(environment: Mapping[str, str], service: str) -> str:
    """The service's ECR repository URI, from the function's environment."""
    variable = shared.image_repository_variable(service)
    repository = environment.get(variable)
    if not repository:
        raise ValueError(
            f"service {service!r} has no image repository in the track owner's environment ({variable}): "
            "not a service of this environment's config"
        )
    return repository


def check_names(objects: list[dict[str, Any]], service: str, field: str) -> None:
    """Every object is one of the service's track objects by kind and name (what a delete acts on)."""
    for index, obj in enumerate(objects):
        _check_name(obj, service, f"{field}[{index}]")


def check_objects(objects: list[dict[str, Any]], service: str, repository: str, field: str) -> None:
    """Every object is one of the service's track objects, whole (what an apply writes)."""
    for index, obj in enumerate(objects):
        track = _check_name(obj, service, f"{field}[{index}]")
        where = f"{field}[{index}] {obj['kind']} {shown(obj['metadata']['name'])}"
        _check_object(obj, service, track, repository, where)


def _check_name(obj: dict[str, Any], service: str, where: str) -> str:
    """The object's track (stable or canary), once its kind and name are the service's."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    tracks = ("stable",) if kind in AUTOSCALER_KINDS else shared.TRACKS
    names = {shared.track_object_name(service, track): track for track in tracks}
    if name not in names:
        raise ValueError(f"{where} {kind} {shown(name)}: metadata.name: expected one of {sorted(names)}")
    return names[name]


def _check_object(obj: dict[str, Any], service: str, track: str, repository: str, where: str) -> None:
    metadata = _mapping(obj, "metadata", where, "")
    if metadata.get("namespace", shared.NAMESPACE) != shared.NAMESPACE:
        raise ValueError(
            f"{where}: metadata.namespace: expected {shared.NAMESPACE!r}, got {shown(metadata['namespace'])}"
        )
    _check_labels(metadata, service, track, where, "metadata")
    spec = _mapping(obj, "spec", where, "")
    if obj["kind"] in AUTOSCALER_KINDS:
        _check_autoscaler(spec, service, where)
        return
    _check_labels(_mapping(spec, "selector", where, "spec"), service, track, where, "spec.selector", "matchLabels")
    template = _mapping(spec, "template", where, "spec")
    _check_labels(
        _mapping(template, "metadata", where, "spec.template"), service, track, where, "spec.template.metadata"
    )
    pod = _mapping(template, "spec", where, "spec.template")
    account = pod.get("serviceAccountName")
    if account != service:
        raise ValueError(f"{where}: spec.template.spec.serviceAccountName: expected {service!r}, got {shown(account)}")
    for key in shared.POD_CONTAINER_LISTS:
        _check_images(pod.get(key, []), repository, where, f"spec.template.spec.{key}")


def _check_labels(holder: dict[str, Any], service: str, track: str, where: str, path: str, key: str = "labels") -> None:
    labels = _mapping(holder, key, where, path)
    for label, expected in ((shared.SERVICE_LABEL, service), (shared.TRACK_LABEL, track)):
        if labels.get(label) != expected:
            raise ValueError(f"{where}: {path}.{key}.{label}: expected {expected!r}, got {shown(labels.get(label))}")


def _check_autoscaler(spec: dict[str, Any], service: str, where: str) -> None:
    """It scales the service's stable Deployment, and a ScaledObject's HPA is the service's own (KEDA adopts an
    existing HPA of the name it is given)."""
    stable = shared.track_object_name(service, "stable")
    target = _mapping(spec, "scaleTargetRef", where, "spec")
    for key, expected in (("kind", "Deployment"), ("name", stable)):
        if target.get(key) != expected:
            raise ValueError(f"{where}: spec.scaleTargetRef.{key}: expected {expected!r}, got {shown(target.get(key))}")
    advanced = _mapping(spec, "advanced", where, "spec", optional=True)
    hpa = _mapping(advanced, "horizontalPodAutoscalerConfig", where, "spec.advanced", optional=True)
    if hpa.get("name", stable) != stable:
        path = "spec.advanced.horizontalPodAutoscalerConfig.name"
        raise ValueError(f"{where}: {path}: expected {stable!r}, got {shown(hpa['name'])}")


def _check_images(containers: object, repository: str, where: str, path: str) -> None:
    if not isinstance(containers, list):
        raise ValueError(f"{where}: {path}: expected a list, got {shown(containers)}")
    for index, container in enumerate(containers):
        image = container.get("image") if isinstance(container, dict) else None
        if not isinstance(image, str):
            raise ValueError(f"{where}: {path}[{index}].image: expected a string, got {shown(image)}")
        # `<repository>:<tag>` or `<repository>@sha256:...`: a prefix match alone would admit `<repository>-other`.
        if not image.startswith((f"{repository}:", f"{repository}@")):
            raise ValueError(
                f"{where}: {path}[{index}].image: {shown(image)} is not from the service's repository {repository}"
            )


def _mapping(holder: dict[str, Any], key: str, where: str, path: str, *, optional: bool = False) -> dict[str, Any]:
    value = holder.get(key, {} if optional else None)
    if not isinstance(value, dict):
        raise ValueError(f"{where}: {f'{path}.' if path else ''}{key}: expected an object, got {shown(value)}")
    return value
