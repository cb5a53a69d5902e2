"""Issue 21, What to build 1: the registry records each artifact's S3 version id with its checksums, once, in
`registered/<service>/<version>.json`, before the version is REGISTERED; a rejected version gets no record."""

from __future__ import annotations

import json

from registry.manifest import digest
from tests.registry.world import ASSISTANT_ARTIFACTS, BUCKET, World, assistant_manifest, sha256_hex

VERSION = "2026-11-20"
RECORD = f"registered/assistant/{VERSION}.json"


def _record(world: World) -> dict:
    return json.loads(world.s3.get_object(Bucket=BUCKET, Key=RECORD)["Body"].read())


def test_a_registration_records_the_object_versions_it_checked(world: World) -> None:
    key = world.upload(assistant_manifest(), ASSISTANT_ARTIFACTS)
    assert world.registrar().register("assistant", VERSION).outcome == "REGISTERED"
    record = _record(world)
    manifest = world.s3.get_object(Bucket=BUCKET, Key=key)
    assert record["manifest"] == {"version_id": manifest["VersionId"], "sha256": digest(manifest["Body"].read())}
    for artifact in record["artifacts"]:
        head = world.s3.head_object(Bucket=BUCKET, Key=f"models/assistant/{VERSION}/{artifact['path']}")
        assert artifact["version_id"] == head["VersionId"]
        assert artifact["sha256"] == sha256_hex(ASSISTANT_ARTIFACTS[artifact["path"]])
        assert artifact["size_bytes"] == head["ContentLength"]


def test_a_redelivered_registration_finds_its_record_and_answers_the_same(world: World) -> None:
    world.upload(assistant_manifest(), ASSISTANT_ARTIFACTS)
    first = world.registrar().register("assistant", VERSION)
    again = world.registrar().register("assistant", VERSION)
    assert (first.outcome, again.outcome) == ("REGISTERED", "REGISTERED")
    versions = world.s3.list_object_versions(Bucket=BUCKET, Prefix=RECORD)["Versions"]
    assert len(versions) == 1


def test_a_rejected_version_has_no_record(world: World) -> None:
    world.upload(assistant_manifest(neuron_sdk="2.32.0"), ASSISTANT_ARTIFACTS)
    assert world.registrar().register("assistant", VERSION).outcome == "REJECTED"
    assert "Contents" not in world.s3.list_objects_v2(Bucket=BUCKET, Prefix="registered/")
