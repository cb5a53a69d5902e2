"""The register Lambda driven by the EventBridge "Object Created" event S3 sends, and by direct calls."""

from __future__ import annotations

import json
import logging

import pytest

from registry import handler
from tests.registry.world import (
    ASSISTANT_ARTIFACTS,
    LambdaContextDouble,
    World,
    announcement_queue,
    assistant_manifest,
    object_created_event,
)


def _emitted(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def _logged(caplog: pytest.LogCaptureFixture, message: str) -> dict:
    """The JSON line Powertools writes for the record with this message."""
    record = next(r for r in caplog.records if r.getMessage() == message)
    return json.loads(handler.logger.registered_formatter.format(record))


def _metric_names(output: str) -> list[str]:
    names = []
    for record in _emitted(output):
        for directive in record.get("_aws", {}).get("CloudWatchMetrics", []):
            names += [metric["Name"] for metric in directive["Metrics"]]
    return names


def test_upload_event_registers_the_version(
    lambda_env: World, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tessera-registry")
    key = lambda_env.upload(assistant_manifest(), ASSISTANT_ARTIFACTS)
    result = handler.handle(object_created_event(key), LambdaContextDouble())
    assert result["outcome"] == "REGISTERED"
    output = capsys.readouterr().out
    assert _metric_names(output) == ["RegistrationRegistered"]
    decided = _logged(caplog, "registration decided")
    assert (decided["service_name"], decided["version"], decided["outcome"]) == (
        "assistant",
        "2026-11-20",
        "REGISTERED",
    )


def test_redelivered_event_is_harmless(lambda_env: World) -> None:
    key = lambda_env.upload(assistant_manifest(), ASSISTANT_ARTIFACTS)
    first = handler.handle(object_created_event(key), LambdaContextDouble())
    second = handler.handle(object_created_event(key), LambdaContextDouble())
    assert first["outcome"] == second["outcome"] == "REGISTERED"
    assert (first["changed"], second["changed"]) == (True, False)
    assert len(lambda_env.store().history("assistant", "2026-11-20")) == 1


def test_rejection_is_counted(lambda_env: World, capsys: pytest.CaptureFixture[str]) -> None:
    key = lambda_env.upload(assistant_manifest(neuron_cores=1, tensor_parallel_degree=1), ASSISTANT_ARTIFACTS)
    result = handler.handle(object_created_event(key), LambdaContextDouble())
    assert result["outcome"] == "REJECTED"
    assert result["reasons"] == ["compiled for 1 NeuronCores but assistant pods get 2"]
    assert _metric_names(capsys.readouterr().out) == ["RegistrationRejected"]


def test_url_encoded_keys_are_understood(lambda_env: World) -> None:
    key = lambda_env.upload(assistant_manifest(), ASSISTANT_ARTIFACTS)
    result = handler.handle(object_created_event(key.replace("/", "%2F")), LambdaContextDouble())
    assert result["outcome"] == "REGISTERED"


def test_direct_call(lambda_env: World) -> None:
    lambda_env.upload(assistant_manifest(), ASSISTANT_ARTIFACTS)
    result = handler.handle({"service": "assistant", "version": "2026-11-20"}, LambdaContextDouble())
    assert result["outcome"] == "REGISTERED"


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (object_created_event("models/assistant/v1/manifest.json", bucket="someone-else"), "not the model bucket"),
        (object_created_event("models/assistant/v1/weights.bin"), "is not models/<service>/<version>/manifest.json"),
        (object_created_event("uploads/manifest.json"), "is not models/<service>/<version>/manifest.json"),
        (
            {**object_created_event("models/assistant/v1/manifest.json"), "detail-type": "Object Deleted"},
            "not an S3 Object Created",
        ),
        ({"detail-type": "Object Created", "source": "aws.s3", "detail": "oops"}, "no detail object"),
        ({"detail-type": "Object Created", "source": "aws.s3", "detail": {}}, "lacks detail.bucket.name"),
        ({"service": "Assistant", "version": "v1"}, "service 'Assistant' must match"),
        ({"service": "assistant", "version": "../x"}, "version '../x' must match"),
        ({"hello": "world"}, "neither an S3 Object Created event nor"),
        (["not", "an", "object"], "event is a list"),
    ],
)
def test_other_input_is_ignored_with_a_reason(
    lambda_env: World,
    event: object,
    reason: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    result = handler.handle(event, LambdaContextDouble())
    assert result["outcome"] == "IGNORED"
    assert reason in result["reason"]
    output = capsys.readouterr().out
    warning = _logged(caplog, "event ignored")
    assert reason in warning["reason"]
    assert _metric_names(output) == ["RegistrationIgnored"]
    assert lambda_env.store().list_versions("assistant") == []


def test_a_new_registration_is_announced_once(lambda_env: World) -> None:
    """Auto-start rollouts listen for this event; a re-delivered upload must not announce twice."""
    sqs, queue = announcement_queue()
    key = lambda_env.upload(assistant_manifest(), ASSISTANT_ARTIFACTS)
    for _ in range(2):
        handler.handle(object_created_event(key), LambdaContextDouble())
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1
    event = json.loads(messages[0]["Body"])
    assert event["detail-type"] == "Model Version Registered"
    assert event["detail"] == {"service": "assistant", "version": "2026-11-20", "environment": "dev"}
