"""Pulls the Kubernetes objects that Tessera writes itself out of synthesized templates."""

from __future__ import annotations

import json

from tests.synth import SynthesizedEnvironment

MANIFEST_RESOURCE = "Custom::AWSCDK-EKS-KubernetesResource"
TRACKS_RESOURCE = "Custom::TesseraServiceTracks"  # the Deployments and HPAs the track owner applies
TOKEN_PLACEHOLDER = "resolved-at-deploy"  # noqa: S105 - not a secret


def manifest_text(value: object) -> str:
    """A Manifest property as text; CloudFormation references become a placeholder string."""
    if isinstance(value, str):
        return value
    return "".join(part if isinstance(part, str) else TOKEN_PLACEHOLDER for part in value["Fn::Join"][1])


def _resolved(value: object) -> object:
    """Template values with every CloudFormation intrinsic (a one-key `Fn::`/`Ref` object) as text."""
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)).startswith(("Fn::", "Ref")):
            return manifest_text(value) if "Fn::Join" in value else TOKEN_PLACEHOLDER
        return {key: _resolved(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolved(item) for item in value]
    return value


def manifest_objects(env: SynthesizedEnvironment, component: str) -> list[dict]:
    """Every Kubernetes object a stack applies: its manifests and its track owner's objects."""
    template = env.template(component)
    objects: list[dict] = []
    for resource in template.find_resources(MANIFEST_RESOURCE).values():
        objects.extend(json.loads(manifest_text(resource["Properties"]["Manifest"])))
    for resource in template.find_resources(TRACKS_RESOURCE).values():
        objects.extend(_resolved(resource["Properties"]["Objects"]))  # type: ignore[arg-type]
    return objects
