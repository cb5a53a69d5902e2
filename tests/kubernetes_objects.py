"""Pulls the Kubernetes objects that Tessera writes itself out of synthesized templates."""

from __future__ import annotations

import json
from typing import Any

from tests.synth import SynthesizedEnvironment

MANIFEST_RESOURCE = "Custom::AWSCDK-EKS-KubernetesResource"
TRACKS_RESOURCE = "Custom::TesseraServiceTracks"  # the Deployments and autoscalers the track owner applies
TOKEN_PLACEHOLDER = "resolved-at-deploy"  # noqa: S105 - not a secret
_MARK = "\ue000intrinsic-{}\ue000"


def manifest_text(value: object) -> str:
    """A JSON-string property (a manifest, the track owner's objects) as text; CloudFormation references become
    a placeholder string."""
    if isinstance(value, str):
        return value
    return "".join(part if isinstance(part, str) else TOKEN_PLACEHOLDER for part in value["Fn::Join"][1])


def json_property(value: object) -> Any:
    """A property CDK wrote with `Stack.to_json_string`, parsed, with each CloudFormation intrinsic put back where
    it stands: a string that was one intrinsic becomes that intrinsic, a string with intrinsics inside an
    `Fn::Join` of its parts."""
    if isinstance(value, str):
        return json.loads(value)
    intrinsics: list[object] = []
    text = ""
    for part in value["Fn::Join"][1]:  # type: ignore[index]
        if isinstance(part, str):
            text += part
        else:
            text += _MARK.format(len(intrinsics))
            intrinsics.append(part)
    return _restore(json.loads(text), intrinsics)


def _restore(value: Any, intrinsics: list[object]) -> Any:
    if isinstance(value, dict):
        return {key: _restore(item, intrinsics) for key, item in value.items()}
    if isinstance(value, list):
        return [_restore(item, intrinsics) for item in value]
    if not isinstance(value, str) or "\ue000" not in value:
        return value
    parts: list[object] = []
    for index, piece in enumerate(value.split("\ue000")):
        if index % 2 == 0:
            if piece:
                parts.append(piece)
        else:
            parts.append(intrinsics[int(piece.removeprefix("intrinsic-"))])
    return parts[0] if len(parts) == 1 else {"Fn::Join": ["", parts]}


def manifest_objects(env: SynthesizedEnvironment, component: str) -> list[dict]:
    """Every Kubernetes object a stack applies: its manifests and its track owner's objects (references as a
    placeholder string)."""
    template = env.template(component)
    objects: list[dict] = []
    for resource in template.find_resources(MANIFEST_RESOURCE).values():
        objects.extend(json.loads(manifest_text(resource["Properties"]["Manifest"])))
    for resource in template.find_resources(TRACKS_RESOURCE).values():
        objects.extend(json.loads(manifest_text(resource["Properties"]["Objects"])))
    return objects


def track_objects(resource: dict) -> list[dict]:
    """The objects of one Custom::TesseraServiceTracks resource, with its CloudFormation references in place."""
    return json_property(resource["Properties"]["Objects"])
