"""Platform software from Helm charts at pinned versions: the Neuron device plugin and scheduler
extension, the AWS Load Balancer Controller, metrics-server and the Cluster Autoscaler.

Controllers run on the Graviton `system` pool (node selector). None of them tolerates the Neuron
taint, so none can land on an accelerator node, except the Neuron device plugin, which must run
on every Neuron node and nowhere else.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.config.cluster import ChartVersions
from tessera_shared.constants import POOL_LABEL

SYSTEM_POOL_SELECTOR = {POOL_LABEL: "system", "kubernetes.io/arch": "arm64"}
NEURON_CHART_REPOSITORY = "oci://public.ecr.aws/neuron/neuron-helm-chart"
LBC_POLICY_FILE = Path(__file__).parent / "data" / "aws-load-balancer-controller-iam-policy.json"
LBC_POLICY_SHA256 = "16f232c9d9f79366fe949c4550ad517a202380058a9e48d45a4e215044a20a6a"
LBC_SERVICE_ACCOUNT = "aws-load-balancer-controller"
AUTOSCALER_SERVICE_ACCOUNT = "cluster-autoscaler"


def load_lbc_policy() -> dict:
    """The controller's published IAM policy, refused if it is not the file we reviewed."""
    raw = LBC_POLICY_FILE.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != LBC_POLICY_SHA256:
        raise ValueError(f"{LBC_POLICY_FILE.name}: sha256 {digest} does not match the reviewed {LBC_POLICY_SHA256}")
    return json.loads(raw)


def neuron_chart_values() -> dict:
    return {
        "devicePlugin": {"enabled": True},  # the chart's own node affinity keeps it on Neuron instance types
        "scheduler": {
            "enabled": True,
            "nodeSelector": SYSTEM_POOL_SELECTOR,
            "customScheduler": {"enabled": True, "nodeSelector": SYSTEM_POOL_SELECTOR},
        },
        "npd": {"enabled": False},
    }


def load_balancer_controller_values(*, cluster_name: str, region: str, vpc_id: str) -> dict:
    return {
        "clusterName": cluster_name,
        "region": region,
        "vpcId": vpc_id,
        "replicaCount": 2,
        "serviceAccount": {"create": False, "name": LBC_SERVICE_ACCOUNT},
        "nodeSelector": SYSTEM_POOL_SELECTOR,
        # Tessera's services are bound through TargetGroupBinding only; the controller never owns an ALB.
        "enableServiceMutatorWebhook": False,
    }


def metrics_server_values() -> dict:
    return {"replicas": 2, "nodeSelector": SYSTEM_POOL_SELECTOR}


def cluster_autoscaler_values(*, cluster_name: str, region: str, image_tag: str) -> dict:
    return {
        "autoDiscovery": {"clusterName": cluster_name},
        "awsRegion": region,
        "image": {"tag": image_tag},
        "rbac": {"serviceAccount": {"create": False, "name": AUTOSCALER_SERVICE_ACCOUNT}},
        "nodeSelector": SYSTEM_POOL_SELECTOR,
        "extraArgs": {
            "balance-similar-node-groups": True,
            "skip-nodes-with-system-pods": False,
            "expander": "least-waste",
            # Neuron nodes take minutes to join and report their devices; do not give up on them early.
            "max-node-provision-time": "25m",
        },
    }


