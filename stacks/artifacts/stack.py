"""Artifacts stack: where images and model versions live, and the registry that tracks them.

Resources: one customer-managed KMS key; one ECR repository per service image; the model-artifact
bucket (versioned, KMS, access-logged, EventBridge notifications for registration); the
DynamoDB model-registry table.

The registry table's key design is documented with the code that builds the keys,
lambda/registry/table_keys.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.artifacts.model_versions import (
    admit_promotion_peers,
    protect_model_versions,
    protect_repository,
    publisher_role,
    role_arn,
)
from stacks.common.access_logs_bucket import access_logs_bucket
from stacks.common.construct_ids import pascal_case
from stacks.common.environment_scope import EnvironmentScope
from stacks.common.key_policies import environment_roles, named_users_policy
from stacks.common.nag_environment import nag_environment
from stacks.common.published_values import PublishedValue, publish_values
from stacks.common.resource_names import (
    model_bucket_name,
    publisher_role_name,
    register_role_name,
    registry_table_name,
    rollout_role_name,
)
from stacks.config.artifacts import ArtifactsConfig
from tessera_shared.constants import MODEL_ROOT, PROTECTED_IMAGE_TAG_PREFIX

TTL_ATTRIBUTE = "expires_at"


class ArtifactsStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: ArtifactsConfig,
        image_repositories: list[str],
        key_users: Sequence[str],
        environment: EnvironmentScope,
        **stack_props: object,
    ) -> None:
        super().__init__(scope, construct_id, **stack_props)
        removal_policy, retain, environment_name = environment.removal_policy, environment.retain, environment.name

        self.key = kms.Key(
            self,
            "ArtifactsKey",
            description=f"Tessera {environment_name}: encrypts images, model artifacts and the model registry",
            alias=f"alias/tessera/{environment_name}/artifacts",
            enable_key_rotation=True,
            removal_policy=removal_policy,
            # Models, images and the registry: read by this environment's roles and the named operators only.
            policy=named_users_policy(
                self,
                users=[*environment_roles(self, environment_name), *key_users],
                via_services=["s3", "dynamodb", "ecr"],
            ),
        )

        self.repositories: dict[str, ecr.Repository] = {
            name: self._repository(name, settings, removal_policy, retain) for name in image_repositories
        }

        access_logs = access_logs_bucket(
            self, retention_days=settings.access_log_retention_days, retain=retain, logs_of="the model bucket's"
        )

        self.model_bucket = s3.Bucket(
            self,
            "ModelBucket",
            bucket_name=model_bucket_name(environment_name, account=self.account, region=self.region),
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="model-bucket/",
            event_bridge_enabled=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-noncurrent-versions",
                    noncurrent_version_expiration=Duration.days(settings.noncurrent_model_version_days),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                    expired_object_delete_marker=True,
                )
            ],
            removal_policy=removal_policy,
            auto_delete_objects=not retain,
        )

        self.publisher = publisher_role(self, role_name=publisher_role_name(environment_name))
        for repository in self.repositories.values():
            protect_repository(
                repository,
                publisher_arn=role_arn(self, publisher_role_name(environment_name)),
                rollout_arn=role_arn(self, rollout_role_name(environment_name)),
            )
        protect_model_versions(
            self.model_bucket,
            publisher_arn=role_arn(self, publisher_role_name(environment_name)),
            register_arn=role_arn(self, register_role_name(environment_name)),
        )
        if settings.promotion_peers:
            admit_promotion_peers(self.model_bucket, self.key, settings.promotion_peers)
        self._acknowledge_notifications_handler()

        # Table (not TableV2): TableV2 cannot render a customer-managed key in a region-agnostic stack.

        self.registry_table = dynamodb.Table(
            self,
            "RegistryTable",
            table_name=registry_table_name(environment_name),
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=retain,
            time_to_live_attribute=TTL_ATTRIBUTE,
            removal_policy=removal_policy,
        )

        self._grant_publisher(environment.parameter_prefix)
        published = {
            "artifacts/kms-key-arn": PublishedValue(self.key.key_arn, "KMS key of the artifacts"),
            "artifacts/publisher-role-arn": PublishedValue(
                self.publisher.role_arn, "Role that uploads model versions and pushes serving images"
            ),
            "artifacts/model-bucket-name": PublishedValue(self.model_bucket.bucket_name, "Model-artifact bucket"),
            "artifacts/model-bucket-arn": PublishedValue(self.model_bucket.bucket_arn, "Model-artifact bucket ARN"),
            "artifacts/registry-table-name": PublishedValue(self.registry_table.table_name, "Model registry table"),
            "artifacts/registry-table-arn": PublishedValue(self.registry_table.table_arn, "Model registry table ARN"),
        }
        for name, repository in self.repositories.items():
            published[f"artifacts/ecr/{name}/uri"] = PublishedValue(
                repository.repository_uri, f"URI of the ECR repository {name}", per_service=True
            )
            published[f"artifacts/ecr/{name}/arn"] = PublishedValue(
                repository.repository_arn, f"ARN of the ECR repository {name}", per_service=True
            )
        publish_values(self, parameter_prefix=environment.parameter_prefix, values=published)

    def _grant_publisher(self, parameter_prefix: str) -> None:
        """What `tessera models upload` and an image push need: write new objects under models/ (the bucket policy
        refuses overwrites), read them back, read the registry and the published names, push to the repositories."""
        role = self.publisher
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteModelVersions",
                actions=["s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject"],
                resources=[self.model_bucket.arn_for_objects(f"{MODEL_ROOT}*")],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListModelVersions",
                actions=["s3:ListBucket"],
                resources=[self.model_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{MODEL_ROOT}*"]}},
            )
        )
        self.key.grant(role, "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey")
        self.registry_table.grant(role, "dynamodb:GetItem", "dynamodb:Query")
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadPublishedNames",
                actions=["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"],
                resources=[
                    self.format_arn(
                        service="ssm", resource="parameter", resource_name=f"{parameter_prefix.lstrip('/')}/*"
                    )
                ],
            )
        )
        for repository in self.repositories.values():
            repository.grant_push(role)
        nag = Validations.of(role.node.find_child("DefaultPolicy"))
        env = nag_environment(self)
        nag.acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::<{self.get_logical_id(self.model_bucket.node.default_child)}.Arn>/{MODEL_ROOT}*]",
                reason="A publisher writes any service's new versions under models/; the bucket policy refuses "
                "overwrites and deletes.",
            )
        )
        nag.acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:{env.partition}:ssm:{env.region}:{env.account}:parameter"
                f"{parameter_prefix}/*]",
                reason="The CLI reads the names this environment publishes (bucket, table, repositories) by path.",
            )
        )
        nag.acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="ecr:GetAuthorizationToken, which a push needs, has no resource-level permissions.",
            )
        )

    def _acknowledge_notifications_handler(self) -> None:
        """CDK's singleton Lambda that turns on the bucket's EventBridge notifications at deploy time."""
        handler = next(child for child in self.node.children if child.node.id.startswith("BucketNotificationsHandler"))
        Validations.of(handler.node.find_child("Role")).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                reason="CDK's bucket-notifications handler only needs to write its own logs, which is all this "
                "managed policy grants.",
            )
        )

    def _repository(
        self, name: str, settings: ArtifactsConfig, removal_policy: RemovalPolicy, retain: bool
    ) -> ecr.Repository:
        construct_id = f"Repository{pascal_case(name)}"
        return ecr.Repository(
            self,
            construct_id,
            repository_name=name,
            image_tag_mutability=ecr.TagMutability.IMMUTABLE,
            image_scan_on_push=True,
            encryption=ecr.RepositoryEncryption.KMS,
            encryption_key=self.key,
            lifecycle_rules=[
                # An image matched by a rule is never expired by a rule of lower priority: this one keeps
                # every image the rollout tagged as live (registry/images.py protect_image) from the others.
                ecr.LifecycleRule(
                    description=f"Keep images tagged {PROTECTED_IMAGE_TAG_PREFIX}* (deployed by a rollout)",
                    rule_priority=1,
                    tag_status=ecr.TagStatus.TAGGED,
                    tag_prefix_list=[PROTECTED_IMAGE_TAG_PREFIX],
                    max_image_count=settings.protected_images_to_keep,
                ),
                ecr.LifecycleRule(
                    description=f"Expire untagged images after {settings.untagged_image_expiry_days} days",
                    rule_priority=2,
                    tag_status=ecr.TagStatus.UNTAGGED,
                    max_image_age=Duration.days(settings.untagged_image_expiry_days),
                ),
                ecr.LifecycleRule(
                    description=f"Keep the newest {settings.tagged_images_to_keep} tagged images",
                    rule_priority=3,
                    tag_status=ecr.TagStatus.TAGGED,
                    tag_pattern_list=["*"],
                    max_image_count=settings.tagged_images_to_keep,
                ),
            ],
            removal_policy=removal_policy,
            empty_on_delete=not retain,
        )
