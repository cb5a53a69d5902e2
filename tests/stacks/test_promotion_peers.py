"""artifacts.promotion_peers: the model bucket's policy and the artifacts key's policy let the named accounts read
(never write) the registered versions; without it neither policy changes."""

from __future__ import annotations

import yaml
from aws_cdk import App, Environment
from aws_cdk.assertions import Template

from stacks.artifacts.stack import ArtifactsStack
from stacks.common.environment_scope import EnvironmentScope
from stacks.config.environment import CONFIG_DIR, parse_config
from tests.synth import CDK_JSON_CONTEXT

PEERS = ["444455556666", "777788889999"]
READ_ONLY = {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "kms:Decrypt"}


def _artifacts(peers: list[str]) -> Template:
    data = yaml.safe_load((CONFIG_DIR / "prod.yaml").read_text())
    data.setdefault("artifacts", {})["promotion_peers"] = peers
    config = parse_config(data, source="prod")
    app = App(context=CDK_JSON_CONTEXT, builtin_cloud_formation_validation=False)
    stack = ArtifactsStack(
        app,
        config.stack_name("Artifacts"),
        environment=EnvironmentScope(name=config.name, parameter_prefix=config.parameter_prefix, retain=True),
        settings=config.artifacts,
        image_repositories=config.image_repositories,
        key_users=config.artifacts_key_users,
        env=Environment(account="111122223333", region="us-east-1"),
    )
    return Template.from_stack(stack)


def _statements(template: Template, resource_type: str, document: str) -> list[dict]:
    """The key's policy, or the model bucket's (the access-log bucket has one too)."""
    found = [r["Properties"][document]["Statement"] for r in template.find_resources(resource_type).values()]
    if resource_type == "AWS::S3::BucketPolicy":
        found = [statements for statements in found if "OnlyModelsWriterWrites" in str(statements)]
    (statements,) = found
    return statements


def _peer_statements(statements: list[dict]) -> list[dict]:
    return [statement for statement in statements if statement.get("Sid", "").startswith("PromotionPeers")]


def _principals(statement: dict) -> list[str]:
    found = statement["Principal"]["AWS"]
    return [found] if not isinstance(found, list) else found


def test_without_peers_neither_policy_names_anyone_else() -> None:
    template = _artifacts([])
    assert _peer_statements(_statements(template, "AWS::S3::BucketPolicy", "PolicyDocument")) == []
    assert _peer_statements(_statements(template, "AWS::KMS::Key", "KeyPolicy")) == []


def test_peers_read_and_list_the_registered_versions_only() -> None:
    template = _artifacts(PEERS)
    bucket = {s["Sid"]: s for s in _peer_statements(_statements(template, "AWS::S3::BucketPolicy", "PolicyDocument"))}
    assert set(bucket) == {"PromotionPeersReadVersions", "PromotionPeersListVersions"}
    read, listing = bucket["PromotionPeersReadVersions"], bucket["PromotionPeersListVersions"]
    for statement in (read, listing):
        assert statement["Effect"] == "Allow"
        assert len(_principals(statement)) == len(PEERS)
        assert all(":iam::" + peer + ":root" in str(_principals(statement)) for peer in PEERS)
    assert sorted(read["Action"]) == ["s3:GetObject", "s3:GetObjectVersion"]
    resources = str(read["Resource"])
    assert "/models/*" in resources
    assert "/registered/*" in resources
    assert listing["Action"] == "s3:ListBucket"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["models/*", "registered/*"]}}


def test_peers_decrypt_with_the_key_only_through_s3() -> None:
    template = _artifacts(PEERS)
    (statement,) = _peer_statements(_statements(template, "AWS::KMS::Key", "KeyPolicy"))
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "kms:Decrypt"
    assert statement["Condition"]["StringEquals"]["kms:CallerAccount"] == PEERS
    assert "s3.us-east-1" in str(statement["Condition"]["StringEquals"]["kms:ViaService"])


def test_peers_get_nothing_but_reads() -> None:
    template = _artifacts(PEERS)
    statements = _peer_statements(_statements(template, "AWS::S3::BucketPolicy", "PolicyDocument"))
    statements += _peer_statements(_statements(template, "AWS::KMS::Key", "KeyPolicy"))
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions <= READ_ONLY
    # The write guards stay in front of everyone, peers included.
    sids = {s.get("Sid") for s in _statements(template, "AWS::S3::BucketPolicy", "PolicyDocument")}
    assert {"OnlyModelsWriterWrites", "NoModelsOverwrites", "NoDeletesOfModelVersions"} <= sids
