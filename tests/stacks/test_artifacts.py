"""Artifacts stack: KMS key, ECR repositories, model bucket and registry table."""

from __future__ import annotations

import json

from aws_cdk.assertions import Match

from registry.images import protective_tag
from stacks.artifacts.stack import TTL_ATTRIBUTE
from tessera_shared.constants import PROTECTED_IMAGE_TAG_PREFIX
from tests.synth import SynthesizedEnvironment


def _one(env: SynthesizedEnvironment, resource_type: str, **filters: object) -> tuple[str, dict]:
    found = env.template("Artifacts").find_resources(resource_type, filters or None)
    assert len(found) == 1, list(found)
    return next(iter(found.items()))


def _key_id(env: SynthesizedEnvironment) -> str:
    return _one(env, "AWS::KMS::Key")[0]


def test_one_rotating_customer_managed_key(dev: SynthesizedEnvironment) -> None:
    _, key = _one(dev, "AWS::KMS::Key")
    assert key["Properties"]["EnableKeyRotation"] is True
    dev.template("Artifacts").has_resource_properties("AWS::KMS::Alias", {"AliasName": "alias/tessera/dev/artifacts"})


def test_one_ecr_repository_per_service_image(dev: SynthesizedEnvironment) -> None:
    repositories = dev.template("Artifacts").find_resources("AWS::ECR::Repository")
    names = sorted(r["Properties"]["RepositoryName"] for r in repositories.values())
    assert names == ["tessera/dev/assistant", "tessera/dev/embeddings", "tessera/dev/gateway"]


def test_repositories_are_immutable_scanned_and_kms_encrypted(dev: SynthesizedEnvironment) -> None:
    key_id = _key_id(dev)
    for repository in dev.template("Artifacts").find_resources("AWS::ECR::Repository").values():
        properties = repository["Properties"]
        assert properties["ImageTagMutability"] == "IMMUTABLE"
        assert properties["ImageScanningConfiguration"] == {"ScanOnPush": True}
        assert properties["EncryptionConfiguration"] == {
            "EncryptionType": "KMS",
            "KmsKey": {"Fn::GetAtt": [key_id, "Arn"]},
        }


def test_repository_lifecycle_expires_untagged_and_keeps_newest_tagged(dev: SynthesizedEnvironment) -> None:
    for repository in dev.template("Artifacts").find_resources("AWS::ECR::Repository").values():
        policy = json.loads(repository["Properties"]["LifecyclePolicy"]["LifecyclePolicyText"])
        rules = {rule["rulePriority"]: rule for rule in policy["rules"]}
        assert rules[2]["selection"] == {
            "tagStatus": "untagged",
            "countType": "sinceImagePushed",
            "countNumber": 7,
            "countUnit": "days",
        }
        assert rules[3]["selection"] == {
            "tagStatus": "tagged",
            "tagPatternList": ["*"],
            "countType": "imageCountMoreThan",
            "countNumber": 20,
        }
        assert all(rule["action"] == {"type": "expire"} for rule in rules.values())


def test_images_tagged_live_by_a_rollout_are_kept_by_the_highest_priority_rule(dev: SynthesizedEnvironment) -> None:
    """Issue 11, case 7: ECR never lets a lower-priority rule expire an image that a higher-priority rule
    matched, so the protective tag the rollout adds (registry/images.py) keeps the image stable runs."""
    for repository in dev.template("Artifacts").find_resources("AWS::ECR::Repository").values():
        policy = json.loads(repository["Properties"]["LifecyclePolicy"]["LifecyclePolicyText"])
        first = min(policy["rules"], key=lambda rule: rule["rulePriority"])
        assert first["rulePriority"] == 1
        assert first["selection"] == {
            "tagStatus": "tagged",
            "tagPrefixList": [PROTECTED_IMAGE_TAG_PREFIX],
            "countType": "imageCountMoreThan",
            "countNumber": dev.config.artifacts.protected_images_to_keep,
        }
        assert protective_tag("2026-11-20").startswith(first["selection"]["tagPrefixList"][0])
        assert sorted(rule["rulePriority"] for rule in policy["rules"]) == [1, 2, 3]


def _model_bucket(env: SynthesizedEnvironment) -> tuple[str, dict]:
    buckets = env.template("Artifacts").find_resources(
        "AWS::S3::Bucket", {"Properties": {"VersioningConfiguration": {"Status": "Enabled"}}}
    )
    assert len(buckets) == 1
    return next(iter(buckets.items()))


