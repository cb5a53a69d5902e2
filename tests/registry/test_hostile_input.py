"""Issue 21, problems 2-6, 9 and 10: what the register function meets from anyone who can upload or invoke.

Every refusal is a recorded REJECTED (or IGNORED) with its reason; nothing crashes, nothing is coerced,
and a conflicting upload of a registered version is never announced."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from registry import handler
from registry.checksums import b64, composite_checksum
from registry.manifest import MAX_MANIFEST_BYTES
from registry.registrar import Registrar
from tests.registry.world import (
    ASSISTANT_ARTIFACTS,
    BUCKET,
    REGION,
    TABLE,
    WEIGHTS,
    LambdaContextDouble,
    World,
    announcement_queue,
    assistant_manifest,
    object_created_event,
    sha256_hex,
)

VERSION = "2026-11-20"
FOLDER = f"models/assistant/{VERSION}/"


def _put_manifest(world: World, body: bytes) -> str:
    key = FOLDER + "manifest.json"
    world.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return key


def _register(world: World, key: str) -> dict:
    return handler.handle(object_created_event(key), LambdaContextDouble())


def _recorded(world: World) -> Any:
    return world.store().get_version("assistant", VERSION)


def test_2_a_conflicting_upload_of_a_registered_version_is_not_announced(lambda_env: World) -> None:
    sqs, queue = announcement_queue()
    key = lambda_env.upload(assistant_manifest(), ASSISTANT_ARTIFACTS)
    assert _register(lambda_env, key)["outcome"] == "REGISTERED"
    lambda_env.upload(assistant_manifest(model="something-else"), ASSISTANT_ARTIFACTS)
    answer = _register(lambda_env, key)
    assert (answer["outcome"], answer["state"]) == ("REJECTED", "REGISTERED")
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    assert len(messages) == 1, "the conflicting upload announced the version again"


def _with_metadata(value: bytes) -> bytes:
    """A manifest that fits the assistant in every field, carrying `value` in its free-form metadata."""
    return json.dumps(assistant_manifest(metadata={"x": "VALUE"})).encode().replace(b'"VALUE"', value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"[" * 50_000 + b"]" * 50_000, "nested deeper than 32 levels"),
        (b"7" * 5000, "a number of 5000 characters"),
        (b"1" + b"0" * 400 + b".5", "a number of 403 characters"),
        (b"1e999999", "a number that is not finite"),
        (b"NaN", "NaN is not JSON"),
    ],
    ids=["nested-50000", "int-5000-digits", "float-403-characters", "exponent", "nan"],
)
def test_3_hostile_manifests_are_rejected_with_the_reason(lambda_env: World, value: bytes, reason: str) -> None:
    lambda_env.upload(assistant_manifest(), ASSISTANT_ARTIFACTS)
    answer = _register(lambda_env, _put_manifest(lambda_env, _with_metadata(value)))
    assert answer["outcome"] == "REJECTED"
    record = _recorded(lambda_env)
    assert record is not None
    assert record.state == "REJECTED"
    assert any(reason in text for text in record.reasons), record.reasons


class CountingBody:
    """Wraps a StreamingBody and counts the bytes the registrar reads from it."""

    def __init__(self, body: Any, counter: list[int]) -> None:
        self._body = body
        self._counter = counter

    def read(self, amount: int | None = None) -> bytes:
        data = self._body.read(amount)
        self._counter[0] += len(data)
        return data

    def close(self) -> None:
        self._body.close()


class S3Double:
    """moto's S3 plus what moto leaves out and real S3 does: keys over 1,024 bytes answer 400
    KeyTooLongError. Also counts manifest bytes read and the HEADs in flight at once."""

    def __init__(self, s3: Any, *, head_delay: float = 0.0) -> None:
        self._s3 = s3
        self.read = [0]
        self.heads = 0
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._head_delay = head_delay

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)

    def _refuse_long_keys(self, operation: str, key: str) -> None:
        if len(key.encode()) > 1024:
            raise ClientError({"Error": {"Code": "KeyTooLongError", "Message": "Your key is too long"}}, operation)

    def get_object(self, **kwargs: Any) -> dict:
        self._refuse_long_keys("GetObject", kwargs["Key"])
        response = self._s3.get_object(**kwargs)
        response["Body"] = CountingBody(response["Body"], self.read)
        return response

    def head_object(self, **kwargs: Any) -> dict:
        self._refuse_long_keys("HeadObject", kwargs["Key"])
        with self._lock:
            self.heads += 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            time.sleep(self._head_delay)
            return self._s3.head_object(**kwargs)
        finally:
            with self._lock:
                self._in_flight -= 1


def _registrar(world: World, s3: S3Double) -> Registrar:
    return Registrar(s3=s3, ecr=world.ecr, store=world.store(), catalog=world.catalog, bucket=BUCKET)


def test_4_an_oversized_manifest_is_refused_from_its_length_before_reading(lambda_env: World) -> None:
    padding = b" " * (8 * MAX_MANIFEST_BYTES)
    _put_manifest(lambda_env, json.dumps(assistant_manifest()).encode() + padding)
    s3 = S3Double(lambda_env.s3)
    outcome = _registrar(lambda_env, s3).register("assistant", VERSION)
    assert outcome.outcome == "REJECTED"
    assert outcome.reasons == [
        f"manifest is {len(json.dumps(assistant_manifest())) + len(padding)} bytes; the limit is {MAX_MANIFEST_BYTES}"
    ]
    assert s3.read[0] == 0, f"read {s3.read[0]} bytes of a manifest it refuses by its length"


def _whole_object_artifact(**changes: Any) -> dict:
    entry = {
        "path": "model.neff",
        "size_bytes": len(WEIGHTS),
        "s3_checksum_sha256": b64(bytes.fromhex(sha256_hex(WEIGHTS))),
    }
    return entry | changes


def test_5_a_declared_sha256_contradicting_the_whole_object_checksum_is_rejected(lambda_env: World) -> None:
    manifest = assistant_manifest(artifacts=[_whole_object_artifact(sha256=sha256_hex(b"other weights"))])
    answer = _register(lambda_env, lambda_env.upload(manifest, {"model.neff": WEIGHTS}))
    assert answer["outcome"] == "REJECTED"
    assert any("sha256 does not match its s3_checksum_sha256" in reason for reason in answer["reasons"])


def test_5_a_composite_checksum_needs_the_part_checksums_that_make_it(lambda_env: World) -> None:
    """A composite copied from a HEAD, with a part size that is not the upload's, is refused: the manifest
    must list each part's SHA-256, and the composite recomputed from them must be what S3 stored."""
    part = 5 << 20
    data = bytes(range(256)) * (14 << 20 >> 8)  # 14 MiB: 3 parts of 5 MiB, and 3 parts of 6 MiB too
    parts = [data[i : i + part] for i in range(0, len(data), part)]
    digests = [hashlib.sha256(chunk).digest() for chunk in parts]
    upload = lambda_env.s3.create_multipart_upload(Bucket=BUCKET, Key=FOLDER + "model.neff", ChecksumAlgorithm="SHA256")
    done = [
        {
            "PartNumber": number,
            "ETag": lambda_env.s3.upload_part(
                Bucket=BUCKET,
                Key=FOLDER + "model.neff",
                UploadId=upload["UploadId"],
                PartNumber=number,
                Body=chunk,
                ChecksumAlgorithm="SHA256",
            )["ETag"],
            "ChecksumSHA256": b64(digests[number - 1]),
        }
        for number, chunk in enumerate(parts, start=1)
    ]
    lambda_env.s3.complete_multipart_upload(
        Bucket=BUCKET, Key=FOLDER + "model.neff", UploadId=upload["UploadId"], MultipartUpload={"Parts": done}
    )
    composite = composite_checksum(digests)
    copied = {
        "path": "model.neff",
        "size_bytes": len(data),
        "sha256": sha256_hex(data),
        "s3_checksum_sha256": composite,
        "part_size_bytes": part + (1 << 20),  # false, yet it gives the same part count
        "part_count": 3,
    }
    lambda_env.s3.put_object(
        Bucket=BUCKET, Key=FOLDER + "manifest.json", Body=json.dumps(assistant_manifest(artifacts=[copied])).encode()
    )
    answer = _register(lambda_env, FOLDER + "manifest.json")
    assert answer["outcome"] == "REJECTED"
    assert any("parts_sha256" in reason for reason in answer["reasons"]), answer["reasons"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"neuron_cores": "2"}, "compile_target.neuron_cores"),
        ({"tensor_parallel_degree": True}, "compile_target.tensor_parallel_degree"),
        ({"batch_size": 4.0}, "compile_target.batch_size"),
    ],
)
def test_6_types_are_not_coerced(lambda_env: World, changes: dict, field: str) -> None:
    answer = _register(lambda_env, lambda_env.upload(assistant_manifest(**changes), ASSISTANT_ARTIFACTS))
    assert answer["outcome"] == "REJECTED"
    assert any(reason.startswith(f"manifest {field}:") for reason in answer["reasons"]), answer["reasons"]


