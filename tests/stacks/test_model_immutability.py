"""Issue 21, problem 1: once written, a model version's objects cannot change.

The model bucket's policy, as synthesized, is evaluated for the requests that matter (moto does not enforce bucket
policies, so the policy itself is what is checked): only the publisher role writes under `models/`, only with
`If-None-Match: *` (S3 refuses the write when the key exists), multipart parts exempted as AWS documents; nobody
deletes a version's objects; only the register function writes the registry's record of what a version is
(`registered/`), also without overwrites."""

from __future__ import annotations

import pytest

from stacks.common.resource_names import publisher_role_name, register_role_name
from tests.security.endpoint_policies import PseudoParameters, Request, denies, resolve
from tests.synth import SynthesizedEnvironment

ACCOUNT = "111122223333"
REGION = "eu-west-1"
PSEUDO = PseudoParameters(ACCOUNT, REGION)
BUCKET = f"tessera-dev-models-{ACCOUNT}-{REGION}"
PUBLISHER = f"arn:aws:iam::{ACCOUNT}:role/{publisher_role_name('dev')}"
REGISTER = f"arn:aws:iam::{ACCOUNT}:role/{register_role_name('dev')}"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/Admin"
ARTIFACT = f"arn:aws:s3:::{BUCKET}/models/assistant/2026-11-20/model.neff"
RECORD = f"arn:aws:s3:::{BUCKET}/registered/assistant/2026-11-20.json"


def _substitute(value: object, reference: dict, replacement: str) -> object:
    if value == reference:
        return replacement
    if isinstance(value, dict):
        return {key: _substitute(item, reference, replacement) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, reference, replacement) for item in value]
    return value


@pytest.fixture(scope="module")
def policy(dev: SynthesizedEnvironment) -> dict:
    template = dev.template("Artifacts")
    [bucket_id] = [name for name in template.find_resources("AWS::S3::Bucket") if name.startswith("ModelBucket")]
    [document] = [
        p["Properties"]["PolicyDocument"]
        for p in template.find_resources("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    return resolve(_substitute(document, {"Fn::GetAtt": [bucket_id, "Arn"]}, f"arn:aws:s3:::{BUCKET}"), PSEUDO)


def _request(action: str, resource: str, principal: str, keys: dict[str, str] | None = None) -> Request:
    context = {"aws:SecureTransport": "true", **(keys or {})}
    return Request(f"s3:{action}", resource, ACCOUNT, principal, tuple(context.items()))


CONDITIONAL = {"s3:if-none-match": "*", "s3:ObjectCreationOperation": "true"}
CREATION = {"s3:ObjectCreationOperation": "true"}
PART = {"s3:ObjectCreationOperation": "false"}


def test_the_publisher_writes_a_new_object_with_if_none_match(policy: dict) -> None:
    assert not denies(policy, _request("PutObject", ARTIFACT, PUBLISHER, CONDITIONAL))


def test_an_unconditional_put_under_models_is_refused_even_for_the_publisher(policy: dict) -> None:
    assert denies(policy, _request("PutObject", ARTIFACT, PUBLISHER, CREATION))


def test_multipart_parts_carry_no_condition_and_are_exempt(policy: dict) -> None:
    """CreateMultipartUpload and UploadPart are s3:PutObject without conditional headers; CompleteMultipartUpload
    is where If-None-Match is checked."""
    assert not denies(policy, _request("PutObject", ARTIFACT, PUBLISHER, PART))


def test_nobody_else_writes_under_models(policy: dict) -> None:
    assert denies(policy, _request("PutObject", ARTIFACT, ADMIN, CONDITIONAL))
    assert denies(policy, _request("PutObject", ARTIFACT, REGISTER, CONDITIONAL))


@pytest.mark.parametrize("action", ["DeleteObject", "DeleteObjectVersion"])
@pytest.mark.parametrize("resource", [ARTIFACT, RECORD])
def test_nobody_deletes_a_versions_objects(policy: dict, action: str, resource: str) -> None:
    for principal in (PUBLISHER, REGISTER, ADMIN):
        assert denies(policy, _request(action, resource, principal)), (action, principal)


def test_only_the_register_function_writes_the_registered_record_once(policy: dict) -> None:
    assert not denies(policy, _request("PutObject", RECORD, REGISTER, CONDITIONAL))
    assert denies(policy, _request("PutObject", RECORD, REGISTER, CREATION))
    assert denies(policy, _request("PutObject", RECORD, PUBLISHER, CONDITIONAL))


def test_reads_are_not_refused(policy: dict) -> None:
    for principal in (PUBLISHER, REGISTER, ADMIN):
        assert not denies(policy, _request("GetObject", ARTIFACT, principal))


def test_the_publisher_role_is_created_and_published(dev: SynthesizedEnvironment) -> None:
    template = dev.template("Artifacts")
    roles = template.find_resources("AWS::IAM::Role", {"Properties": {"RoleName": publisher_role_name("dev")}})
    assert len(roles) == 1
    [parameter] = [
        p
        for p in template.find_resources("AWS::SSM::Parameter").values()
        if p["Properties"]["Name"] == "/tessera/dev/artifacts/publisher-role-arn"
    ]
    assert parameter["Properties"]["Value"] == {"Fn::GetAtt": [next(iter(roles)), "Arn"]}


def test_the_register_function_has_the_role_the_bucket_policy_names(dev: SynthesizedEnvironment) -> None:
    roles = dev.template("Registry").find_resources(
        "AWS::IAM::Role", {"Properties": {"RoleName": register_role_name("dev")}}
    )
    assert len(roles) == 1
