"""Platform software from Helm charts at pinned versions: the Neuron device plugin (and, when a
service needs it, the scheduler extension), the NVIDIA device plugin (when a GPU pool exists), the EFA
device plugin (when a pool has EFA), the AWS
Load Balancer Controller, metrics-server and KEDA. Karpenter is in stacks/cluster/karpenter.py.

Controllers run on the Graviton `system` node group (node selector, CriticalAddonsOnly toleration).
None of them tolerates the Neuron or GPU taint, so none can land on an accelerator node, except the device
plugins, which must run on the accelerator nodes. The Neuron scheduler extension runs on the x86 system
node group: its extender image is not confirmed for arm64, and a scheduler on nodes that only
exist once it has scheduled something would deadlock.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.cluster.addons import pod_identity_conditions, pod_identity_role
from stacks.cluster.load_balancer_controller_policy import controller_policy
from stacks.common.nag_environment import nag_environment
from stacks.config.cluster import ChartVersions
from tessera_shared.constants import (
    ACCELERATOR_LABEL,
    CRITICAL_ADDONS_TAINT_KEY,
    GPU_TAINT_KEY,
    NEURON_TAINT_KEY,
    POOL_LABEL,
    SCHEDULER_POOL,
    SYSTEM_POOL,
    TARGET_GROUP_OWNER_TAG,
)

SYSTEM_POOL_SELECTOR = {POOL_LABEL: SYSTEM_POOL, "kubernetes.io/arch": "arm64"}
SCHEDULER_POOL_SELECTOR = {POOL_LABEL: SCHEDULER_POOL, "kubernetes.io/arch": "amd64"}
CRITICAL_ADDONS_TOLERATION = {"key": CRITICAL_ADDONS_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
NEURON_TOLERATION = {"key": NEURON_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
NEURON_CHART_REPOSITORY = "oci://public.ecr.aws/neuron/neuron-helm-chart"
NVIDIA_CHART_REPOSITORY = "https://nvidia.github.io/k8s-device-plugin"
LBC_POLICY_FILE = Path(__file__).parent / "data" / "aws-load-balancer-controller-iam-policy.json"
LBC_POLICY_SHA256 = "16f232c9d9f79366fe949c4550ad517a202380058a9e48d45a4e215044a20a6a"
LBC_SERVICE_ACCOUNT = "aws-load-balancer-controller"
EFA_CHART_REPOSITORY = "https://aws.github.io/eks-charts"
KEDA_CHART_REPOSITORY = "https://kedacore.github.io/charts"
KEDA_NAMESPACE = "keda"
# The chart's own operator ServiceAccount (values `serviceAccount.operator.name`, created by the chart).
KEDA_OPERATOR_SERVICE_ACCOUNT = "keda-operator"


def load_lbc_policy() -> dict:
    """The controller's published IAM policy, refused if it is not the file we reviewed. Not granted: it is
    the reference Tessera's own policy (load_balancer_controller_policy.py) takes its actions from."""
    raw = LBC_POLICY_FILE.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != LBC_POLICY_SHA256:
        raise ValueError(f"{LBC_POLICY_FILE.name}: sha256 {digest} does not match the reviewed {LBC_POLICY_SHA256}")
    return json.loads(raw)


def neuron_chart_values(*, scheduler: bool, kube_scheduler_image: str) -> dict:
    repository, tag = kube_scheduler_image.rsplit(":", 1)
    placement = {"nodeSelector": SCHEDULER_POOL_SELECTOR, "tolerations": [CRITICAL_ADDONS_TOLERATION]}
    return {
        "devicePlugin": {"enabled": True},  # the chart's own node affinity keeps it on Neuron instance types
        "scheduler": {
            "enabled": scheduler,
            **placement,
            "customScheduler": {
                "enabled": scheduler,
                # The chart's default is a 1.31 build; kube-scheduler must match the API server's minor.
                "image": {"repository": repository, "tag": tag},
                **placement,
            },
        },
        # Karpenter's node repair reads AcceleratedHardwareReady from the node monitoring agent, not NPD's NeuronHealth.
        "npd": {"enabled": False},
    }


