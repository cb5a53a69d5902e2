"""Cluster stack: EKS on Graviton with Trainium and Inferentia2 pools and the Neuron software stack.

Access is by EKS access entries only (authentication mode API). Nobody is made cluster admin for
having deployed the stack (`bootstrap_cluster_creator_admin_permissions=False`): admins and
read-only users are the IAM roles named in config, and CDK's kubectl provider has its own entry.

IMDS hop limit: 1 on every pool (pods cannot reach instance metadata; they get AWS credentials from
Pod Identity) except where config sets 2. The default config sets 2 on the system pool only, where
the CloudWatch agent and the EBS CSI controller read instance metadata from inside pods.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk.lambda_layer_kubectl_v34 import KubectlV34Layer
from constructs import Construct

from stacks.cluster.addons import ClusterAddons
from stacks.cluster.autoscaler_tags import AutoscalerNodeTemplateTags
from stacks.cluster.cdk_internals_nag import (
    acknowledge,
    acknowledge_aws_custom_resource_singleton,
    acknowledge_cluster_internals,
)
from stacks.cluster.node_pools import AcceleratorPool, GravitonPool, NodePool
from stacks.cluster.platform_charts import PlatformCharts
from stacks.common.construct_ids import pascal_case
from stacks.common.environment_scope import EnvironmentScope
from stacks.common.published_values import PublishedValue, publish_values
from stacks.config.cluster import ClusterConfig

KUBECTL_LAYERS = {"1.34": KubectlV34Layer}
ALL_LOG_TYPES = [
    eks.ClusterLoggingTypes.API,
    eks.ClusterLoggingTypes.AUDIT,
    eks.ClusterLoggingTypes.AUTHENTICATOR,
    eks.ClusterLoggingTypes.CONTROLLER_MANAGER,
    eks.ClusterLoggingTypes.SCHEDULER,
]
# The node role's AWS managed policies, each with why the node needs it.
NODE_MANAGED_POLICIES = {
    "AmazonEKSWorkerNodePolicy": "Lets the kubelet join the cluster and describe its node; AWS maintains it for nodes.",
    "AmazonEC2ContainerRegistryPullOnly": "Nodes pull the service and controller images; pull-only, no push.",
    "AmazonEKS_CNI_Policy": "The VPC CNI on each node assigns pod IPs from the VPC; AWS maintains it for aws-node.",
    "AmazonSSMManagedInstanceCore": "Session Manager access to nodes for debugging instead of SSH keys or open ports.",
}


class ClusterStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: ClusterConfig,
        vpc: ec2.IVpc,
        environment: EnvironmentScope,
        **stack_props: object,
    ) -> None:
        super().__init__(scope, construct_id, **stack_props)
        private_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)

        secrets_key = kms.Key(
            self,
            "SecretsKey",
            description=f"Tessera {environment.name}: envelope encryption of Kubernetes secrets",
            alias=f"alias/tessera/{environment.name}/eks-secrets",
            enable_key_rotation=True,
            removal_policy=environment.removal_policy,
        )
        endpoint = settings.endpoint
        self.cluster_name = f"tessera-{environment.name}"
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

        addons = ClusterAddons(self, "Addons", cluster=self.cluster, versions=settings.addons)
        node_role = self._node_role()
        self.pools = self._node_pools(settings, node_role, private_subnets)
        system_nodegroup = self.pools[0].nodegroup
        for pool in self.pools:
            for prerequisite in addons.node_prerequisites:
                pool.nodegroup.node.add_dependency(prerequisite)
            AutoscalerNodeTemplateTags(
                self,
                f"{pascal_case(pool.name)}AutoscalerTags",
                cluster_name=self.cluster.cluster_name,
                nodegroup=pool.nodegroup,
                tags=pool.template.autoscaler_tags(),
            )
        for addon in addons.after_nodes:
            addon.node.add_dependency(system_nodegroup)

        charts = PlatformCharts(
            self,
            "Platform",
            cluster=self.cluster,
            cluster_name=self.cluster_name,
            versions=settings.charts,
            vpc_id=vpc.vpc_id,
        )
        charts.node.add_dependency(system_nodegroup)

        self._publish(environment.parameter_prefix, node_role)
        acknowledge_cluster_internals(self.cluster)
        acknowledge_aws_custom_resource_singleton(self)

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

    def _node_role(self) -> iam.Role:
        role = iam.Role(
            self,
            "NodeRole",
            description="EC2 role of every Tessera node (pods get their own permissions from Pod Identity)",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
        )
        for policy, reason in NODE_MANAGED_POLICIES.items():
            role.add_managed_policy(iam.ManagedPolicy.from_aws_managed_policy_name(policy))
            acknowledge(role, f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{policy}]", reason)
        return role

    def _node_pools(self, settings: ClusterConfig, node_role: iam.Role, subnets: ec2.SubnetSelection) -> list[NodePool]:
        pools = []
        for name, graviton in (("system", settings.system_pool), ("general", settings.general_pool)):
            pool = GravitonPool(
                self,
                f"{pascal_case(name)}Pool",
                cluster=self.cluster,
                name=name,
                settings=graviton,
                node_role=node_role,
                subnets=subnets,
            )
            pools.append(NodePool(name=name, nodegroup=pool.nodegroup, template=pool.template))
        for accelerator in settings.accelerator_pools:
            pool = AcceleratorPool(
                self,
                f"Accelerator{pascal_case(accelerator.name)}Pool",
                cluster=self.cluster,
                settings=accelerator,
                node_role=node_role,
                subnets=subnets,
            )
            pools.append(NodePool(name=accelerator.name, nodegroup=pool.nodegroup, template=pool.template))
        return pools

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
            "cluster/node-role-arn": PublishedValue(node_role.role_arn, "EC2 role of the nodes"),
        }
        if kubectl_role is not None:
            values["cluster/kubectl-role-arn"] = PublishedValue(
                kubectl_role.role_arn, "Role of CDK's kubectl provider (applies manifests and charts)"
            )
        publish_values(self, parameter_prefix=parameter_prefix, values=values)