def test_9_a_long_event_id_is_ignored_with_a_record(lambda_env: World) -> None:
    event = object_created_event("models/not-a-manifest.bin") | {"id": "x" * 2000}
    answer = handler.handle(event, LambdaContextDouble())
    assert answer["outcome"] == "IGNORED"
    items = boto3.client("dynamodb", region_name=REGION).query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "IGNORED"}},
    )["Items"]
    assert [item["key"]["S"] for item in items] == ["models/not-a-manifest.bin"]


def test_9_an_artifact_key_over_s3s_limit_is_rejected_not_raised(lambda_env: World) -> None:
    path = "模" * 340  # 340 characters (under the schema's 512), 1,020 bytes in UTF-8
    manifest = assistant_manifest(artifacts=[{"path": path, "size_bytes": 1, "sha256": sha256_hex(b"x")}])
    _put_manifest(lambda_env, json.dumps(manifest).encode())
    outcome = _registrar(lambda_env, S3Double(lambda_env.s3)).register("assistant", VERSION)
    assert outcome.outcome == "REJECTED"
    assert any("1024 bytes" in reason and "S3 key" in reason for reason in outcome.reasons), outcome.reasons


def test_10_artifacts_are_checked_in_parallel(lambda_env: World) -> None:
    artifacts = {f"shard-{index:03d}.bin": f"shard {index}".encode() for index in range(64)}
    manifest = assistant_manifest(
        artifacts=[
            {"path": path, "size_bytes": len(data), "sha256": sha256_hex(data)} for path, data in artifacts.items()
        ]
    )
    lambda_env.upload(manifest, artifacts)
    s3 = S3Double(lambda_env.s3, head_delay=0.02)
    outcome = _registrar(lambda_env, s3).register("assistant", VERSION)
    assert outcome.outcome == "REGISTERED", outcome.reasons
    assert s3.heads == 64
    assert s3.max_in_flight >= 8, f"at most {s3.max_in_flight} HEADs were in flight at once"
