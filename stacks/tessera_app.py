"""Builds every Tessera stack of one environment into a CDK app, from the config the CDK context names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import App, Environment, Stage, Tags, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import Node

from stacks.artifacts.stack import ArtifactsStack
from stacks.cluster.stack import ClusterStack
from stacks.common.encrypt_log_groups import encrypt_log_groups
from stacks.common.environment_scope import EnvironmentScope
from stacks.config.environment import DEFAULT_ENVIRONMENT, EnvironmentConfig, config_path_for, load_config
from stacks.config.stack_groups import MAIN_STACK_GROUP, group_stack_component
from stacks.network.stack import NetworkStack
from stacks.observability.group_stack import ObservabilityGroupStack
from stacks.observability.stack import ObservabilityStack
from stacks.registration.catalog import build_catalog
from stacks.registration.stack import RegistryStack
from stacks.rollout.stack import RolloutStack
from stacks.services.group_stack import ServiceGroupStack
from stacks.services.placement import needs_neuron_scheduler
from stacks.services.stack import ServicesStack


def config_file_from_context(node: Node) -> Path:
    """`-c config=PATH` wins over `-c env=NAME`; neither means the default environment."""
    explicit = node.try_get_context("config")
    if explicit:
        return Path(explicit)
    return config_path_for(node.try_get_context("env") or DEFAULT_ENVIRONMENT)


def load_config_from_context(node: Node) -> EnvironmentConfig:
    return load_config(config_file_from_context(node))


@dataclass(frozen=True)
class TesseraStacks:
    network: NetworkStack
    artifacts: ArtifactsStack
    cluster: ClusterStack
    services: ServicesStack
    registry: RegistryStack
    rollout: RolloutStack
    observability: ObservabilityStack
    # The stacks of the stack groups other than `main` (stacks/config/stack_groups.py).
    service_groups: tuple[ServiceGroupStack, ...] = ()
    observability_groups: tuple[ObservabilityGroupStack, ...] = ()


def build_tessera(app: App | Stage, config: EnvironmentConfig) -> TesseraStacks:
    """Adds the environment's stacks to `app` (or to a pipeline's stage: each stack is named
    `Tessera-<env>-<Component>` either way) and attaches the cdk-nag AwsSolutions checks.

    Each stack gets the environment scope, the slice of config it needs and the few constructs or
    values it uses from earlier stacks."""
    stack_env = Environment(account=config.account, region=config.region)
    groups = config.stack_groups
    environment = EnvironmentScope(
        name=config.name, parameter_prefix=config.parameter_prefix, retain=config.is_retained
    )

    network = NetworkStack(
        app,
        config.stack_name("Network"),
        environment=environment,
        settings=config.network,
        internet_facing_load_balancer=config.load_balancer.internet_facing,
        env=stack_env,
        stack_name=config.stack_name("Network"),
        description=f"Tessera {config.name}: VPC, subnets, NAT, VPC endpoints and flow logs",
    )
    artifacts = ArtifactsStack(
        app,
        config.stack_name("Artifacts"),
        environment=environment,
        settings=config.artifacts,
        image_repositories=config.image_repositories,
        key_users=config.artifacts_key_users,
        env=stack_env,
        stack_name=config.stack_name("Artifacts"),
        description=f"Tessera {config.name}: ECR repositories, model bucket, model registry and their KMS key",
    )
    cluster = ClusterStack(
        app,
        config.stack_name("Cluster"),
        environment=environment,
        settings=config.cluster,
        vpc=network.vpc,
        neuron_scheduler=needs_neuron_scheduler(config),
        services=[placed.spec for placed in config.placed_services],
        scrape_interval_seconds=config.observability.scrape_interval_seconds,
        env=stack_env,
        stack_name=config.stack_name("Cluster"),
        description=f"Tessera {config.name}: EKS cluster, Graviton, Neuron and GPU node pools, platform controllers",
    )
    services = ServicesStack(
        app,
        config.stack_name("Services"),
        environment=environment,
        load_balancer=config.load_balancer,
        functions=config.functions,
        services=config.placed_services,
        group_services=groups.get(MAIN_STACK_GROUP, ()),
        vpc=network.vpc,
        subnets=network.service_subnets,
        cluster=cluster.cluster,
        cluster_security_group_id=cluster.cluster.cluster_security_group_id,
        artifacts_key=artifacts.key,
        prometheus=cluster.prometheus,
        env=stack_env,
        stack_name=config.stack_name("Services"),
        description=f"Tessera {config.name}: load balancers, target groups and the inference services",
    )
    service_groups = [
        ServiceGroupStack(
            app,
            config.stack_name(group_stack_component("Services", group)),
            environment=environment,
            functions=config.functions,
            services=[(config.placed_services.index(placed), placed) for placed in members],
            shared=services.shared,
            main_tracks=services.tracks,
            cluster_security_group_id=cluster.cluster.cluster_security_group_id,
            env=stack_env,
            stack_name=config.stack_name(group_stack_component("Services", group)),
            description=f"Tessera {config.name}: the inference services of stack group {group}",
        )
        for group, members in groups.items()
        if group != MAIN_STACK_GROUP
    ]
    routing = {
        name: route
        for group in (services.routing, *(g.routing for g in service_groups))
        for name, route in group.items()
    }
    target_group_dimensions = {
        name: {track: group.target_group_full_name for track, group in route.target_groups.items()}
        for name, route in routing.items()
    }
    load_balancer_dimensions = {name: route.load_balancer.load_balancer_full_name for name, route in routing.items()}
    registry = RegistryStack(
        app,
        config.stack_name("Registry"),
        environment=environment,
        functions=config.functions,
        catalog=build_catalog(config),
        artifacts_key=artifacts.key,
        env=stack_env,
        stack_name=config.stack_name("Registry"),
        description=f"Tessera {config.name}: model registration from manifest uploads",
    )
    registry.add_stack_dependency(artifacts)
    observability = ObservabilityStack(
        app,
        config.stack_name("Observability"),
        environment=environment,
        settings=config.observability,
        services=groups.get(MAIN_STACK_GROUP, ()),
        other_services=[
            placed.name for group, members in groups.items() if group != MAIN_STACK_GROUP for placed in members
        ],
        target_group_dimensions=target_group_dimensions,
        load_balancer_dimensions=load_balancer_dimensions,
        env=stack_env,
        stack_name=config.stack_name("Observability"),
        description=f"Tessera {config.name}: dashboards, alarms and the alerts topic",
    )
    observability_groups = [
        ObservabilityGroupStack(
            app,
            config.stack_name(group_stack_component("Observability", group)),
            environment=environment,
            services=[(config.placed_services.index(placed), placed) for placed in members],
            topic=observability.topic,
            target_group_dimensions=target_group_dimensions,
            load_balancer_dimensions=load_balancer_dimensions,
            env=stack_env,
            stack_name=config.stack_name(group_stack_component("Observability", group)),
            description=f"Tessera {config.name}: dashboards and alarms of stack group {group}",
        )
        for group, members in groups.items()
        if group != MAIN_STACK_GROUP
    ]
    rollout = RolloutStack(
        app,
        config.stack_name("Rollout"),
        environment=environment,
        functions=config.functions,
        services=config.placed_services,
        routing=routing,
        vpc=network.vpc,
        cluster=cluster.cluster,
        cluster_security_group_id=cluster.cluster.cluster_security_group_id,
        artifacts_key=artifacts.key,
        prometheus=cluster.prometheus,
        env=stack_env,
        stack_name=config.stack_name("Rollout"),
        description=f"Tessera {config.name}: progressive model rollouts (Step Functions + Lambda)",
    )
    rollout.add_stack_dependency(registry)
    # Prepare checks that the watched alarms exist, the service's composite alarm among them.
    for watched in (observability, *observability_groups):
        rollout.add_stack_dependency(watched)
    for stack in (
        network,
        artifacts,
        cluster,
        services,
        registry,
        rollout,
        observability,
        *service_groups,
        *observability_groups,
    ):
        for key, value in config.tags.as_dict(config.name).items():
            Tags.of(stack).add(key, value)

    encrypt_log_groups(app, network.logs_key)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return TesseraStacks(
        network=network,
        artifacts=artifacts,
        cluster=cluster,
        services=services,
        registry=registry,
        rollout=rollout,
        observability=observability,
        service_groups=tuple(service_groups),
        observability_groups=tuple(observability_groups),
    )
