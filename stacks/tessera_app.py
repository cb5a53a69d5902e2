"""Builds every Tessera stack of one environment into a CDK app, from the config the CDK context names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import App, Environment, RemovalPolicy, Tags, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import Node

from stacks.artifacts.stack import ArtifactsStack
from stacks.cluster.stack import ClusterStack
from stacks.config.environment import DEFAULT_ENVIRONMENT, EnvironmentConfig, config_path_for, load_config
from stacks.network.stack import NetworkStack
from stacks.registration.stack import RegistryStack
from stacks.rollout.stack import RolloutStack
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


def build_tessera(app: App, config: EnvironmentConfig) -> TesseraStacks:
    """Adds the environment's stacks to `app` and attaches the cdk-nag AwsSolutions checks."""
    environment = Environment(account=config.account, region=config.region)
    removal_policy = RemovalPolicy.RETAIN if config.is_retained else RemovalPolicy.DESTROY

    network = NetworkStack(
        app,
        config.stack_name("Network"),
        settings=config.network,
        removal_policy=removal_policy,
        parameter_prefix=config.parameter_prefix,
        env=environment,
        description=f"Tessera {config.name}: VPC, subnets, NAT, VPC endpoints and flow logs",
    )
    artifacts = ArtifactsStack(
        app,
        config.stack_name("Artifacts"),
        settings=config.artifacts,
        image_repositories=config.image_repositories,
        environment_name=config.name,
        retain=config.is_retained,
        parameter_prefix=config.parameter_prefix,
        env=environment,
        description=f"Tessera {config.name}: ECR repositories, model bucket, model registry and their KMS key",
    )
    cluster = ClusterStack(
        app,
        config.stack_name("Cluster"),
        settings=config.cluster,
        vpc=network.vpc,
        environment_name=config.name,
        removal_policy=removal_policy,
        parameter_prefix=config.parameter_prefix,
        env=environment,
        description=f"Tessera {config.name}: EKS cluster, Graviton and Neuron node pools, platform controllers",
    )
    services = ServicesStack(
        app,
        config.stack_name("Services"),
        config=config,
        vpc=network.vpc,
        cluster=cluster.cluster,
        cluster_security_group_id=cluster.cluster.cluster_security_group_id,
        artifacts_key=artifacts.key,
        env=environment,
        description=f"Tessera {config.name}: load balancer, target groups and the inference services",
    )
    registry = RegistryStack(
        app,
        config.stack_name("Registry"),
        config=config,
        artifacts_key=artifacts.key,
        env=environment,
        description=f"Tessera {config.name}: model registration from manifest uploads",
    )
    registry.add_stack_dependency(artifacts)
    rollout = RolloutStack(
        app,
        config.stack_name("Rollout"),
        config=config,
        vpc=network.vpc,
        cluster=cluster.cluster,
        cluster_security_group_id=cluster.cluster.cluster_security_group_id,
        services=services,
        artifacts_key=artifacts.key,
        env=environment,
        description=f"Tessera {config.name}: progressive model rollouts (Step Functions + Lambda)",
    )
    rollout.add_stack_dependency(registry)
    for stack in (network, artifacts, cluster, services, registry, rollout):
        for key, value in config.tags.as_dict(config.name).items():
            Tags.of(stack).add(key, value)

    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return TesseraStacks(
        network=network, artifacts=artifacts, cluster=cluster, services=services, registry=registry, rollout=rollout
    )