def test_model_bucket_is_versioned_kms_encrypted_and_private(dev: SynthesizedEnvironment) -> None:
    _, bucket = _model_bucket(dev)
    properties = bucket["Properties"]
    assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {
            "BucketKeyEnabled": True,
            "ServerSideEncryptionByDefault": {
                "SSEAlgorithm": "aws:kms",
                "KMSMasterKeyID": {"Fn::GetAtt": [_key_id(dev), "Arn"]},
            },
        }
    ]
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }


def test_model_bucket_logs_access_and_expires_noncurrent_versions(dev: SynthesizedEnvironment) -> None:
    _, bucket = _model_bucket(dev)
    properties = bucket["Properties"]
    assert properties["LoggingConfiguration"]["LogFilePrefix"] == "model-bucket/"
    assert "Ref" in properties["LoggingConfiguration"]["DestinationBucketName"]
    [rule] = properties["LifecycleConfiguration"]["Rules"]
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 14}
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert rule["Status"] == "Enabled"


def test_model_bucket_sends_events_to_eventbridge(dev: SynthesizedEnvironment) -> None:
    model_bucket_id, _ = _model_bucket(dev)
    dev.template("Artifacts").has_resource_properties(
        "Custom::S3BucketNotifications",
        {"BucketName": {"Ref": model_bucket_id}, "NotificationConfiguration": {"EventBridgeConfiguration": {}}},
    )


def test_every_bucket_denies_plain_http(dev: SynthesizedEnvironment) -> None:
    template = dev.template("Artifacts")
    buckets = template.find_resources("AWS::S3::Bucket")
    policies = template.find_resources("AWS::S3::BucketPolicy").values()
    secured = set()
    for policy in policies:
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if (
                statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
                and statement["Effect"] == "Deny"
            ):
                secured.add(policy["Properties"]["Bucket"]["Ref"])
    assert secured == set(buckets)


def test_access_log_bucket_is_private_and_expires_logs(dev: SynthesizedEnvironment) -> None:
    template = dev.template("Artifacts")
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
            "LifecycleConfiguration": {"Rules": [Match.object_like({"ExpirationInDays": 90})]},
            "PublicAccessBlockConfiguration": Match.object_like({"BlockPublicAcls": True}),
        },
    )


def test_registry_table_key_design_and_protection(dev: SynthesizedEnvironment) -> None:
    _, table = _one(dev, "AWS::DynamoDB::Table")
    properties = table["Properties"]
    assert properties["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"] == {
        "KMSMasterKeyId": {"Fn::GetAtt": [_key_id(dev), "Arn"]},
        "SSEEnabled": True,
        "SSEType": "KMS",
    }
    assert properties["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}


def test_prod_retains_state_and_protects_the_registry(prod: SynthesizedEnvironment) -> None:
    template = prod.template("Artifacts")
    _, table = _one(prod, "AWS::DynamoDB::Table")
    assert table["Properties"]["DeletionProtectionEnabled"] is True
    for resource_type in ("AWS::DynamoDB::Table", "AWS::KMS::Key", "AWS::ECR::Repository", "AWS::S3::Bucket"):
        for logical_id, resource in template.find_resources(resource_type).items():
            assert resource["DeletionPolicy"] == "Retain", logical_id
    # Nothing in prod empties a bucket or repository on delete.
    template.resource_count_is("Custom::S3AutoDeleteObjects", 0)
    for repository in template.find_resources("AWS::ECR::Repository").values():
        assert repository["Properties"].get("EmptyOnDelete") is not True


def test_dev_cleans_up_after_itself(dev: SynthesizedEnvironment) -> None:
    template = dev.template("Artifacts")
    _, table = _one(dev, "AWS::DynamoDB::Table")
    assert table["Properties"].get("DeletionProtectionEnabled") is not True
    assert table["DeletionPolicy"] == "Delete"
    template.resource_count_is("Custom::S3AutoDeleteObjects", 2)
    for repository in template.find_resources("AWS::ECR::Repository").values():
        assert repository["Properties"]["EmptyOnDelete"] is True


def test_artifact_names_are_published(dev: SynthesizedEnvironment) -> None:
    template = dev.template("Artifacts")
    names = [
        "kms-key-arn",
        "model-bucket-name",
        "model-bucket-arn",
        "registry-table-name",
        "registry-table-arn",
        "ecr/tessera/dev/assistant/uri",
        "ecr/tessera/dev/gateway/arn",
    ]
    for name in names:
        template.has_resource_properties("AWS::SSM::Parameter", {"Name": f"/tessera/dev/artifacts/{name}"})
    outputs = template.to_json()["Outputs"]
    assert {"ArtifactsKmsKeyArn", "ArtifactsModelBucketName", "ArtifactsRegistryTableName"} <= outputs.keys()
