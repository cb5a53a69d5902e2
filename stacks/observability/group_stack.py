"""A stack group's Observability stack (`Tessera-<env>-Observability-<group>`): each of the group's services'
alarms and dashboard, notifying the environment's alerts topic (stacks/config/stack_groups.py says why groups
exist)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Stack
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks.common.environment_scope import EnvironmentScope
from stacks.common.published_values import PublishedValue, publish_values
from stacks.common.resource_names import cluster_name
from stacks.config.environment import PlacedService
from stacks.observability.alarms import ServiceAlarms
from stacks.observability.stack import add_service_observability, service_metrics_of


class ObservabilityGroupStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: EnvironmentScope,
        services: Sequence[tuple[int, PlacedService]],  # each with its place in config
        topic: sns.ITopic,
        target_group_dimensions: Mapping[str, Mapping[str, str]],
        load_balancer_dimensions: Mapping[str, str],
        **stack_props: object,
    ) -> None:
        super().__init__(scope, construct_id, **stack_props)
        published: dict[str, PublishedValue] = {}
        self.service_alarms: dict[str, ServiceAlarms] = {}
        for metrics_of in service_metrics_of(
            services,
            target_group_dimensions=target_group_dimensions,
            load_balancer_dimensions=load_balancer_dimensions,
            cluster=cluster_name(environment.name),
        ):
            alarms, values = add_service_observability(self, metrics_of, environment=environment.name, topic=topic)
            self.service_alarms[metrics_of.service.name] = alarms
            published |= values
        publish_values(self, parameter_prefix=environment.parameter_prefix, values=published)
