"""A stack group's Services stack (`Tessera-<env>-Services-<group>`): the resources of the group's services
(stacks/services/service_resources.py) and a track owner of their own, beside the Services stack whose load
balancers, namespace and admission policy they use (stacks/config/stack_groups.py says why groups exist)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

from stacks.common.environment_scope import EnvironmentScope
from stacks.common.published_values import PublishedValue, publish_values
from stacks.config.environment import PlacedService
from stacks.config.services import FunctionsConfig, ServiceSpec
from stacks.services.service_resources import (
    ServiceRouting,
    SharedServiceParts,
    add_service,
    model_bucket,
    service_repository,
)
from stacks.services.track_owner import TrackOwner


class ServiceGroupStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: EnvironmentScope,
        functions: FunctionsConfig,
        services: Sequence[tuple[int, PlacedService]],  # each with its place in config
        shared: SharedServiceParts,
        main_tracks: TrackOwner,
        cluster_security_group_id: str,
        **stack_props: object,
    ) -> None:
        super().__init__(scope, construct_id, **stack_props)
        pods = ec2.SecurityGroup.from_security_group_id(self, "ClusterSecurityGroup", cluster_security_group_id)
        # Its own function: one function's environment holds a few services' image repositories, not every one's.
        tracks = TrackOwner(
            self,
            "TrackOwner",
            environment=environment,
            functions=functions,
            cluster=shared.cluster,
            namespace=shared.namespace,
            vpc=shared.vpc,
            cluster_security_group_id=cluster_security_group_id,
            registry_key=shared.artifacts_key,
            kubernetes_role=main_tracks.kubernetes_role,
        )
        bucket = model_bucket(self, environment.name)
        load_balancer_groups: dict[str, ec2.ISecurityGroup] = {}

        # The same rules as the Services stack's, made here: the load balancer's group imported into this stack
        # (egress only as declared), so a group's rules count against its own template.
        def connect_pods(service: ServiceSpec, load_balancer: elbv2.ApplicationLoadBalancer) -> None:
            name = load_balancer.node.id
            if name not in load_balancer_groups:
                [group] = load_balancer.connections.security_groups
                load_balancer_groups[name] = ec2.SecurityGroup.from_security_group_id(
                    self, f"{name}SecurityGroup", group.security_group_id, allow_all_outbound=False
                )
            ec2.Connections(security_groups=[load_balancer_groups[name]]).allow_to(
                pods, ec2.Port.tcp(service.port), f"{service.name} from the Tessera load balancer"
            )

        self.routing: dict[str, ServiceRouting] = {}
        published: dict[str, PublishedValue] = {}
        for index, placed in services:
            routing, values = add_service(
                self,
                placed,
                index=index,
                shared=shared,
                tracks=tracks,
                connect_pods=connect_pods,
                model_bucket=bucket,
                repository=service_repository(self, placed.spec),
            )
            self.routing[placed.spec.name] = routing
            published |= values
        publish_values(self, parameter_prefix=environment.parameter_prefix, values=published)