class PlatformCharts(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster: eks.Cluster,
        cluster_name: str,
        versions: ChartVersions,
        vpc_id: str,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        region = stack.region

        self.neuron = self._chart(
            "Neuron",
            cluster,
            chart="neuron-helm-chart",
            repository=NEURON_CHART_REPOSITORY,
            version=versions.neuron,
            release="neuron",
            values=neuron_chart_values(),
        )

        lbc_account = self._service_account(cluster, "LoadBalancerControllerServiceAccount", LBC_SERVICE_ACCOUNT)
        lbc_policy = iam.Policy(
            self,
            "LoadBalancerControllerPolicy",
            document=iam.PolicyDocument.from_json(load_lbc_policy()),
            roles=[lbc_account.role],
        )
        self._acknowledge_lbc_policy(lbc_policy)
        self.load_balancer_controller = self._chart(
            "LoadBalancerController",
            cluster,
            chart="aws-load-balancer-controller",
            repository="https://aws.github.io/eks-charts",
            version=versions.aws_load_balancer_controller,
            release="aws-load-balancer-controller",
            values=load_balancer_controller_values(cluster_name=cluster.cluster_name, region=region, vpc_id=vpc_id),
        )
        self.load_balancer_controller.node.add_dependency(lbc_account)

        self.metrics_server = self._chart(
            "MetricsServer",
            cluster,
            chart="metrics-server",
            repository="https://kubernetes-sigs.github.io/metrics-server/",
            version=versions.metrics_server,
            release="metrics-server",
            values=metrics_server_values(),
        )

        autoscaler_account = self._service_account(
            cluster, "ClusterAutoscalerServiceAccount", AUTOSCALER_SERVICE_ACCOUNT
        )
        autoscaler_account.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ScaleOwnNodeGroups",
                actions=["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
                resources=["*"],
                conditions={"StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"}},
            )
        )
        autoscaler_account.add_to_principal_policy(
            iam.PolicyStatement(
                sid="DiscoverNodeGroups",
                actions=[
                    "autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:DescribeAutoScalingInstances",
                    "autoscaling:DescribeLaunchConfigurations",
                    "autoscaling:DescribeScalingActivities",
                    "autoscaling:DescribeTags",
                    "ec2:DescribeImages",
                    "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplateVersions",
                    "ec2:GetInstanceTypesFromInstanceRequirements",
                    "eks:DescribeNodegroup",
                ],
                resources=["*"],
            )
        )
        Validations.of(autoscaler_account.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="The autoscaler discovers groups with Describe* calls that take no resource; scaling calls are "
                "limited by the cluster-owned tag condition because group ARNs contain a generated id.",
            )
        )
        self.cluster_autoscaler = self._chart(
            "ClusterAutoscaler",
            cluster,
            chart="cluster-autoscaler",
            repository="https://kubernetes.github.io/autoscaler",
            version=versions.cluster_autoscaler,
            release="cluster-autoscaler",
            values=cluster_autoscaler_values(
                cluster_name=cluster.cluster_name, region=region, image_tag=versions.cluster_autoscaler_image_tag
            ),
        )
        self.cluster_autoscaler.node.add_dependency(autoscaler_account)

    def _chart(
        self,
        construct_id: str,
        cluster: eks.Cluster,
        *,
        chart: str,
        repository: str,
        version: str,
        release: str,
        values: dict,
    ) -> eks.HelmChart:
        """Every platform chart is pinned and lives in kube-system."""
        return eks.HelmChart(
            self,
            construct_id,
            cluster=cluster,
            chart=chart,
            repository=repository,
            version=version,
            release=release,
            namespace="kube-system",
            values=values,
        )

    def _service_account(self, cluster: eks.Cluster, construct_id: str, name: str) -> eks.ServiceAccount:
        return eks.ServiceAccount(
            self,
            construct_id,
            cluster=cluster,
            name=name,
            namespace="kube-system",
            identity_type=eks.IdentityType.POD_IDENTITY,
        )

    def _acknowledge_lbc_policy(self, policy: iam.Policy) -> None:
        """Each wildcard of the controller's upstream policy is one cdk-nag finding; all share one reason."""
        reason = (
            "Upstream AWS Load Balancer Controller policy, pinned by checksum: it creates and tags load balancers, "
            "target groups and security groups whose ARNs are unknown before it runs, guarded by its tag conditions."
        )
        for finding in sorted(_wildcard_findings(load_lbc_policy())):
            Validations.of(policy).acknowledge(Acknowledgment(id=f"AwsSolutions-IAM5[{finding}]", reason=reason))


def _wildcard_findings(policy: dict) -> set[str]:
    findings: set[str] = set()
    for statement in policy["Statement"]:
        for action in _as_list(statement["Action"]):
            if "*" in action:
                findings.add(f"Action::{action}")
        for resource in _as_list(statement.get("Resource", [])):
            if "*" in resource:
                findings.add(f"Resource::{resource}")
    return findings


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value
