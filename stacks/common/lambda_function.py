"""A Tessera Lambda function: Python 3.13 on arm64 (Graviton), code from `lambda/`, the Powertools
layer, its own log group with retention, and a role that may write only to that log group."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.common.log_retention import RETENTION_BY_DAYS
from stacks.config.services import FunctionsConfig

LAMBDA_CODE_DIR = Path(__file__).resolve().parents[2] / "lambda"
POWERTOOLS_ACCOUNT = "017000801446"
RUNTIME = lambda_.Runtime.PYTHON_3_13
# What the Lambda asset leaves out: caches, docs and anything that is not handler code.
ASSET_EXCLUDES = ["**/__pycache__", "**/*.pyc", "*.md", "**/*.md"]


def powertools_layer_arn(stack: Stack, version: int) -> str:
    return (
        f"arn:{stack.partition}:lambda:{stack.region}:{POWERTOOLS_ACCOUNT}:layer:"
        f"AWSLambdaPowertoolsPythonV3-python313-arm64:{version}"
    )


class TesseraFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: str,
        description: str,
        settings: FunctionsConfig,
        environment: Mapping[str, str],
        removal_policy: RemovalPolicy,
        timeout_seconds: int = 60,
        memory_mib: int = 512,
        vpc: ec2.IVpc | None = None,
        security_groups: list[ec2.ISecurityGroup] | None = None,
        role_name: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.log_group = logs.LogGroup(
            self, "Logs", retention=RETENTION_BY_DAYS[settings.log_retention_days], removal_policy=removal_policy
        )
        # Our own role: CDK's default adds AWSLambdaBasicExecutionRole, which may write to any log group.
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=description,
            role_name=role_name,
        )
        self.log_group.grant_write(self.role)
        if vpc is not None:
            # What AWSLambdaVPCAccessExecutionRole grants, without its logs:* on every log group.
            self.role.add_to_policy(
                iam.PolicyStatement(
                    sid="VpcNetworkInterfaces",
                    actions=[
                        "ec2:CreateNetworkInterface",
                        "ec2:DescribeNetworkInterfaces",
                        "ec2:DescribeSubnets",
                        "ec2:DeleteNetworkInterface",
                        "ec2:AssignPrivateIpAddresses",
                        "ec2:UnassignPrivateIpAddresses",
                    ],
                    resources=["*"],
                )
            )
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            code=lambda_.Code.from_asset(str(LAMBDA_CODE_DIR), exclude=ASSET_EXCLUDES),
            handler=handler,
            role=self.role,
            timeout=Duration.seconds(timeout_seconds),
            memory_size=memory_mib,
            log_group=self.log_group,
            layers=[
                lambda_.LayerVersion.from_layer_version_arn(
                    self, "Powertools", powertools_layer_arn(stack, settings.powertools_layer_version)
                )
            ],
            environment={"POWERTOOLS_LOG_LEVEL": "INFO", **environment},
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS) if vpc else None,
            security_groups=security_groups,
        )
        Validations.of(self.function).acknowledge(
            Acknowledgment(
                id="AwsSolutions-L1",
                reason="Python 3.13 is the newest runtime the Powertools layer (python313-arm64) is published for.",
            )
        )
