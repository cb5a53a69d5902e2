"""One syrupy snapshot per stack: a safety net that shows every template change in review.

Asset hashes change with the CDK version and the bundled handler code, so they are masked.
`pytest --snapshot-update` rewrites the snapshots after an intended change.
"""

from __future__ import annotations

import re

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from tests.synth import SynthesizedEnvironment

ASSET_HASH = re.compile(r"[0-9a-f]{64}")
COMPONENTS = ["Network", "Artifacts", "Cluster", "Services", "Registry", "Rollout", "Observability"]


def mask_asset_hashes(value: object) -> object:
    if isinstance(value, str):
        return ASSET_HASH.sub("<asset-hash>", value)
    if isinstance(value, list):
        return [mask_asset_hashes(item) for item in value]
    if isinstance(value, dict):
        return {mask_asset_hashes(key): mask_asset_hashes(item) for key, item in value.items()}
    return value


@pytest.fixture
def snapshot_json(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("component", COMPONENTS)
def test_dev_stack_snapshot(component: str, dev: SynthesizedEnvironment, snapshot_json: SnapshotAssertion) -> None:
    assert mask_asset_hashes(dev.template_json(component)) == snapshot_json


def test_masking_hides_only_asset_hashes() -> None:
    digest = "ab" * 32
    masked = mask_asset_hashes({"S3Key": f"{digest}.zip", "Other": ["keep", 3]})
    assert masked == {"S3Key": "<asset-hash>.zip", "Other": ["keep", 3]}
