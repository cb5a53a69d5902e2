"""What a Tessera function needs to call the Kubernetes API: a security group in the private subnets
(the endpoint is private in production) that the cluster admits on 443, the cluster's connection
details in its environment, and an EKS access entry mapping its role to a Kubernetes group bound to a
Role with exactly the calls its client makes (no EKS access policy)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct, IConstruct

from tessera_shared import constants as shared


def cluster_api_security_group(
    scope: Construct, construct_id: str, *, vpc: ec2.IVpc, cluster_security_group_id: str, description: str
) -> ec2.SecurityGroup:
    security_group = ec2.SecurityGroup(scope, construct_id, vpc=vpc, description=description, allow_all_outbound=False)
    # Every call it makes is HTTPS: the Kubernetes API (in the VPC) and AWS APIs (through NAT or endpoints).
    security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to the Kubernetes and AWS APIs")
    ec2.SecurityGroup.from_security_group_id(scope, "ClusterSecurityGroup", cluster_security_group_id).add_ingress_rule(
        security_group, ec2.Port.tcp(443), f"Kubernetes API from the {description}"
    )
    return security_group


def cluster_environment(cluster: eks.ICluster) -> dict[str, str]:
    return {
        shared.ENV_CLUSTER_NAME: cluster.cluster_name,
        shared.ENV_CLUSTER_ENDPOINT: cluster.cluster_endpoint,
        shared.ENV_CLUSTER_CA: cluster.cluster_certificate_authority_data,
    }


def group_access_entry(scope: Construct, *, cluster: eks.ICluster, role: iam.IRole, group: str) -> eks.AccessEntry:
    """An access entry that maps the role to a Kubernetes group and grants nothing else (RBAC decides)."""
    entry = eks.AccessEntry(scope, "KubernetesAccess", cluster=cluster, principal=role.role_arn, access_policies=[])
    # The L2 AccessEntry has no kubernetesGroups option; AWS::EKS::AccessEntry has.
    entry.node.default_child.add_property_override("KubernetesGroups", [group])
    return entry


def grant_kubernetes_access(
    scope: Construct,
    *,
    cluster: eks.ICluster,
    role: iam.IRole,
    group: str,
    role_objects: list[dict],
    after: Sequence[IConstruct] = (),
) -> eks.KubernetesManifest:
    """The access entry (group only) and the Role + RoleBinding manifest, applied after `after` (what makes their
    namespace, when it is made in the same stack: CloudFormation would otherwise race them); returns the manifest."""
    entry = group_access_entry(scope, cluster=cluster, role=role, group=group)
    manifest = eks.KubernetesManifest(scope, "KubernetesRole", cluster=cluster, manifest=role_objects, overwrite=True)
    manifest.node.add_dependency(entry, *after)
    return manifest
