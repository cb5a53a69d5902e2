"""Rollout stack: the rollout Lambda, the state machine, per-service rollout settings, the SNS topic,
the rollout role's EKS access entry (a Kubernetes group bound to a Role in the inference namespace) and the
optional auto-start rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Acknowledgment, ArnFormat, Duration, Stack, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.cluster.managed_prometheus import PrometheusWorkspace
from stacks.common.cluster_api_access import cluster_api_security_group, cluster_environment, grant_kubernetes_access
from stacks.common.construct_ids import pascal_case
from stacks.common.environment_scope import EnvironmentScope
from stacks.common.lambda_function import TesseraFunction
from stacks.common.log_retention import RETENTION_BY_DAYS
from stacks.common.nag_environment import nag_environment
from stacks.common.published_values import PublishedValue, publish_values
from stacks.common.resource_names import (
    model_bucket_name,
    registration_bus_name,
    registry_table_name,
    rollout_role_name,
    rollout_state_machine_name,
)
from stacks.config.environment import PlacedService
from stacks.config.services import FunctionsConfig
from stacks.rollout.kubernetes_access import rollout_access_objects
from stacks.rollout.safety_net import SafetyNet
from stacks.rollout.settings import PrometheusEndpoint, RoutingArns, rollout_settings
from stacks.rollout.state_machine import RolloutDefinition
from stacks.services.service_resources import ServiceRouting
from tessera_shared import constants as shared
from tessera_shared.metrics import JUDGED_NAMESPACE

EXECUTION_TIMEOUT = Duration.seconds(shared.EXECUTION_TIMEOUT_SECONDS)


class RolloutStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: EnvironmentScope,
        functions: FunctionsConfig,
        services: Sequence[PlacedService],
        routing: Mapping[str, ServiceRouting],
        vpc: ec2.IVpc,
        cluster: eks.ICluster,
        cluster_security_group_id: str,
        artifacts_key: kms.IKey,
        prometheus: PrometheusWorkspace | None,
        **stack_props: object,
    ) -> None:
        """`prometheus`: the Cluster stack's workspace (when a service has `metrics`), which the judge queries."""
        super().__init__(scope, construct_id, **stack_props)
        self._prometheus = prometheus
        removal_policy = environment.removal_policy
        settings_prefix = f"{environment.parameter_prefix}/rollout/services/"

        self.topic = sns.Topic(
            self,
            "Notifications",
            display_name=f"Tessera {environment.name} rollouts",
            master_key=kms.Alias.from_alias_name(self, "SnsKey", "alias/aws/sns"),
            enforce_ssl=True,
        )
        security_group = cluster_api_security_group(
            self,
            "FunctionSecurityGroup",
            vpc=vpc,
            cluster_security_group_id=cluster_security_group_id,
            description="Tessera rollout function",
        )
        self.function = TesseraFunction(
            self,
            "Steps",
            handler="rollout.handler.handle",
            description=f"Tessera {environment.name}: the steps of a model rollout",
            settings=functions,
            environment={
                **cluster_environment(cluster),
                shared.ENV_REGISTRY_TABLE: registry_table_name(environment.name),
                shared.ENV_TOPIC_ARN: self.topic.topic_arn,
                shared.ENV_SETTINGS_PREFIX: settings_prefix,
                "POWERTOOLS_SERVICE_NAME": shared.ROLLOUT_FUNCTION_SERVICE,
            },
            removal_policy=removal_policy,
            timeout_seconds=shared.ROLLOUT_FUNCTION_TIMEOUT_SECONDS,
            vpc=vpc,
            security_groups=[security_group],
            role_name=rollout_role_name(environment.name),
        )
        grant_kubernetes_access(
            self,
            cluster=cluster,
            role=self.function.role,
            group=shared.ROLLOUT_KUBERNETES_GROUP,
            role_objects=rollout_access_objects(),
        )
        for placed in services:
            self._settings_parameter(environment.name, placed, routing[placed.name], settings_prefix)
        self._grant(environment.name, services, routing, artifacts_key, settings_prefix)

        log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            retention=RETENTION_BY_DAYS[functions.log_retention_days],
            removal_policy=removal_policy,
        )
        definition = RolloutDefinition(self, "Definition", function=self.function.function)
        state_machine_name = rollout_state_machine_name(environment.name)
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=state_machine_name,
            definition_body=sfn.DefinitionBody.from_chainable(definition.definition),
            state_machine_type=sfn.StateMachineType.STANDARD,
            timeout=EXECUTION_TIMEOUT,
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
        )
        self._acknowledge_state_machine_role()
        SafetyNet(
            self,
            "SafetyNet",
            function=self.function.function,
            state_machine=self.state_machine,
            removal_policy=removal_policy,
        )
        self._auto_start_rules(environment.name, services)
        publish_values(
            self,
            parameter_prefix=environment.parameter_prefix,
            values={
                "rollout/state-machine-arn": PublishedValue(
                    self.state_machine.state_machine_arn, "Rollout state machine"
                ),
                "rollout/function-name": PublishedValue(self.function.function.function_name, "Rollout steps function"),
                "rollout/topic-arn": PublishedValue(self.topic.topic_arn, "Rollout notifications"),
            },
        )

    def _settings_parameter(
        self,
        environment_name: str,
        placed: PlacedService,
        routing: ServiceRouting,
        prefix: str,
    ) -> ssm.StringParameter:
        """Everything a rollout of this service needs, resolved at deploy time, read by the Prepare step."""
        service = placed.spec
        settings = rollout_settings(
            placed,
            environment=environment_name,
            routing=RoutingArns(
                rule=routing.rule.listener_rule_arn,
                stable_target_group=routing.target_groups["stable"].target_group_arn,
                canary_target_group=routing.target_groups["canary"].target_group_arn,
                load_balancer=routing.load_balancer.load_balancer_arn,
            ),
            image_registry=f"{self.account}.dkr.ecr.{self.region}.{self.url_suffix}",
            model_bucket=model_bucket_name(environment_name, account=self.account, region=self.region),
            prometheus=(
                PrometheusEndpoint(endpoint=self._prometheus.endpoint, region=self._prometheus.region)
                if self._prometheus is not None and service.metrics is not None
                else None
            ),
        )
        return ssm.StringParameter(
            self,
            f"{pascal_case(service.name)}Settings",
            parameter_name=f"{prefix}{service.name}",
            string_value=self.to_json_string(settings.to_json()),
            tier=ssm.ParameterTier.ADVANCED,
            description=f"Rollout settings of {service.name}",
        )

    def _grant(
        self,
        environment_name: str,
        services: Sequence[PlacedService],
        routing: Mapping[str, ServiceRouting],
        key: kms.IKey,
        settings_prefix: str,
    ) -> None:
        role = self.function.role
        # The artifacts key only through DynamoDB (the ledger lives in the registry table).
        role.add_to_policy(
            iam.PolicyStatement(
                sid="RegistryTableKey",
                actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                resources=[key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"dynamodb.{self.region}.{self.url_suffix}"}},
            )
        )
        # The topic uses the AWS managed SNS key, whose policy already lets SNS use it for publishers.
        role.add_to_policy(iam.PolicyStatement(sid="Notify", actions=["sns:Publish"], resources=[self.topic.topic_arn]))
        statements = [
            iam.PolicyStatement(
                sid="Ledger",
                actions=[
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:ConditionCheckItem",
                    "dynamodb:Query",
                ],
                resources=[
                    self.format_arn(
                        service="dynamodb", resource="table", resource_name=registry_table_name(environment_name)
                    )
                ],
            ),
            iam.PolicyStatement(
                sid="Settings",
                actions=["ssm:GetParameter"],
                resources=[
                    self.format_arn(
                        service="ssm", resource="parameter", resource_name=f"{settings_prefix.strip('/')}/{s.name}"
                    )
                    for s in services
                ],
            ),
            iam.PolicyStatement(
                # Whether a lock's holder still runs, before a start takes the lock over.
                sid="LockHolders",
                actions=["states:DescribeExecution"],
                resources=[
                    self.format_arn(
                        service="states",
                        resource="execution",
                        resource_name=f"tessera-{environment_name}-rollout:*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            ),
            iam.PolicyStatement(
                # The protective tag that keeps a running image (registry/images.py).
                sid="ProtectRunningImages",
                actions=["ecr:BatchGetImage", "ecr:PutImage"],
                resources=[
                    self.format_arn(service="ecr", resource="repository", resource_name=repository)
                    for repository in dict.fromkeys(placed.spec.image.repository for placed in services)
                ],
            ),
            iam.PolicyStatement(
                sid="MoveTraffic",
                actions=["elasticloadbalancing:ModifyRule"],
                resources=[service_routing.rule.listener_rule_arn for service_routing in routing.values()],
            ),
            # These take no resource-level permissions. DescribeTags: Prepare checks that the settings' load
            # balancer, rule and target groups are the service's own (lambda/rollout/ownership.py).
            iam.PolicyStatement(
                sid="ReadOnly",
                actions=[
                    "elasticloadbalancing:DescribeRules",
                    "elasticloadbalancing:DescribeTags",
                    "elasticloadbalancing:DescribeTargetHealth",
                    "cloudwatch:GetMetricData",
                ],
                resources=["*"],
            ),
            # DescribeAlarms takes alarm ARNs: alarms of this account and region only.
            iam.PolicyStatement(
                sid="ReadAlarms",
                actions=["cloudwatch:DescribeAlarms"],
                resources=[
                    self.format_arn(
                        service="cloudwatch",
                        resource="alarm",
                        resource_name="*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            ),
        ]
        if self._prometheus is not None:
            statements += [
                # The judge's per-track runtime figures: PromQL over the workspace's query API (SigV4, service aps).
                iam.PolicyStatement(
                    sid="QueryRuntimeMetrics", actions=["aps:QueryMetrics"], resources=[self._prometheus.arn]
                ),
                # ... which it publishes per track for the dashboards; PutMetricData takes no resource, so the
                # namespace condition holds it to the rollout figures' own.
                iam.PolicyStatement(
                    sid="PublishJudgedFigures",
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={"StringEquals": {"cloudwatch:namespace": JUDGED_NAMESPACE}},
                ),
            ]
        for statement in statements:
            role.add_to_policy(statement)
        nag = nag_environment(self)
        Validations.of(role.node.find_child("DefaultPolicy")).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="DescribeRules, DescribeTags, DescribeTargetHealth, GetMetricData and PutMetricData support no "
                "resource-level permissions (PutMetricData is held to the Tessera/Rollouts namespace by its "
                "cloudwatch:namespace condition); "
                "the ENI statement (what AWSLambdaVPCAccessExecutionRole grants) acts on interfaces Lambda creates at "
                "run time, whose ids are unknown before; the only traffic write, ModifyRule, names the rules.",
            ),
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:{nag.partition}:cloudwatch:{nag.region}:{nag.account}:alarm:*]",
                reason="The judge reads the alarms a service's rollout policy names, which config may change at any "
                "time; read-only, and only alarms of this account and region.",
            ),
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:{nag.partition}:states:{nag.region}:{nag.account}:execution:"
                f"tessera-{environment_name}-rollout:*]",
                reason="Reads the status of any execution of this environment's rollout state machine, to tell "
                "whether a lock's holder still runs; execution names are only known at run time.",
            ),
        )

    def _acknowledge_state_machine_role(self) -> None:
        policy = self.state_machine.role.node.find_child("DefaultPolicy")
        function_arn = f"<{self.get_logical_id(self.function.function.node.default_child)}.Arn>"
        Validations.of(policy).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="CDK's grants for X-Ray tracing and CloudWatch Logs delivery, which take no resource ARNs.",
            ),
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{function_arn}:*]",
                reason="The state machine may invoke any version of the rollout function: the suffix is a qualifier.",
            ),
        )

    def _auto_start_rules(self, environment_name: str, services: Sequence[PlacedService]) -> None:
        """On the environment's registration bus, where only the register function publishes (Registry stack)."""
        wanted = [placed.spec for placed in services if placed.spec.rollout.auto_start]
        if not wanted:
            return
        bus = events.EventBus.from_event_bus_name(self, "Registrations", registration_bus_name(environment_name))
        for service in wanted:
            events.Rule(
                self,
                f"{pascal_case(service.name)}AutoStart",
                description=f"Start a rollout when a version of {service.name} is registered",
                event_bus=bus,
                event_pattern=events.EventPattern(
                    source=[shared.REGISTRATION_EVENT_SOURCE],
                    detail_type=[shared.REGISTRATION_EVENT_DETAIL_TYPE],
                    detail={"service": [service.name], "environment": [environment_name]},
                ),
                targets=[
                    targets.SfnStateMachine(
                        self.state_machine,
                        input=events.RuleTargetInput.from_object(
                            {"service": service.name, "version": events.EventField.from_path("$.detail.version")}
                        ),
                    )
                ],
            )
