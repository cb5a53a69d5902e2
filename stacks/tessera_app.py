"""Builds every Tessera stack of one environment into a CDK app."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import App, Environment, RemovalPolicy, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from stacks.artifacts import ArtifactsStack
from stacks.cluster import ClusterStack
from stacks.config import EnvironmentConfig
from stacks.network import NetworkStack
from stacks.registry import RegistryStack
from stacks.rollout import RolloutStack
from stacks.services import ServicesStack


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
