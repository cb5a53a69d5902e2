"""Cluster stack: EKS with a Graviton system node group, Karpenter pools (Graviton general, Trainium and
Inferentia2) and the Neuron software stack.

Access is by EKS access entries only (authentication mode API). Nobody is made cluster admin for
having deployed the stack (`bootstrap_cluster_creator_admin_permissions=False`): admins and
read-only users are the IAM roles named in config, and CDK's kubectl provider has its own entry.

IMDS hop limit: 1 on every node, the system node group included: pods cannot reach instance metadata
(they get AWS credentials from Pod Identity). What runs there and could ask it: the VPC CNI, kube-proxy,
the Pod Identity agent, the CloudWatch agent and Fluent Bit run on the host network; Karpenter and the
load balancer controller have their region (and VPC) in their values; the EBS CSI driver falls back to
the Kubernetes API (node providerID) for its metadata; KEDA's triggers carry their region; CoreDNS,
metrics-server and the Neuron scheduler call no AWS API. A node group may still set 2 in config.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk.lambda_layer_kubectl_v34 import KubectlV34Layer
from constructs import Construct

from stacks.cluster.addons import ClusterAddons
from stacks.cluster.cdk_internals_nag import (
    acknowledge,
    acknowledge_cluster_internals,
)
from stacks.cluster.karpenter import Karpenter
from stacks.cluster.managed_prometheus import ManagedPrometheus, PrometheusWorkspace
from stacks.cluster.node_policies import node_managed_policies
from stacks.cluster.node_pools import SystemNodegroup
from stacks.cluster.platform_charts import PlatformCharts
from stacks.cluster.scrape_config import metrics_services
from stacks.common.environment_scope import EnvironmentScope
from stacks.common.key_policies import named_users_policy
from stacks.common.published_values import PublishedValue, publish_values
from stacks.common.resource_names import cluster_name
from stacks.config.accelerator_pools import GpuPoolConfig
from stacks.config.cluster import ClusterConfig
from stacks.config.services import ServiceSpec
from tessera_shared.constants import SCHEDULER_POOL, SYSTEM_POOL

KUBECTL_LAYERS = {"1.34": KubectlV34Layer}
ALL_LOG_TYPES = [
    eks.ClusterLoggingTypes.API,
    eks.ClusterLoggingTypes.AUDIT,
    eks.ClusterLoggingTypes.AUTHENTICATOR,
    eks.ClusterLoggingTypes.CONTROLLER_MANAGER,
    eks.ClusterLoggingTypes.SCHEDULER,
]


class ClusterStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: ClusterConfig,
        vpc: ec2.IVpc,
        environment: EnvironmentScope,
        neuron_scheduler: bool,
        services: Sequence[ServiceSpec],
        scrape_interval_seconds: int,
        **stack_props: object,
    ) -> None:
        """`services`: every service of the environment; those with `metrics` get the managed Prometheus
        workspace and its collector (none: neither exists)."""
        super().__init__(scope, construct_id, **stack_props)
        private_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)

        secrets_key = kms.Key(
            self,
            "SecretsKey",
            description=f"Tessera {environment.name}: envelope encryption of Kubernetes secrets",
            alias=f"alias/tessera/{environment.name}/eks-secrets",
            enable_key_rotation=True,
            removal_policy=environment.removal_policy,
            # Only EKS uses it, by the grant it creates with the cluster.
            policy=named_users_policy(self, users=[], via_services=[]),
        )
        endpoint = settings.endpoint
        self.cluster_name = cluster_name(environment.name)
        self.cluster = eks.Cluster(
            self,
            "Cluster",
            cluster_name=self.cluster_name,
            version=eks.KubernetesVersion.of(settings.kubernetes_version),
            vpc=vpc,
            vpc_subnets=[private_subnets],
            default_capacity_type=eks.DefaultCapacityType.NODEGROUP,
            default_capacity=0,
            bootstrap_cluster_creator_admin_permissions=False,
            bootstrap_self_managed_addons=False,
            secrets_encryption_key=secrets_key,
            cluster_logging=ALL_LOG_TYPES,
            endpoint_access=(
                eks.EndpointAccess.PRIVATE
                if endpoint.is_private_only
                else eks.EndpointAccess.PUBLIC_AND_PRIVATE.only_from(*endpoint.public_access_cidrs)
            ),
            kubectl_provider_options=eks.KubectlProviderOptions(
                kubectl_layer=KUBECTL_LAYERS[settings.kubernetes_version](self, "KubectlLayer"),
                private_subnets=vpc.private_subnets,
            ),
        )
        self._grant_access(settings)

        addons = ClusterAddons(
            self, "Addons", cluster=self.cluster, cluster_name=self.cluster_name, versions=settings.addons
        )
        node_role = self._node_role(session_manager=settings.node_session_manager)
        nodegroups = [
            SystemNodegroup(
                self,
                "SystemPool",
                cluster=self.cluster,
                name=SYSTEM_POOL,
                instance_types=settings.system_pool.instance_types,
                nodes=settings.system_pool.nodes,
                ami_type=eks.NodegroupAmiType.AL2023_ARM_64_STANDARD,
                node_role=node_role,
                subnets=private_subnets,
                disk_size_gib=settings.system_pool.disk_size_gib,
                imds_hop_limit=settings.system_pool.imds_hop_limit,
                max_unavailable=settings.system_pool.max_unavailable,
            )
        ]
        if neuron_scheduler:
            nodegroups.append(
                SystemNodegroup(
                    self,
                    "SchedulerPool",
                    cluster=self.cluster,
                    name=SCHEDULER_POOL,
                    instance_types=settings.scheduler_pool.instance_types,
                    nodes=settings.scheduler_pool.nodes,
                    ami_type=eks.NodegroupAmiType.AL2023_X86_64_STANDARD,
                    node_role=node_role,
                    subnets=private_subnets,
                )
            )
        system_nodegroup = nodegroups[0].nodegroup
        for group in nodegroups:
            for prerequisite in addons.node_prerequisites:
                group.nodegroup.node.add_dependency(prerequisite)

        self.karpenter = Karpenter(
            self, "Karpenter", cluster=self.cluster, cluster_name=self.cluster_name, settings=settings
        )
        self.karpenter.node.add_dependency(system_nodegroup)
        # Add-ons that run Deployments may land on Karpenter's general nodes: the pools exist first.
        for addon in addons.after_nodes:
            addon.node.add_dependency(self.karpenter.pools)

        # The Prometheus workspace and its collector, only for an environment with a service that has `metrics`.
        self.prometheus: PrometheusWorkspace | None = None
        if metrics_services(services):
            managed = ManagedPrometheus(
                self,
                "Prometheus",
                environment_name=environment.name,
                cluster=self.cluster,
                vpc=vpc,
                subnets=vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnets,
                services=services,
                scrape_interval_seconds=scrape_interval_seconds,
            )
            self.prometheus = managed.published

        charts = PlatformCharts(
            self,
            "Platform",
            cluster=self.cluster,
            cluster_name=self.cluster_name,
            versions=settings.charts,
            vpc_id=vpc.vpc_id,
            neuron_scheduler=neuron_scheduler,
            efa=any(pool.efa is not None for pool in settings.accelerator_pools),
            gpu=any(isinstance(pool, GpuPoolConfig) for pool in settings.accelerator_pools),
            prometheus_workspace_arn=self.prometheus.arn if self.prometheus else None,
        )
        for group in nodegroups:
            charts.node.add_dependency(group.nodegroup)

        self._publish(environment.parameter_prefix, node_role)
        acknowledge_cluster_internals(self.cluster)

    def _grant_access(self, settings: ClusterConfig) -> None:
        grants = [
            (
                "Admin",
                settings.admin_role_arns,
                eks.AccessPolicy.from_access_policy_name(
                    "AmazonEKSClusterAdminPolicy", access_scope_type=eks.AccessScopeType.CLUSTER
                ),
            ),
            (
                "ReadOnly",
                settings.read_only_role_arns,
                eks.AccessPolicy.from_access_policy_name(
                    "AmazonEKSViewPolicy", access_scope_type=eks.AccessScopeType.CLUSTER
                ),
            ),
        ]
        for kind, arns, policy in grants:
            for index, arn in enumerate(arns):
                self.cluster.grant_access(f"{kind}Access{index}", arn, [policy])

    def _node_role(self, *, session_manager: bool) -> iam.Role:
        role = iam.Role(
            self,
            "NodeRole",
            description="EC2 role of the managed node groups (pods get their own permissions from Pod Identity)",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
        )
        for policy, reason in node_managed_policies(session_manager=session_manager).items():
            role.add_managed_policy(iam.ManagedPolicy.from_aws_managed_policy_name(policy))
            acknowledge(role, f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{policy}]", reason)
        return role

    def _publish(self, parameter_prefix: str, node_role: iam.Role) -> None:
        cluster = self.cluster
        kubectl_role = cluster.kubectl_provider.role if cluster.kubectl_provider else None
        CfnOutput(
            self,
            "UpdateKubeconfigCommand",
            value=f"aws eks update-kubeconfig --name {cluster.cluster_name} --region {self.region}",
            description="Configure kubectl for this cluster (needs an admin or read-only access entry)",
        )
        values = {
            "cluster/name": PublishedValue(cluster.cluster_name, "EKS cluster name"),
            "cluster/arn": PublishedValue(cluster.cluster_arn, "EKS cluster ARN"),
            "cluster/endpoint": PublishedValue(cluster.cluster_endpoint, "Kubernetes API endpoint"),
            "cluster/security-group-id": PublishedValue(
                cluster.cluster_security_group_id, "Cluster security group (nodes, pods, control plane)"
            ),
            "cluster/node-role-arn": PublishedValue(node_role.role_arn, "EC2 role of the managed node groups"),
            "cluster/karpenter-node-role-arn": PublishedValue(
                self.karpenter.node_role.role_arn, "EC2 role of the nodes Karpenter launches"
            ),
            "cluster/karpenter-interruption-queue": PublishedValue(
                self.karpenter.queue.queue_name, "SQS queue of Karpenter's interruption notices"
            ),
        }
        if self.prometheus is not None:
            values["prometheus/workspace-arn"] = PublishedValue(
                self.prometheus.arn, "Managed Prometheus workspace of the serving runtimes' metrics"
            )
            values["prometheus/endpoint"] = PublishedValue(
                self.prometheus.endpoint, "Prometheus endpoint of that workspace (query with SigV4, service aps)"
            )
        if kubectl_role is not None:
            values["cluster/kubectl-role-arn"] = PublishedValue(
                kubectl_role.role_arn, "Role of CDK's kubectl provider (applies manifests and charts)"
            )
        publish_values(self, parameter_prefix=parameter_prefix, values=values)
