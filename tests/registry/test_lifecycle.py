"""Issue 11 through the register Lambda: a version lifecycle that forgives mistakes, checks before it
writes, reliable announcements, bounded items, history events and images by digest.

Numbered comments name the issue's cases."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from registry import handler
from registry.intake import parse_request
from tessera_shared.constants import PROMOTED, REGISTERED, REJECTED, ROLLED_BACK
from tests.registry.world import (
    ASSISTANT_ARTIFACTS,
    ASSISTANT_TAG,
    BUCKET,
    REGION,
    LambdaContextDouble,
    World,
    announcement_queue,
    assistant_manifest,
    object_created_event,
)

# The lifecycle event kinds (tessera_shared.constants EVENT_*), spelled out so that this module also
# loads on code that predates them, and each test fails on its own.
EVENT_DEPLOYED_CANARY, EVENT_PROMOTED, EVENT_ROLLED_BACK, EVENT_ROLLOUT_FAILED = (
    "deployed-canary",
    "promoted",
    "rolled-back",
    "rollout-failed",
)
VERSION = "2026-11-20"
REPOSITORY = "tessera/dev/assistant"


def register(world: World, manifest: dict, artifacts: dict[str, bytes] = ASSISTANT_ARTIFACTS) -> dict:
    key = world.upload(manifest, artifacts)
    return handler.handle(object_created_event(key), LambdaContextDouble())


def kinds(world: World, version: str = VERSION) -> list[str]:
    return [event["kind"] for event in world.store().history("assistant", version)]


# -- 1. one mistake no longer burns a version ---------------------------------------------------------
def test_1_a_rejected_version_is_fixed_by_a_changed_manifest(lambda_env: World) -> None:
    assert register(lambda_env, assistant_manifest(neuron_cores=1, tensor_parallel_degree=1))["outcome"] == REJECTED
    result = register(lambda_env, assistant_manifest())
    assert (result["outcome"], result["state"], result["changed"]) == (REGISTERED, REGISTERED, True)
    history = lambda_env.store().history("assistant", VERSION)
    assert [(event["kind"], event["attempt"]) for event in history] == [("rejected", 1), ("registered", 2)]
    assert history[0]["reasons"] == ["compiled for 1 NeuronCores but assistant pods get 2"]
    assert history[0]["digest"] != history[1]["digest"]
    assert lambda_env.store().get_version("assistant", VERSION).attempts == 2


def test_1_a_missing_manifest_is_an_answer_not_a_stored_state(lambda_env: World) -> None:
    early = handler.handle({"service": "assistant", "version": VERSION}, LambdaContextDouble())
    assert (early["outcome"], early["state"]) == ("NOT_FOUND", None)
    assert lambda_env.store().get_version("assistant", VERSION) is None
    assert register(lambda_env, assistant_manifest())["outcome"] == REGISTERED


def test_1_a_version_that_ran_is_immutable_even_after_its_rollback(lambda_env: World) -> None:
    register(lambda_env, assistant_manifest())
    store = lambda_env.store()
    store.record_lifecycle_event("assistant", VERSION, EVENT_DEPLOYED_CANARY, {}, key="exec-1#deploy")
    store.record_lifecycle_event("assistant", VERSION, EVENT_ROLLED_BACK, {"reason": "5xx"}, key="exec-1#rollback")
    result = register(lambda_env, assistant_manifest(batch_size=8))
    assert result["outcome"] == REJECTED
    assert "already ROLLED_BACK and has run with a different manifest" in result["reasons"][0]
    record = store.get_version("assistant", VERSION)
    assert (record.state, record.deployed, record.target["batch_size"]) == (ROLLED_BACK, True, 4)


# -- 3. check before writing; tell the operator what was ignored -------------------------------------
def test_3_a_manifest_for_an_unknown_service_writes_nothing_under_its_name(lambda_env: World) -> None:
    manifest = assistant_manifest(service="painter")
    result = register(lambda_env, manifest)
    assert result["outcome"] == "IGNORED"
    assert "service 'painter' is not in this environment" in result["reason"]
    assert lambda_env.store().list_versions("painter") == []
    [ignored] = lambda_env.store().list_ignored()
    assert ignored["key"] == f"models/painter/{VERSION}/manifest.json"


def test_3_an_unplaceable_key_is_kept_for_the_operator(lambda_env: World, capsys: pytest.CaptureFixture[str]) -> None:
    key = "models/assistant/2026+11+24/manifest.json"  # S3 URL-encodes "2026 11 24" in the event
    result = handler.handle(object_created_event(key), LambdaContextDouble())
    assert result["outcome"] == "IGNORED"
    [ignored] = lambda_env.store().list_ignored()
    assert ignored["key"] == "models/assistant/2026 11 24/manifest.json"
    assert "version matching" in ignored["reason"]
    assert "pk" not in ignored
    assert lambda_env.store().list_versions("assistant") == []


# -- 5. reliable side effects and bounded items --------------------------------------------------------
class EventBusRefusingDouble:
    """EventBridge PutEvents answering as it does under throttling: HTTP 200 with a failed entry."""

    def __init__(self) -> None:
        self.calls = 0

    def put_events(self, **_: Any) -> dict:
        self.calls += 1
        return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}]}


def test_5_a_refused_announcement_fails_the_invocation_and_its_retry_sends_it(
    lambda_env: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusing = EventBusRefusingDouble()
    real_client = boto3.client
    monkeypatch.setattr(
        handler.boto3, "client", lambda name, **kw: refusing if name == "events" else real_client(name, **kw)
    )
    key = lambda_env.upload(assistant_manifest(), ASSISTANT_ARTIFACTS)
    with pytest.raises(handler.AnnouncementError, match="ThrottlingException"):
        handler.handle(object_created_event(key), LambdaContextDouble())
    assert lambda_env.store().get_version("assistant", VERSION).announced is False
    monkeypatch.setattr(handler.boto3, "client", real_client)
    sqs, queue = announcement_queue()
    for _ in range(2):  # the Lambda's retry, then a re-delivery: announced once
        assert handler.handle(object_created_event(key), LambdaContextDouble())["outcome"] == REGISTERED
    assert len(sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])) == 1
    assert lambda_env.store().get_version("assistant", VERSION).announced is True


def test_5_thousands_of_problems_are_capped_and_the_version_is_recorded(lambda_env: World) -> None:
    long_dir = "layers/" + "x" * 300
    artifacts = [{"path": f"{long_dir}/shard-{i:04}.bin", "size_bytes": 1, "sha256": "0" * 64} for i in range(1000)]
    result = register(lambda_env, assistant_manifest(artifacts=artifacts), {})
    assert result["outcome"] == REJECTED
    assert len(result["reasons"]) == 21
    assert result["reasons"][-1] == "... and 980 more problems"
    assert lambda_env.store().get_version("assistant", VERSION).state == REJECTED


def test_5_too_many_artifacts_is_one_reason(lambda_env: World) -> None:
    artifacts = [{"path": f"shard-{i}.bin", "size_bytes": 1, "sha256": "0" * 64} for i in range(5000)]
    result = register(lambda_env, assistant_manifest(artifacts=artifacts), {})
    assert result["outcome"] == REJECTED
    assert result["reasons"] == ["manifest artifacts: List should have at most 1000 items after validation, not 5000"]


def test_5_duplicate_json_keys_are_a_rejection_reason(lambda_env: World) -> None:
    raw = json.dumps(assistant_manifest()).replace('"model": "assistant-vlm",', '"model": "a", "model": "b",')
    for path, data in ASSISTANT_ARTIFACTS.items():
        lambda_env.s3.put_object(Bucket=BUCKET, Key=f"models/assistant/{VERSION}/{path}", Body=data)
    key = f"models/assistant/{VERSION}/manifest.json"
    lambda_env.s3.put_object(Bucket=BUCKET, Key=key, Body=raw.encode())
    result = handler.handle(object_created_event(key), LambdaContextDouble())
    assert result["reasons"] == ["manifest: key 'model' appears twice in one object"]


# -- 6. the history is the history ---------------------------------------------------------------------
def test_6_promotion_rollback_and_failure_add_events_once(lambda_env: World) -> None:
    register(lambda_env, assistant_manifest())
    store = lambda_env.store()
    assert store.record_lifecycle_event("assistant", VERSION, EVENT_DEPLOYED_CANARY, {"weight": 0}, key="e1#deploy")
    assert store.record_lifecycle_event("assistant", VERSION, EVENT_PROMOTED, {"execution": "e1"}, key="e1#promote")
    assert not store.record_lifecycle_event("assistant", VERSION, EVENT_PROMOTED, {}, key="e1#promote")  # retried
    assert store.record_lifecycle_event("assistant", VERSION, EVENT_ROLLOUT_FAILED, {"error": "x"}, key="e2#failed")
    assert kinds(lambda_env) == ["registered", "deployed-canary", "promoted", "rollout-failed"]
    record = store.get_version("assistant", VERSION)
    assert (record.state, record.deployed) == (PROMOTED, True)


def test_6_lifecycle_events_refuse_unknown_versions_kinds_and_big_details(lambda_env: World) -> None:
    store = lambda_env.store()
    with pytest.raises(LookupError, match="not in the registry"):
        store.record_lifecycle_event("assistant", "nope", EVENT_PROMOTED, {}, key="k")
    register(lambda_env, assistant_manifest())
    with pytest.raises(ValueError, match="is not one of"):
        store.record_lifecycle_event("assistant", VERSION, "registered", {}, key="k")
    with pytest.raises(ValueError, match="over 8192 bytes"):
        store.record_lifecycle_event("assistant", VERSION, EVENT_PROMOTED, {"log": "x" * 9000}, key="k")
    assert kinds(lambda_env) == ["registered"]


# -- 7. images by digest, kept while used -------------------------------------------------------------
def test_7_registration_records_the_image_digest(lambda_env: World) -> None:
    from registry.images import image_reference

    result = register(lambda_env, assistant_manifest())
    expected = lambda_env.ecr.describe_images(repositoryName=REPOSITORY, imageIds=[{"imageTag": ASSISTANT_TAG}])
    digest = expected["imageDetails"][0]["imageDigest"]
    assert result["image_digest"] == digest
    record = lambda_env.store().get_version("assistant", VERSION)
    assert record.image_digest == digest
    uri = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/{REPOSITORY}"
    assert image_reference(uri, record.image_digest) == f"{uri}@{digest}"
    with pytest.raises(ValueError, match="not sha256"):
        image_reference(uri, None)


def test_7_the_sdk_is_checked_against_the_image_the_version_runs(lambda_env: World) -> None:
    lambda_env.push_image(REPOSITORY, "vllm-0.24.0-neuronx-sdk2.32.0", findings={})
    manifest = assistant_manifest(image={"repository": REPOSITORY, "tag": "vllm-0.24.0-neuronx-sdk2.32.0"})
    result = register(lambda_env, manifest)
    assert result["outcome"] == REJECTED
    assert result["reasons"] == [
        f"image tag vllm-0.24.0-neuronx-sdk2.32.0 is not assistant's serving image {ASSISTANT_TAG} (Neuron SDK "
        "2.31.1); its Neuron SDK is unknown: declare the image and its neuron_sdk in config first"
    ]


def test_7_protecting_an_image_adds_the_kept_tag_once(lambda_env: World) -> None:
    from registry.images import protect_image, protective_tag

    register(lambda_env, assistant_manifest())
    digest = lambda_env.store().get_version("assistant", VERSION).image_digest
    for _ in range(2):
        assert protect_image(lambda_env.ecr, repository=REPOSITORY, image_digest=digest, version=VERSION) == (
            "tessera-live-2026-11-20"
        )
    [image] = lambda_env.ecr.describe_images(repositoryName=REPOSITORY, imageIds=[{"imageDigest": digest}])[
        "imageDetails"
    ]
    assert sorted(image["imageTags"]) == sorted([ASSISTANT_TAG, "tessera-live-2026-11-20"])
    assert protective_tag("v1+build.7") == "tessera-live-v1-build.7"


# -- 4. one rule for where a service's models live -----------------------------------------------------
def test_4_every_catalog_prefix_is_what_the_handler_parses(lambda_env: World) -> None:
    for service in lambda_env.catalog.services.values():
        request = parse_request(object_created_event(f"{service.model_prefix}v1/manifest.json"), bucket=BUCKET)
        assert (request.service, request.version) == (service.name, "v1")
