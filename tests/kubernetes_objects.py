"""Pulls the Kubernetes objects that Tessera writes itself out of synthesized templates."""

from __future__ import annotations

import json

from tests.synth import SynthesizedEnvironment

MANIFEST_RESOURCE = "Custom::AWSCDK-EKS-KubernetesResource"
TOKEN_PLACEHOLDER = "resolved-at-deploy"  # noqa: S105 - not a secret


def _text(value: object) -> str:
    """A Manifest property as text; CloudFormation references become a placeholder string."""
    if isinstance(value, str):
        return value
    return "".join(part if isinstance(part, str) else TOKEN_PLACEHOLDER for part in value["Fn::Join"][1])


def manifest_objects(env: SynthesizedEnvironment, component: str) -> list[dict]:
    objects: list[dict] = []
    for resource in env.template(component).find_resources(MANIFEST_RESOURCE).values():
        objects.extend(json.loads(_text(resource["Properties"]["Manifest"])))
    return objects
