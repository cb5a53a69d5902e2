"""Point 7: KMS use only through the service that needs it (kms:ViaService, and the S3 encryption context), and
logs under a key of their own in every environment."""

from __future__ import annotations

import json

import pytest

from tests.synth import SynthesizedEnvironment

COMPONENTS = ("Network", "Artifacts", "Cluster", "Services", "Registry", "Rollout")


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_every_log_group_is_encrypted_with_the_logs_key(environment: str, request: pytest.FixtureRequest) -> None:
    synthesized: SynthesizedEnvironment = request.getfixturevalue(environment)
    groups = [g for c in COMPONENTS for g in synthesized.resources(c, "AWS::Logs::LogGroup").values()]
    assert len(groups) >= 6
    for group in groups:
        assert "LogsKey" in json.dumps(group["Properties"].get("KmsKeyId")), group


def test_logs_have_their_own_key(dev: SynthesizedEnvironment) -> None:
    [logs_key] = [
        k["Properties"]
        for k in dev.resources("Network", "AWS::KMS::Key").values()
        if "log groups" in k["Properties"]["Description"]
    ]
    assert logs_key["EnableKeyRotation"] is True
    [service_statement] = [s for s in logs_key["KeyPolicy"]["Statement"] if "Service" in s["Principal"]]
    assert "kms:EncryptionContext:aws:logs:arn" in service_statement["Condition"]["ArnLike"]


@pytest.mark.parametrize("component", ["Services", "Rollout"])
def test_artifact_key_use_goes_through_its_service(component: str, dev: SynthesizedEnvironment) -> None:
    statements = [
        s
        for p in dev.resources(component, "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if any(a.startswith("kms:") for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))
    ]
    assert statements
    for statement in statements:
        via = statement["Condition"]["StringEquals"]["kms:ViaService"]
        # The track owner (Services) reads the registry table: the key only through DynamoDB.
        through_dynamodb = component == "Rollout" or statement.get("Sid") == "RegistryTableKey"
        assert ("dynamodb." if through_dynamodb else "s3.") in json.dumps(via)
        if not through_dynamodb:
            assert "kms:EncryptionContext:aws:s3:arn" in statement["Condition"]["StringEquals"]
