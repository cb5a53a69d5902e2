"""The manifest schema, its published JSON Schema and the documented example."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from registry.manifest import ManifestError, digest, manifest_json_schema, parse_manifest
from tests.registry.world import assistant_manifest

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "schemas" / "model-manifest.schema.json"
EXAMPLE_FILE = REPO / "docs" / "examples" / "manifest.json"


def _reasons(manifest: object) -> list[str]:
    with pytest.raises(ManifestError) as raised:
        parse_manifest(json.dumps(manifest).encode())
    return raised.value.reasons


def test_a_fitting_manifest_parses() -> None:
    manifest = parse_manifest(json.dumps(assistant_manifest()).encode())
    assert manifest.compile_target.instance_family == "trn1"
    assert manifest.artifacts[0].expected_s3_checksum.endswith("=")


def test_cpu_manifest_needs_only_the_architecture() -> None:
    data = assistant_manifest(service="gateway", compile_target={"accelerator": "cpu", "architecture": "arm64"})
    assert parse_manifest(json.dumps(data).encode()).compile_target.architecture == "arm64"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"schema_version": 2}, "manifest schema_version"),
        ({"version": "../etc"}, "manifest version"),
        ({"colour": "blue"}, "manifest colour: unknown field"),
        ({"tensor_parallel_degree": 4}, "tensor_parallel_degree 4 exceeds neuron_cores 2"),
        ({"instance_family": "inf2"}, "instance_family 'inf2' is not a trainium family"),
        ({"neuron_sdk": "latest"}, "manifest compile_target.neuron_sdk"),
        ({"artifacts": []}, "manifest artifacts"),
    ],
)
def test_schema_rejections_name_the_field(change: dict, expected: str) -> None:
    reasons = _reasons(assistant_manifest(**change))
    assert any(expected in reason for reason in reasons), reasons


@pytest.mark.parametrize(
    ("artifact", "expected"),
    [
        ({"path": "../secrets", "size_bytes": 1, "sha256": "0" * 64}, "plain relative path"),
        ({"path": "/abs", "size_bytes": 1, "sha256": "0" * 64}, "plain relative path"),
        ({"path": "manifest.json", "size_bytes": 1, "sha256": "0" * 64}, "does not list itself"),
        ({"path": "weights.bin", "size_bytes": 1}, "give sha256 or s3_checksum_sha256"),
        ({"path": "weights.bin", "size_bytes": -1, "sha256": "0" * 64}, "size_bytes"),
    ],
)
def test_artifact_rejections(artifact: dict, expected: str) -> None:
    assert any(expected in reason for reason in _reasons(assistant_manifest(artifacts=[artifact])))


def test_duplicate_artifact_paths() -> None:
    artifact = {"path": "a.bin", "size_bytes": 1, "sha256": "0" * 64}
    assert any("listed twice" in reason for reason in _reasons(assistant_manifest(artifacts=[artifact, artifact])))


def test_not_json_is_one_reason() -> None:
    with pytest.raises(ManifestError) as raised:
        parse_manifest(b"{not json")
    assert raised.value.reasons[0].startswith("manifest is not valid JSON")


def test_digest_identifies_content() -> None:
    assert digest(b"a") == digest(b"a") != digest(b"b")


def test_published_schema_is_current() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == manifest_json_schema(), "run `make schema`"


def test_documented_example_is_valid_for_both_validators() -> None:
    example = json.loads(EXAMPLE_FILE.read_text())
    parse_manifest(EXAMPLE_FILE.read_bytes())
    jsonschema.validate(example, json.loads(SCHEMA_FILE.read_text()))
