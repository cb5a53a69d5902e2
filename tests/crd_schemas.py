"""The vendored CRD schemas Tessera's objects are validated against (each file checked against its reviewed
SHA-256 before use): Karpenter's NodePool and EC2NodeClass, KEDA's ScaledObject and TriggerAuthentication, and
the Load Balancer Controller's TargetGroupBinding."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
KARPENTER_DIR = REPO_ROOT / "stacks" / "cluster" / "data" / "karpenter"
KEDA_DIR = REPO_ROOT / "stacks" / "services" / "data" / "keda"
TARGET_GROUP_BINDING_SCHEMA = Path(__file__).parent / "stacks" / "data" / "targetgroupbinding-v1beta1.schema.json"


@dataclass(frozen=True)
class VendoredCrd:
    path: Path
    sha256: str
    version: str  # the served version Tessera writes


CRDS = {
    "NodePool": VendoredCrd(
        KARPENTER_DIR / "karpenter.sh_nodepools.yaml",
        "3bb64a20c80776b77aa19a699ebdaf34480a7b2e7ec4ef890b43225b3517f878",
        "v1",
    ),
    "EC2NodeClass": VendoredCrd(
        KARPENTER_DIR / "karpenter.k8s.aws_ec2nodeclasses.yaml",
        "62dec59f01c0972d4503ca3ed25f243ba9c2f561be0d964ce7a14c8df406132f",
        "v1",
    ),
    "ScaledObject": VendoredCrd(
        KEDA_DIR / "keda.sh_scaledobjects.yaml",
        "af35555862a83933b074af14ad439c4b4ceabaf4daa3e9338e9b23e36d308d80",
        "v1alpha1",
    ),
    "TriggerAuthentication": VendoredCrd(
        KEDA_DIR / "keda.sh_triggerauthentications.yaml",
        "275307b4cb19ca8f0f506a879282aa4c67587ac16ec757f494d6585c5c185d65",
        "v1alpha1",
    ),
}


def strict(schema: dict) -> dict:
    """The API server prunes fields a structural schema does not know: an unknown field would vanish silently,
    so here it is an error (as kubernetes-validate --strict does for core objects). `metadata` stays open."""
    schema = dict(schema)
    properties = schema.get("properties")
    if properties is not None:
        schema["properties"] = {key: value if key == "metadata" else strict(value) for key, value in properties.items()}
        schema.setdefault("additionalProperties", False)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            schema[key] = strict(schema[key])
    return schema


def served_version(kind: str) -> dict:
    """The CRD's entry for the version Tessera writes (name, served, storage, schema), from the reviewed file."""
    crd = CRDS[kind]
    raw = crd.path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    assert digest == crd.sha256, f"{crd.path.name}: sha256 {digest} is not the reviewed {crd.sha256}"
    [served] = [version for version in yaml.safe_load(raw)["spec"]["versions"] if version["name"] == crd.version]
    return served


@functools.cache
def schema(kind: str) -> dict:
    """The strict JSON schema of one vendored kind."""
    if kind == "TargetGroupBinding":
        return json.loads(TARGET_GROUP_BINDING_SCHEMA.read_text())
    return strict(served_version(kind)["schema"]["openAPIV3Schema"])
