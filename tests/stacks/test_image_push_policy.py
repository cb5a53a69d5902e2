"""Issue 21, problem 11: only the publisher role pushes to the service repositories; the rollout function may only
re-tag an image it deploys (ecr:PutImage of an existing manifest); nobody else writes or deletes images. Each
repository's policy, as synthesized, is evaluated (moto does not enforce repository policies)."""

from __future__ import annotations

import pytest

from stacks.common.resource_names import publisher_role_name, rollout_role_name
from tests.security.endpoint_policies import PseudoParameters, Request, denies, resolve
from tests.synth import SynthesizedEnvironment

ACCOUNT = "111122223333"
PSEUDO = PseudoParameters(ACCOUNT, "eu-west-1")
PUBLISHER = f"arn:aws:iam::{ACCOUNT}:role/{publisher_role_name('dev')}"
ROLLOUT = f"arn:aws:iam::{ACCOUNT}:role/{rollout_role_name('dev')}"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/Admin"
LAYER_PUSH = ("ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload")
REPOSITORY = "arn:aws:ecr:eu-west-1:111122223333:repository/tessera/dev/assistant"


@pytest.fixture(scope="module")
def policies(dev: SynthesizedEnvironment) -> dict[str, dict]:
    repositories = dev.template("Artifacts").find_resources("AWS::ECR::Repository")
    return {
        r["Properties"]["RepositoryName"]: resolve(r["Properties"]["RepositoryPolicyText"], PSEUDO)
        for r in repositories.values()
    }


def _request(action: str, principal: str) -> Request:
    return Request(action, REPOSITORY, ACCOUNT, principal)


def _statements_resource(policy: dict) -> dict:
    """Repository policies name no Resource (the repository is implied): evaluate against it."""
    return {"Statement": [{**s, "Resource": REPOSITORY} for s in policy["Statement"]]}


def test_every_service_repository_has_a_policy(policies: dict[str, dict]) -> None:
    assert sorted(policies) == ["tessera/dev/assistant", "tessera/dev/embeddings", "tessera/dev/gateway"]


@pytest.mark.parametrize("action", [*LAYER_PUSH, "ecr:PutImage", "ecr:BatchDeleteImage"])
def test_only_the_publisher_pushes_or_deletes(policies: dict[str, dict], action: str) -> None:
    for policy in policies.values():
        evaluated = _statements_resource(policy)
        assert not denies(evaluated, _request(action, PUBLISHER)), action
        assert denies(evaluated, _request(action, ADMIN)), action


def test_the_rollout_function_may_retag_but_not_upload(policies: dict[str, dict]) -> None:
    for policy in policies.values():
        evaluated = _statements_resource(policy)
        assert not denies(evaluated, _request("ecr:PutImage", ROLLOUT))
        for action in (*LAYER_PUSH, "ecr:BatchDeleteImage"):
            assert denies(evaluated, _request(action, ROLLOUT)), action


def test_pulls_are_not_refused(policies: dict[str, dict]) -> None:
    for policy in policies.values():
        for action in ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:DescribeImages"):
            assert not denies(_statements_resource(policy), _request(action, ADMIN))


def test_the_rollout_function_has_the_role_the_policies_name(dev: SynthesizedEnvironment) -> None:
    roles = dev.template("Rollout").find_resources(
        "AWS::IAM::Role", {"Properties": {"RoleName": rollout_role_name("dev")}}
    )
    assert len(roles) == 1
