"""Point 7: KMS use only through the service that needs it (kms:ViaService, and the S3 encryption context), and
logs under a key of their own in every environment. Issue 22, problem 4: key policies that name their users."""

from __future__ import annotations

import json

import pytest

from stacks.config.environment import STACK_COMPONENTS
from tests.security.endpoint_policies import PseudoParameters, Request, allows, resolve
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


ACCOUNT, REGION = "111122223333", "us-east-1"
PSEUDO = PseudoParameters(account=ACCOUNT, region=REGION)
CRYPTO = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom", "kms:CreateGrant")


def key_policies(env: SynthesizedEnvironment) -> dict[str, dict]:
    """Description -> resolved key policy, for every key of every stack."""
    return {
        key["Properties"]["Description"]: resolve(key["Properties"]["KeyPolicy"], PSEUDO)
        for component in (*COMPONENTS, "Observability")
        for key in env.resources(component, "AWS::KMS::Key").values()
    }


def _role(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def key_use(action: str, role: str, via: str | None = None) -> Request:
    keys = (("kms:CallerAccount", ACCOUNT),) + ((("kms:ViaService", f"{via}.{REGION}.amazonaws.com"),) if via else ())
    return Request(action, "*", ACCOUNT, _role(role), keys)


@pytest.mark.parametrize("environment", ["dev", "variant"])
def test_no_key_hands_its_use_to_whoever_iam_allows(environment: str, request: pytest.FixtureRequest) -> None:
    """Issue 22, problem 4: a role of the account whose IAM policy allows kms:* on * is not thereby a user of any
    Tessera key; the account keeps administration (CloudFormation updates and deletes the keys)."""
    policies = key_policies(request.getfixturevalue(environment))
    assert len(policies) == 4  # logs, artifacts, Kubernetes secrets, alerts
    stranger = "some-team-etl"
    for description, policy in policies.items():
        for action in CRYPTO:
            for via in (None, "s3", "dynamodb", "ecr", "logs", "sns"):
                assert not allows(policy, key_use(action, stranger, via)), (description, action, via)
        assert allows(policy, key_use("kms:PutKeyPolicy", stranger)), description
        assert allows(policy, key_use("kms:ScheduleKeyDeletion", stranger)), description
        granted_for_a_resource = Request(
            "kms:CreateGrant", "*", ACCOUNT, _role(stranger), (("kms:GrantIsForAWSResource", "true"),)
        )
        assert allows(policy, granted_for_a_resource), description


def test_the_artifacts_key_serves_the_environment_s_roles_through_s3_dynamodb_and_ecr(
    variant: SynthesizedEnvironment,
) -> None:
    [policy] = [p for d, p in key_policies(variant).items() if "model artifacts" in d]
    operator = "platform-admin"  # cluster.admin_role_arns in the variant
    for role in ("tessera-variant-register", "Tessera-variant-Services-AssistantModelReaderRole1A2B", operator):
        for via in ("s3", "dynamodb", "ecr"):
            assert allows(policy, key_use("kms:Decrypt", role, via)), (role, via)
        assert not allows(policy, key_use("kms:Decrypt", role)), role  # never directly
        assert not allows(policy, key_use("kms:Decrypt", role, "secretsmanager")), role
    # Another environment's roles are not this one's, even one whose name starts with this one's.
    assert not allows(policy, key_use("kms:Decrypt", "tessera-dev-register", "s3"))
    assert not allows(policy, key_use("kms:Decrypt", "Tessera-dev-Services-AssistantModelReaderRole1A2B", "s3"))
    assert not allows(policy, key_use("kms:Decrypt", "tessera-variant-eu-register", "s3"))
    assert not allows(policy, key_use("kms:Decrypt", "Tessera-variant-eu-Services-AssistantModelReaderRole1A2B", "s3"))


def test_cloudwatch_uses_the_alerts_key_only_for_this_account_s_alarms(dev: SynthesizedEnvironment) -> None:
    [policy] = [p for d, p in key_policies(dev).items() if "alerts topic" in d]
    alarm = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:tessera-dev-assistant"

    def cloudwatch(account: str, source_arn: str) -> Request:
        keys = (("aws:SourceAccount", account), ("aws:SourceArn", source_arn))
        return Request("kms:GenerateDataKey", "*", None, keys=keys, service="cloudwatch.amazonaws.com")

    assert allows(policy, cloudwatch(ACCOUNT, alarm))
    assert not allows(policy, cloudwatch("444455556666", alarm.replace(ACCOUNT, "444455556666")))
    assert not allows(policy, cloudwatch(ACCOUNT, f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:someone-else"))


def test_the_key_names_every_stack_the_app_builds(dev: SynthesizedEnvironment) -> None:
    """The artifacts key's users are named per stack: the list must be the app's stacks."""
    built = {path.name.removesuffix(".template.json") for path in dev.template_paths}
    assert built == {dev.config.stack_name(component) for component in STACK_COMPONENTS}
