"""EKS managed add-ons at pinned versions, with Pod Identity for the ones that call AWS.

The cluster is created without EKS's self-managed networking add-ons, so vpc-cni, kube-proxy and
the Pod Identity agent are managed add-ons that the node groups wait for; add-ons that run
Deployments (CoreDNS, the EBS CSI controller, CloudWatch observability) and the node monitoring agent
wait for the system node group and Karpenter's pools.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Acknowledgment, Aws, Validations
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.common.construct_ids import pascal_case
from stacks.config.cluster import AddonVersions

POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"


@dataclass(frozen=True)
class AddonIdentity:
    """A Pod Identity role for an add-on's service account, with AWS managed policies."""

    service_account: str
    managed_policies: tuple[str, ...]


ADDON_IDENTITIES: dict[str, AddonIdentity] = {
    # The VPC CNI's permissions on its own service account, not on the node role (where any pod that reached
    # the node's credentials could use them).
    "vpc-cni": AddonIdentity("aws-node", ("AmazonEKS_CNI_Policy",)),
    "amazon-cloudwatch-observability": AddonIdentity("cloudwatch-agent", ("CloudWatchAgentServerPolicy",)),
}


def pod_identity_conditions(*, cluster_name: str, namespace: str, service_account: str) -> dict:
    """Trust conditions on the session tags EKS Pod Identity sets (the EKS user guide's "Create IAM role with
    trust policy required by EKS Pod Identity"): this cluster's ARN, which names the account, and one
    service account. Session tags are on unless an association disables them; Tessera's never do."""
    cluster_arn = f"arn:{Aws.PARTITION}:eks:{Aws.REGION}:{Aws.ACCOUNT_ID}:cluster/{cluster_name}"
    return {
        "StringEquals": {
            "aws:RequestTag/eks-cluster-arn": cluster_arn,
            "aws:RequestTag/kubernetes-namespace": namespace,
            "aws:RequestTag/kubernetes-service-account": service_account,
        }
    }


def pod_identity_role(
    scope: Construct,
    construct_id: str,
    *,
    description: str,
    cluster_name: str,
    namespace: str,
    service_account: str,
) -> iam.Role:
    """A role that EKS Pod Identity may assume on behalf of one service account of one cluster."""
    return iam.Role(
        scope,
        construct_id,
        description=description,
        assumed_by=iam.ServicePrincipal(
            POD_IDENTITY_PRINCIPAL,
            conditions=pod_identity_conditions(
                cluster_name=cluster_name, namespace=namespace, service_account=service_account
            ),
        ).with_session_tags(),
    )


class ClusterAddons(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster: eks.Cluster,
        cluster_name: str,
        versions: AddonVersions,
    ) -> None:
        super().__init__(scope, construct_id)
        self._cluster_name = cluster_name
        # The cluster owns the Pod Identity agent add-on (its ServiceAccounts create it on first use);
        # this pins its version instead of adding a second one.
        pod_identity_agent = cluster.eks_pod_identity_agent
        pod_identity_agent.node.default_child.add_property_override("AddonVersion", versions.eks_pod_identity_agent)
        self.node_prerequisites = [
            # Network policy enforcement is off in the VPC CNI unless asked for; services rely on it.
            self._addon(cluster, "vpc-cni", versions.vpc_cni, configuration={"enableNetworkPolicy": "true"}),
            self._addon(cluster, "kube-proxy", versions.kube_proxy),
            pod_identity_agent,
        ]
        self.after_nodes = [
            self._addon(cluster, "coredns", versions.coredns),
            self._addon(cluster, "amazon-cloudwatch-observability", versions.amazon_cloudwatch_observability),
            # Reports accelerator (Neuron), kernel, network and storage faults as node conditions that
            # Karpenter's node repair and managed node group auto-repair act on.
            self._addon(cluster, "eks-node-monitoring-agent", versions.eks_node_monitoring_agent),
        ]
        for addon in self.after_nodes:
            addon.node.add_dependency(pod_identity_agent)

    def _addon(self, cluster: eks.Cluster, name: str, version: str, *, configuration: dict | None = None) -> eks.IAddon:
        construct_id = pascal_case(name)
        addon = eks.Addon(
            self,
            construct_id,
            cluster=cluster,
            addon_name=name,
            addon_version=version,
            configuration_values=configuration,
        )
        identity = ADDON_IDENTITIES.get(name)
        if identity is not None:
            role = pod_identity_role(
                self,
                f"{construct_id}Role",
                description=f"Pod Identity role of the {name} add-on",
                cluster_name=self._cluster_name,
                namespace="kube-system",
                service_account=identity.service_account,
            )
            for policy in identity.managed_policies:
                role.add_managed_policy(iam.ManagedPolicy.from_aws_managed_policy_name(policy))
                Validations.of(role).acknowledge(
                    Acknowledgment(
                        id=f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{policy}]",
                        reason=f"AWS maintains {policy} for the {name} add-on and updates it with the add-on's needs.",
                    )
                )
            # The L2 Addon has no Pod Identity option; CloudFormation's AWS::EKS::Addon has.
            addon.node.default_child.add_property_override(
                "PodIdentityAssociations", [{"ServiceAccount": identity.service_account, "RoleArn": role.role_arn}]
            )
        return addon
