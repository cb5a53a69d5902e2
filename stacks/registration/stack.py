"""Registry stack: the `register` Lambda, the EventBridge rule that feeds it manifest uploads, and the
service catalog it checks versions against (an SSM parameter rendered from config at synth)."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, Stack, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from registry.catalog import Catalog
from stacks.common.environment_scope import EnvironmentScope
from stacks.common.failure_queues import send_failed_invocations
from stacks.common.lambda_function import TesseraFunction
from stacks.common.nag_environment import nag_environment
from stacks.common.published_values import PublishedValue, publish_values
from stacks.common.resource_names import (
    model_bucket_name,
    register_role_name,
    registration_bus_name,
    registry_table_name,
)
from stacks.config.services import FunctionsConfig
from tessera_shared import constants as shared

STANDARD_PARAMETER_LIMIT = 4096
MANIFEST_KEY_PATTERN = f"{shared.MODEL_ROOT}*/*/{shared.MANIFEST_NAME}"


class RegistryStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: EnvironmentScope,
        functions: FunctionsConfig,
        catalog: Catalog,
        artifacts_key: kms.IKey,
        **stack_props: object,
    ) -> None:
        super().__init__(scope, construct_id, **stack_props)
        bucket_name = model_bucket_name(environment.name, account=self.account, region=self.region)
        table_name = registry_table_name(environment.name)

        catalog_json = catalog.to_json()
        catalog_parameter = ssm.StringParameter(
            self,
            "Catalog",
            parameter_name=f"{environment.parameter_prefix}/registry/catalog",
            string_value=catalog_json,
            description="Services the model registry checks versions against (rendered from config)",
            tier=ssm.ParameterTier.ADVANCED
            if len(catalog_json) > STANDARD_PARAMETER_LIMIT
            else ssm.ParameterTier.STANDARD,
        )

        # Registration announcements go here, not to the default bus: only the register function may publish.
        self.bus = events.EventBus(self, "Registrations", event_bus_name=registration_bus_name(environment.name))
        self.bus.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OnlyTheRegisterFunctionPublishes",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["events:PutEvents"],
                resources=[self.bus.event_bus_arn],
                conditions={
                    "ArnNotEquals": {
                        "aws:PrincipalArn": self.format_arn(
                            service="iam",
                            region="",
                            resource="role",
                            resource_name=register_role_name(environment.name),
                        )
                    }
                },
            )
        )
        self.register = TesseraFunction(
            self,
            "Register",
            handler="registry.handler.handle",
            description=f"Tessera {environment.name}: registers model versions from their manifests",
            settings=functions,
            environment={
                shared.ENV_MODEL_BUCKET: bucket_name,
                shared.ENV_REGISTRY_TABLE: table_name,
                shared.ENV_CATALOG_PARAMETER: catalog_parameter.parameter_name,
                "POWERTOOLS_SERVICE_NAME": shared.REGISTER_FUNCTION_SERVICE,
                "POWERTOOLS_METRICS_NAMESPACE": shared.METRICS_NAMESPACE,
                shared.ENV_ENVIRONMENT: environment.name,
                shared.ENV_EVENT_BUS: registration_bus_name(environment.name),
            },
            removal_policy=environment.removal_policy,
            role_name=register_role_name(environment.name),
        )
        self._grant(environment.name, catalog, catalog_parameter, artifacts_key)
        # A registration that failed after Lambda's retries (not only an event EventBridge could not deliver).
        send_failed_invocations(self, self.register.function, removal_policy=environment.removal_policy)

        failed = sqs.Queue(
            self,
            "UndeliveredEvents",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            removal_policy=environment.removal_policy,
        )
        Validations.of(failed).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SQS3",
                reason="This queue is itself the dead-letter queue of the manifest-upload rule.",
            )
        )
        events.Rule(
            self,
            "ManifestUploaded",
            description="A manifest.json landed under models/<service>/<version>/ in the model bucket",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [bucket_name]},
                    "object": {"key": [{"wildcard": MANIFEST_KEY_PATTERN}]},
                },
            ),
            targets=[
                targets.LambdaFunction(
                    self.register.function,
                    retry_attempts=4,
                    max_event_age=Duration.hours(2),
                    dead_letter_queue=failed,
                )
            ],
        )

        # An upload the function could not place (unknown service, malformed version folder) otherwise
        # leaves the operator waiting for a registration that never comes.
        ignored = cloudwatch.Alarm(
            self,
            "UploadsIgnored",
            alarm_description="A manifest upload could not be placed: see `tessera models ignored`",
            metric=cloudwatch.Metric(
                namespace=shared.METRICS_NAMESPACE,
                metric_name=shared.IGNORED_METRIC,
                dimensions_map={"service": shared.REGISTER_FUNCTION_SERVICE},
                statistic="Sum",
                period=Duration.minutes(5),
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

        publish_values(
            self,
            parameter_prefix=environment.parameter_prefix,
            values={
                "registry/ignored-alarm-arn": PublishedValue(ignored.alarm_arn, "Alarm on ignored manifest uploads"),
                "registry/function-name": PublishedValue(
                    self.register.function.function_name, "register Lambda (direct calls: {service, version})"
                ),
                "registry/undelivered-queue-url": PublishedValue(failed.queue_url, "Manifest events that failed"),
            },
        )

    def _grant(self, environment_name: str, catalog: Catalog, parameter: ssm.StringParameter, key: kms.IKey) -> None:
        bucket_name = model_bucket_name(environment_name, account=self.account, region=self.region)
        table_name = registry_table_name(environment_name)
        role = self.register.role
        parameter.grant_read(role)
        # The registry table and the model bucket are encrypted with this key: used only through those services.
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ArtifactsKeyThroughItsServices",
                actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                resources=[key.key_arn],
                conditions={
                    "StringEquals": {
                        "kms:ViaService": [
                            f"dynamodb.{self.region}.{self.url_suffix}",
                            f"s3.{self.region}.{self.url_suffix}",
                        ]
                    }
                },
            )
        )
        manifests = f"arn:{self.partition}:s3:::{bucket_name}/models/*"
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadModelVersions", actions=["s3:GetObject", "s3:GetObjectVersion"], resources=[manifests]
            )
        )
        # The record of each registered version's object versions, written once (registry/registered_record.py).
        role.add_to_policy(
            iam.PolicyStatement(
                sid="RecordRegisteredVersions",
                actions=["s3:PutObject", "s3:GetObject"],
                resources=[f"arn:{self.partition}:s3:::{bucket_name}/{shared.REGISTERED_ROOT}*"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="RegistryTable",
                actions=[
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:Query",
                    "dynamodb:ConditionCheckItem",
                ],
                resources=[self.format_arn(service="dynamodb", resource="table", resource_name=table_name)],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="AnnounceRegistrations",
                actions=["events:PutEvents"],
                resources=[self.bus.event_bus_arn],
                conditions={"StringEquals": {"events:source": shared.REGISTRATION_EVENT_SOURCE}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ServingImages",
                # BatchGetImage and GetDownloadUrlForLayer read the image's platforms (its index, or its config blob).
                actions=[
                    "ecr:DescribeImages",
                    "ecr:DescribeImageScanFindings",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                ],
                resources=[
                    self.format_arn(service="ecr", resource="repository", resource_name=repository)
                    for repository in catalog.repositories
                ],
            )
        )
        env = nag_environment(self)
        nag_bucket = model_bucket_name(environment_name, account=env.account, region=env.region)
        Validations.of(role.node.find_child("DefaultPolicy")).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:{env.partition}:s3:::{nag_bucket}/models/*]",
                reason="Registration reads the manifest and artifact headers of any service's version under models/.",
            )
        )
        Validations.of(role.node.find_child("DefaultPolicy")).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:{env.partition}:s3:::{nag_bucket}/{shared.REGISTERED_ROOT}*]",
                reason="Registration writes (once) and reads the record of any service's registered version.",
            )
        )
