"""Observability stack: the environment's alerts topic, its dashboards (one for the environment, one per
service of the `main` stack group) and alarms (per service from `services[].alarms`, per environment from
`observability`); another stack group's services have theirs in stacks/observability/group_stack.py.

It reads the services' target groups and the load balancer by their metric dimension values (outputs of the
Services stack) and the cluster and rollout state machine by their derived names, so it follows the Services
stack and nothing follows it. The Rollout stack's topic uses the AWS managed SNS key, which CloudWatch alarms
cannot publish to; this topic has its own key that admits CloudWatch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks.common.construct_ids import pascal_case
from stacks.common.environment_scope import EnvironmentScope
from stacks.common.key_policies import named_users_policy
from stacks.common.published_values import PublishedValue, publish_values
from stacks.common.resource_names import cluster_name, rollout_state_machine_name
from stacks.config.environment import PlacedService
from stacks.config.observability import ObservabilityConfig
from stacks.observability.alarms import EnvironmentAlarms, ServiceAlarms
from stacks.observability.dashboards import environment_dashboard, service_dashboard
from stacks.observability.names import (
    dashboard_url,
    environment_alarm_names,
    environment_dashboard_name,
    service_alarm_names,
    service_dashboard_name,
)
from stacks.observability.service_metrics import ServiceMetrics

CLOUDWATCH_PRINCIPAL = "cloudwatch.amazonaws.com"


class ObservabilityStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: EnvironmentScope,
        settings: ObservabilityConfig,
        services: Sequence[PlacedService],
        target_group_dimensions: Mapping[str, Mapping[str, str]],
        load_balancer_dimensions: Mapping[str, str],  # service -> the load balancer that routes it
        other_services: Sequence[str] = (),  # the services of other stack groups (linked and their alarms shown)
        **stack_props: object,
    ) -> None:
        super().__init__(scope, construct_id, **stack_props)
        env_name = environment.name
        cluster = cluster_name(env_name)
        self.topic = self._alerts_topic(environment)
        load_balancers = sorted(set(load_balancer_dimensions.values()))

        service_metrics = service_metrics_of(
            list(enumerate(services)),
            target_group_dimensions=target_group_dimensions,
            load_balancer_dimensions=load_balancer_dimensions,
            cluster=cluster,
        )
        published: dict[str, PublishedValue] = {
            "observability/alerts-topic-arn": PublishedValue(self.topic.topic_arn, "Alarm notifications"),
            "observability/dashboard": PublishedValue(
                dashboard_url(self.region, environment_dashboard_name(env_name)), "Environment dashboard"
            ),
        }
        self.service_alarms: dict[str, ServiceAlarms] = {}
        for metrics_of in service_metrics:
            alarms, values = add_service_observability(self, metrics_of, environment=env_name, topic=self.topic)
            self.service_alarms[metrics_of.service.name] = alarms
            published |= values
        # The other stack groups' services: their composite alarms by name (no cross-stack output), and links.
        other_composites = [
            cloudwatch.CompositeAlarm.from_composite_alarm_name(
                self, f"{pascal_case(name)}Composite", service_alarm_names(env_name, name).composite
            )
            for name in other_services
        ]

        self.environment_alarms = EnvironmentAlarms(
            self,
            "EnvironmentAlarms",
            settings=settings,
            names=environment_alarm_names(env_name),
            load_balancers=load_balancers,
            cluster_name=cluster,
            topic=self.topic,
        )
        environment_dashboard(
            self,
            "EnvironmentDashboard",
            name=environment_dashboard_name(env_name),
            environment=env_name,
            services=service_metrics,
            load_balancers=load_balancers,
            cluster_name=cluster,
            state_machine_arn=self.format_arn(
                service="states",
                resource="stateMachine",
                resource_name=rollout_state_machine_name(env_name),
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            ),
            alarms=[
                *(alarms.composite for alarms in self.service_alarms.values()),
                *other_composites,
                *self.environment_alarms.alarms,
            ],
            other_services=other_services,
            neuron_errors_threshold=settings.neuron_execution_errors,
        )
        publish_values(self, parameter_prefix=environment.parameter_prefix, values=published)

    def _alerts_topic(self, environment: EnvironmentScope) -> sns.Topic:
        """CloudWatch publishes alarm notifications to an encrypted topic only if the topic's key lets it."""
        key = kms.Key(
            self,
            "AlertsKey",
            description=f"Tessera {environment.name}: encryption of the alerts topic",
            alias=f"alias/tessera/{environment.name}/alerts",
            enable_key_rotation=True,
            removal_policy=environment.removal_policy,
            policy=named_users_policy(self, users=[], via_services=[]),
        )
        # Only CloudWatch, for this account's Tessera alarms (AWS's Modern Data Architecture Accelerator documents
        # both source keys as present when CloudWatch publishes to an encrypted topic).
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisEnvironment",
                principals=[iam.ServicePrincipal(CLOUDWATCH_PRINCIPAL)],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={
                    "StringEquals": {"aws:SourceAccount": self.account},
                    "ArnLike": {
                        "aws:SourceArn": self.format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name=f"tessera-{environment.name}-*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    },
                },
            )
        )
        topic = sns.Topic(
            self,
            "Alerts",
            display_name=f"Tessera {environment.name} alerts",
            master_key=key,
            enforce_ssl=True,
        )
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarms",
                principals=[iam.ServicePrincipal(CLOUDWATCH_PRINCIPAL)],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )
        return topic


def add_service_observability(
    scope: Stack, metrics_of: ServiceMetrics, *, environment: str, topic: sns.ITopic
) -> tuple[ServiceAlarms, dict[str, PublishedValue]]:
    """One service's alarms and dashboard in `scope` (the Observability stack of its stack group)."""
    name = metrics_of.service.name
    names = service_alarm_names(environment, name)
    alarms = ServiceAlarms(scope, f"{pascal_case(name)}Alarms", service_metrics=metrics_of, names=names, topic=topic)
    service_dashboard(
        scope,
        f"{pascal_case(name)}Dashboard",
        name=service_dashboard_name(environment, name),
        service_metrics=metrics_of,
        alarms=[alarms.composite, *alarms.metric_alarms],
    )
    published = {
        f"observability/services/{name}/alarm": PublishedValue(
            names.composite, f"{name}: composite alarm (the rollout's default watched alarm)", per_service=True
        ),
        f"observability/services/{name}/dashboard": PublishedValue(
            dashboard_url(scope.region, service_dashboard_name(environment, name)),
            f"{name} dashboard",
            per_service=True,
        ),
    }
    return alarms, published


def service_metrics_of(
    services: Sequence[tuple[int, PlacedService]],
    *,
    target_group_dimensions: Mapping[str, Mapping[str, str]],
    load_balancer_dimensions: Mapping[str, str],
    cluster: str,
) -> list[ServiceMetrics]:
    """Each service's metrics by the dimension values of its target groups and load balancer; `key` (its place in
    config) keeps metric-math ids unique on a dashboard."""
    return [
        ServiceMetrics(
            service=placed.spec,
            key=str(index),
            target_groups=target_group_dimensions[placed.name],
            load_balancer=load_balancer_dimensions[placed.name],
            cluster_name=cluster,
        )
        for index, placed in services
    ]
