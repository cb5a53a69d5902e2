"""Karpenter: the controller (Helm, Pod Identity), its node role, the interruption queue and the
node classes and pools rendered from config (stacks/cluster/karpenter_objects.py).

CRDs come from the `karpenter-crd` chart, installed first: Helm installs a chart's `crds/` only when they
are absent and never upgrades them, while the CRD chart's templates are upgraded with it, which Karpenter's
upgrade guide asks for. The main chart's own `crds/` then find the CRDs present and change nothing (CDK's
kubectl handler cannot pass `--skip-crds`: it reads `SkipCrds` and drops it).
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, Stack, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.cluster.addons import pod_identity_role
from stacks.cluster.karpenter_objects import (
    NodeClassContext,
    accelerator_pool_objects,
    general_pool_objects,
    node_pools_allow_spot,
)
from stacks.cluster.karpenter_policy import controller_policies, interruption_rules
from stacks.cluster.node_policies import node_managed_policies
from stacks.cluster.platform_charts import wildcard_findings
from stacks.cluster.spot_role import SpotServiceLinkedRole
from stacks.common.construct_ids import pascal_case
from stacks.common.nag_environment import nag_environment
from stacks.config.cluster import ClusterConfig
from tessera_shared.constants import POOL_LABEL, SYSTEM_POOL

KARPENTER_NAMESPACE = "kube-system"
KARPENTER_SERVICE_ACCOUNT = "karpenter"
KARPENTER_REPOSITORY = "oci://public.ecr.aws/karpenter"


def karpenter_values(*, cluster_name: str, queue_name: str, region: str) -> dict:
    return {
        "settings": {
            "clusterName": cluster_name,
            "interruptionQueue": queue_name,
            # Replace nodes whose accelerator the node monitoring agent reports as faulty (AcceleratedHardwareReady).
            "featureGates": {"nodeRepair": True},
        },
        "serviceAccount": {"create": True, "name": KARPENTER_SERVICE_ACCOUNT},
        # The chart already tolerates CriticalAddonsOnly and keeps off Karpenter's own nodes.
        "nodeSelector": {POOL_LABEL: SYSTEM_POOL, "kubernetes.io/arch": "arm64"},
        # The VPC resolver, not CoreDNS: Karpenter must work before any node it launches exists.
        "dnsPolicy": "Default",
        "controller": {
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}},
            # Without it Karpenter asks instance metadata for the region at start-up, which pods cannot reach
            # (hop limit 1 on every node); Pod Identity provides credentials but no region.
            "env": [{"name": "AWS_REGION", "value": region}],
        },
    }


class Karpenter(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster: eks.Cluster,
        cluster_name: str,
        settings: ClusterConfig,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.node_role = self._node_role(session_manager=settings.node_session_manager)
        # Karpenter's nodes join through this entry; the managed node group's role gets its own from EKS.
        eks.AccessEntry(
            self,
            "NodeAccess",
            cluster=cluster,
            principal=self.node_role.role_arn,
            access_entry_type=eks.AccessEntryType.EC2_LINUX,
            access_policies=[],
        )
        self.queue = self._interruption_queue()

        role = pod_identity_role(
            self,
            "ControllerRole",
            description="Pod Identity role of the Karpenter controller",
            cluster_name=cluster_name,
            namespace=KARPENTER_NAMESPACE,
            service_account=KARPENTER_SERVICE_ACCOUNT,
        )
        tokens = {
            "ClusterName": cluster_name,
            "AWS::Partition": stack.partition,
            "AWS::Region": stack.region,
            "AWS::AccountId": stack.account,
            "KarpenterNodeRole.Arn": self.node_role.role_arn,
            "KarpenterInterruptionQueue.Arn": self.queue.queue_arn,
        }
        self.policies = [
            iam.ManagedPolicy(
                self,
                f"Controller{name}",
                description=f"Karpenter controller: {name} (from Karpenter's own template)",
                document=iam.PolicyDocument.from_json(document),
                roles=[role],
            )
            for name, document in controller_policies(tokens).items()
        ]
        self._acknowledge_wildcards(stack, cluster_name)
        self.pod_identity = eks.CfnPodIdentityAssociation(
            self,
            "PodIdentity",
            cluster_name=cluster.cluster_name,
            namespace=KARPENTER_NAMESPACE,
            service_account=KARPENTER_SERVICE_ACCOUNT,
            role_arn=role.role_arn,
        )

        self.crds = eks.HelmChart(
            self,
            "Crds",
            cluster=cluster,
            chart="karpenter-crd",
            repository=f"{KARPENTER_REPOSITORY}/karpenter-crd",
            version=settings.charts.karpenter,
            release="karpenter-crd",
            namespace=KARPENTER_NAMESPACE,
        )
        self.chart = eks.HelmChart(
            self,
            "Chart",
            cluster=cluster,
            chart="karpenter",
            repository=f"{KARPENTER_REPOSITORY}/karpenter",
            version=settings.charts.karpenter,
            release="karpenter",
            namespace=KARPENTER_NAMESPACE,
            values=karpenter_values(cluster_name=cluster_name, queue_name=self.queue.queue_name, region=stack.region),
        )
        # Credentials exist before the controller's pods do (Pod Identity mutates pods only at creation).
        for prerequisite in (self.crds, self.pod_identity, *self.policies):
            self.chart.node.add_dependency(prerequisite)

        context = NodeClassContext(
            cluster_name=cluster_name,
            node_role_name=self.node_role.role_name,
            security_group_id=cluster.cluster_security_group_id,
            ami_alias=settings.node_ami_alias,
        )
        objects = general_pool_objects(settings.general_pool, context)
        for pool in settings.accelerator_pools:
            placement_group = None
            if pool.efa is not None:
                group = ec2.PlacementGroup(
                    self, f"{pascal_case(pool.name)}PlacementGroup", strategy=ec2.PlacementGroupStrategy.CLUSTER
                )
                placement_group = group.placement_group_name
            objects += accelerator_pool_objects(pool, context, placement_group=placement_group)
        self.pools = eks.KubernetesManifest(self, "NodePools", cluster=cluster, manifest=objects, overwrite=True)
        self.pools.node.add_dependency(self.crds)
        self.pools.node.add_dependency(self.chart)
        self.spot_role: SpotServiceLinkedRole | None = None
        if node_pools_allow_spot(objects):
            # Without the role every Spot launch fails; the pools exist only once it does.
            self.spot_role = SpotServiceLinkedRole(self, "SpotServiceLinkedRole")
            self.pools.node.add_dependency(self.spot_role)

    def _node_role(self, *, session_manager: bool) -> iam.Role:
        role = iam.Role(
            self,
            "NodeRole",
            description="EC2 role of the nodes Karpenter launches (pods get their own permissions from Pod Identity)",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
        )
        for policy, reason in node_managed_policies(session_manager=session_manager).items():
            role.add_managed_policy(iam.ManagedPolicy.from_aws_managed_policy_name(policy))
            Validations.of(role).acknowledge(
                Acknowledgment(
                    id=f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{policy}]", reason=reason
                )
            )
        return role

    def _interruption_queue(self) -> sqs.Queue:
        queue = sqs.Queue(
            self,
            "InterruptionQueue",
            retention_period=Duration.minutes(5),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        Validations.of(queue).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SQS3",
                reason="Interruption notices matter only for the minutes before the instance goes; Karpenter "
                "deletes what it handles and a dead-letter queue of stale notices would serve nobody.",
            )
        )
        for name, pattern in interruption_rules().items():
            events.Rule(
                self,
                name,
                description=f"Karpenter interruption handling: {name}",
                event_pattern=events.EventPattern(source=pattern["source"], detail_type=pattern["detail-type"]),
                targets=[targets.SqsQueue(queue)],
            )
        return queue

    def _acknowledge_wildcards(self, stack: Stack, cluster_name: str) -> None:
        """cdk-nag names each wildcard of the upstream policies; all share one reason."""
        env = nag_environment(stack)
        names = {
            "ClusterName": cluster_name,
            "AWS::Partition": env.partition,
            "AWS::Region": env.region,
            "AWS::AccountId": env.account,
            "KarpenterNodeRole.Arn": "node-role",
            "KarpenterInterruptionQueue.Arn": "queue",
        }
        reason = (
            "Karpenter's own controller policy, pinned by checksum: instances, fleets, launch templates and instance "
            "profiles it creates have ids unknown before launch; its tag conditions scope them to this cluster."
        )
        for policy, document in zip(self.policies, controller_policies(names).values(), strict=True):
            for finding in sorted(wildcard_findings(document)):
                Validations.of(policy).acknowledge(Acknowledgment(id=f"AwsSolutions-IAM5[{finding}]", reason=reason))