def nvidia_device_plugin_values() -> dict:
    """The chart's default affinity (0.20.0 values.yaml) wants labels from Node Feature Discovery, which Tessera
    does not run; its nodeAffinity is replaced (Helm replaces lists) by Tessera's GPU label, which Karpenter puts
    on every node of a GPU pool. Its default tolerations include CriticalAddonsOnly, which would let it onto the
    system nodes were the affinity ever widened: only the GPU taint is tolerated."""
    return {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": ACCELERATOR_LABEL, "operator": "In", "values": ["gpu"]}]}
                    ]
                }
            }
        },
        "tolerations": [GPU_TOLERATION],
    }


def efa_device_plugin_values() -> dict:
    """The chart's DaemonSet runs only on EFA instance types (its own affinity); accelerator nodes are tainted."""
    return {"tolerations": [NEURON_TOLERATION, GPU_TOLERATION]}


def load_balancer_controller_values(*, cluster_name: str, region: str, vpc_id: str) -> dict:
    return {
        "clusterName": cluster_name,
        "region": region,
        "vpcId": vpc_id,
        "replicaCount": 2,
        "serviceAccount": {"create": False, "name": LBC_SERVICE_ACCOUNT},
        "nodeSelector": SYSTEM_POOL_SELECTOR,
        "tolerations": [CRITICAL_ADDONS_TOLERATION],
        # The chart's container defaults (non-root, read-only root, no escalation) plus what its values leave
        # commented out: no capabilities and the runtime's default seccomp profile.
        "securityContext": {
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # Tessera's services are bound through TargetGroupBinding only; the controller never owns a load balancer.
        # Its Ingress reconciler cannot be turned off (the IAM policy is the guard), but nothing invites it: no
        # IngressClass (nor IngressClassParams), no new use of the ingress.class annotation, no default for
        # type LoadBalancer Services, no Service controller, no Gateway API (all three gates set, so the
        # controller skips its CRD detection), no backend security group.
        "createIngressClassResource": False,
        "disableIngressClassAnnotation": True,
        "enableServiceMutatorWebhook": False,
        "enableBackendSecurityGroup": False,
        "controllerConfig": {
            "featureGates": {
                "EnableServiceController": False,
                "ALBGatewayAPI": False,
                "NLBGatewayAPI": False,
                "GatewayListenerSet": False,
            }
        },
    }


def metrics_server_values() -> dict:
    return {"replicas": 2, "nodeSelector": SYSTEM_POOL_SELECTOR, "tolerations": [CRITICAL_ADDONS_TOLERATION]}


def keda_values() -> dict:
    """The chart's global nodeSelector and tolerations are the fallback of its operator, metrics server and
    webhooks (`.Values.<component>.x | default .Values.x` in each deployment template, chart 2.20.2). The operator
    gets AWS credentials from its Pod Identity association (no IRSA annotation: `podIdentity.aws.irsa` stays off)."""
    return {"nodeSelector": SYSTEM_POOL_SELECTOR, "tolerations": [CRITICAL_ADDONS_TOLERATION]}


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
        neuron_scheduler: bool,
        efa: bool,
        gpu: bool = False,
        prometheus_workspace_arn: str | None = None,
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
            values=neuron_chart_values(
                scheduler=neuron_scheduler, kube_scheduler_image=versions.neuron_kube_scheduler_image
            ),
        )
        self.nvidia = None
        if gpu:
            self.nvidia = self._chart(
                "NvidiaDevicePlugin",
                cluster,
                chart="nvidia-device-plugin",
                repository=NVIDIA_CHART_REPOSITORY,
                version=versions.nvidia_device_plugin,
                release="nvidia-device-plugin",
                values=nvidia_device_plugin_values(),
            )
        self.efa = None
        if efa:
            self.efa = self._chart(
                "EfaDevicePlugin",
                cluster,
                chart="aws-efa-k8s-device-plugin",
                repository=EFA_CHART_REPOSITORY,
                version=versions.efa_device_plugin,
                release="aws-efa-k8s-device-plugin",
                values=efa_device_plugin_values(),
            )

        lbc_account = self._service_account(cluster, "LoadBalancerControllerServiceAccount", LBC_SERVICE_ACCOUNT)
        # The L2 ServiceAccount makes its own role with an unconditioned Pod Identity trust; narrow it to this
        # cluster's controller service account.
        lbc_account.role.node.default_child.add_property_override(
            "AssumeRolePolicyDocument.Statement.0.Condition",
            pod_identity_conditions(
                cluster_name=cluster_name, namespace="kube-system", service_account=LBC_SERVICE_ACCOUNT
            ),
        )
        lbc_policy = iam.Policy(
            self,
            "LoadBalancerControllerPolicy",
            document=iam.PolicyDocument.from_json(
                controller_policy(
                    partition=stack.partition, region=region, account=stack.account, cluster_name=cluster_name
                )
            ),
            roles=[lbc_account.role],
        )
        self._acknowledge_lbc_policy(lbc_policy, cluster_name)
        self.load_balancer_controller = self._chart(
            "LoadBalancerController",
            cluster,
            chart="aws-load-balancer-controller",
            repository="https://aws.github.io/eks-charts",
            version=versions.aws_load_balancer_controller,
            release="aws-load-balancer-controller",
            values=load_balancer_controller_values(cluster_name=cluster.cluster_name, region=region, vpc_id=vpc_id),
        )
        # The controller's pods start with credentials (its Pod Identity association) and its permissions.
        self.load_balancer_controller.node.add_dependency(lbc_account)
        self.load_balancer_controller.node.add_dependency(lbc_policy)

        self.metrics_server = self._chart(
            "MetricsServer",
            cluster,
            chart="metrics-server",
            repository="https://kubernetes-sigs.github.io/metrics-server/",
            version=versions.metrics_server,
            release="metrics-server",
            values=metrics_server_values(),
        )
        self.keda = self._keda(cluster, cluster_name, versions.keda, prometheus_workspace_arn)

    def _keda(
        self, cluster: eks.Cluster, cluster_name: str, version: str, prometheus_workspace_arn: str | None
    ) -> eks.HelmChart:
        """KEDA in its own namespace; its operator reads CloudWatch, and the Prometheus workspace when there is one,
        for the services' triggers as itself (TriggerAuthentication `podIdentity.provider: aws`)."""
        role = pod_identity_role(
            self,
            "KedaOperatorRole",
            description="KEDA operator: reads CloudWatch metrics",
            cluster_name=cluster_name,
            namespace=KEDA_NAMESPACE,
            service_account=KEDA_OPERATOR_SERVICE_ACCOUNT,
        )
        # GetMetricData takes no resource-level permissions.
        statements = [iam.PolicyStatement(actions=["cloudwatch:GetMetricData"], resources=["*"])]
        if prometheus_workspace_arn is not None:
            # The prometheus scaler only GETs `<serverAddress>/api/v1/query`, SigV4-signed for service aps
            # (pkg/scalers/prometheus_scaler.go, pkg/scalers/aws/aws_sigv4.go at v2.20.2): QueryMetrics.
            statements.append(iam.PolicyStatement(actions=["aps:QueryMetrics"], resources=[prometheus_workspace_arn]))
        policy = iam.Policy(self, "KedaOperatorPolicy", statements=statements, roles=[role])
        Validations.of(policy).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="cloudwatch:GetMetricData supports no resource-level permissions; the role may only read "
                "metrics (the services' triggers).",
            )
        )
        association = eks.CfnPodIdentityAssociation(
            self,
            "KedaOperatorPodIdentity",
            cluster_name=cluster.cluster_name,
            namespace=KEDA_NAMESPACE,
            service_account=KEDA_OPERATOR_SERVICE_ACCOUNT,
            role_arn=role.role_arn,
        )
        chart = eks.HelmChart(
            self,
            "Keda",
            cluster=cluster,
            chart="keda",
            repository=KEDA_CHART_REPOSITORY,
            version=version,
            release="keda",
            namespace=KEDA_NAMESPACE,
            create_namespace=True,
            values=keda_values(),
        )
        # The operator's pods must start with credentials (Pod Identity mutates pods only at creation).
        chart.node.add_dependency(association)
        chart.node.add_dependency(policy)
        return chart

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

    def _acknowledge_lbc_policy(self, policy: iam.Policy, cluster_name: str) -> None:
        """One reason per wildcard, each true of the statement that carries it."""
        env = nag_environment(Stack.of(self))
        target_groups = f"arn:{env.partition}:elasticloadbalancing:{env.region}:{env.account}:targetgroup/*/*"
        Validations.of(policy).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="DescribeVpcs, DescribeAvailabilityZones, DescribeTargetGroups and DescribeTargetHealth "
                "support no resource-level permissions; they only read.",
            ),
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{target_groups}]",
                reason=f"Register/DeregisterTargets on target groups the Services stack creates later, limited by "
                f"an aws:ResourceTag condition to those tagged {TARGET_GROUP_OWNER_TAG}={cluster_name}.",
            ),
        )


def wildcard_findings(policy: dict) -> set[str]:
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
