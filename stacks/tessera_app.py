"""Builds every Tessera stack of one environment into a CDK app, from the config the CDK context names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import App, Environment, Tags, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import Node

from stacks.artifacts.stack import ArtifactsStack
from stacks.cluster.stack import ClusterStack
from stacks.common.encrypt_log_groups import encrypt_log_groups
from stacks.common.environment_scope import EnvironmentScope
from stacks.config.environment import DEFAULT_ENVIRONMENT, EnvironmentConfig, config_path_for, load_config
from stacks.network.stack import NetworkStack
from stacks.observability.stack import ObservabilityStack
from stacks.registration.catalog import build_catalog
from stacks.registration.stack import RegistryStack
from stacks.rollout.stack import RolloutStack
from stacks.services.kubernetes_objects import needs_neuron_scheduler
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


def build_tessera(app: App, config: EnvironmentConfig) -> TesseraStacks:
    """Adds the environment's stacks to `app` and attaches the cdk-nag AwsSolutions checks.

    Each stack gets the environment scope, the slice of config it needs and the few constructs or
    values it uses from earlier stacks."""
    stack_env = Environment(account=config.account, region=config.region)
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
        description=f"Tessera {config.name}: ECR repositories, model bucket, model registry and their KMS key",
    )
    cluster = ClusterStack(
        app,
        config.stack_name("Cluster"),
        environment=environment,
        settings=config.cluster,
        vpc=network.vpc,
        neuron_scheduler=needs_neuron_scheduler(config),
        env=stack_env,
        description=f"Tessera {config.name}: EKS cluster, Graviton, Neuron and GPU node pools, platform controllers",
    )
    services = ServicesStack(
        app,
        config.stack_name("Services"),
        environment=environment,
        load_balancer=config.load_balancer,
        functions=config.functions,
        services=config.placed_services,
        vpc=network.vpc,
        subnets=network.service_subnets,
        cluster=cluster.cluster,
        cluster_security_group_id=cluster.cluster.cluster_security_group_id,
        artifacts_key=artifacts.key,
        env=stack_env,
        description=f"Tessera {config.name}: load balancers, target groups and the inference services",
    )
    registry = RegistryStack(
        app,
        config.stack_name("Registry"),
        environment=environment,
        functions=config.functions,
        catalog=build_catalog(config),
        artifacts_key=artifacts.key,
        env=stack_env,
        description=f"Tessera {config.name}: model registration from manifest uploads",
    )
    registry.add_stack_dependency(artifacts)
    observability = ObservabilityStack(
        app,
        config.stack_name("Observability"),
        environment=environment,
        settings=config.observability,
        services=config.placed_services,
        target_group_dimensions={
            name: {track: group.target_group_full_name for track, group in routing.target_groups.items()}
            for name, routing in services.routing.items()
        },
        load_balancer_dimensions={
            name: routing.load_balancer.load_balancer_full_name for name, routing in services.routing.items()
        },
        env=stack_env,
        description=f"Tessera {config.name}: dashboards, alarms and the alerts topic",
    )
    rollout = RolloutStack(
        app,
        config.stack_name("Rollout"),
        environment=environment,
        functions=config.functions,
        services=config.placed_services,
        routing=services.routing,
        vpc=network.vpc,
        cluster=cluster.cluster,
        cluster_security_group_id=cluster.cluster.cluster_security_group_id,
        artifacts_key=artifacts.key,
        env=stack_env,
        description=f"Tessera {config.name}: progressive model rollouts (Step Functions + Lambda)",
    )
    rollout.add_stack_dependency(registry)
    # Prepare checks that the watched alarms exist, the service's composite alarm among them.
    rollout.add_stack_dependency(observability)
    for stack in (network, artifacts, cluster, services, registry, rollout, observability):
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
    )
