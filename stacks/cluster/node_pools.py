"""EKS managed node groups for Tessera's pools, built from config.

Every pool gets its own launch template (IMDSv2 required, encrypted gp3 root volume, hop limit from
config), node auto-repair and a bounded update. Graviton pools run AL2023 arm64. Accelerator pools
run the AL2023 Neuron AMI, carry the `aws.amazon.com/neuron=true:NoSchedule` taint so that only
Neuron workloads land there, and may use EFA (launch template interfaces, a cluster placement
group, one AZ). Node groups are built with `Nodegroup` directly: `add_nodegroup_capacity()` would
add CDK's own, outdated Neuron device plugin next to the one from the Neuron Helm chart.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Annotations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.config.cluster import AcceleratorPoolConfig, GravitonPoolConfig
from tessera_shared.constants import (
    ACCELERATOR_LABEL,
    NEURON_DEVICE_RESOURCE,
    NEURON_TAINT_KEY,
    NEURONCORE_RESOURCE,
    POOL_LABEL,
)

NEURON_TAINT_VALUE = "true"
# The CloudFormation string; 2.275's NodegroupAmiType check rejects it for trn1/trn1n/trn2 types.
NEURON_AMI_TYPE = "AL2023_x86_64_NEURON"
ROOT_DEVICE = "/dev/xvda"

CAPACITY_TYPES = {
    "on_demand": eks.CapacityType.ON_DEMAND,
    "spot": eks.CapacityType.SPOT,
    "capacity_block": eks.CapacityType.CAPACITY_BLOCK,
}


@dataclass(frozen=True)
class NodeTemplate:
    """What a node of a pool looks like to the scheduler, for the Cluster Autoscaler's scale-from-zero tags."""

    labels: dict[str, str]
    taints: dict[str, str]  # key -> "value:Effect"
    resources: dict[str, int]

    def autoscaler_tags(self) -> dict[str, str]:
        prefix = "k8s.io/cluster-autoscaler/node-template"
        tags = {f"{prefix}/label/{key}": value for key, value in self.labels.items()}
        tags |= {f"{prefix}/taint/{key}": value for key, value in self.taints.items()}
        tags |= {f"{prefix}/resources/{key}": str(count) for key, count in self.resources.items()}
        return tags


@dataclass(frozen=True)
class NodePool:
    name: str
    nodegroup: eks.Nodegroup
    template: NodeTemplate


def graviton_node_template(name: str) -> NodeTemplate:
    return NodeTemplate(labels={POOL_LABEL: name, ACCELERATOR_LABEL: "cpu"}, taints={}, resources={})


def accelerator_node_template(pool: AcceleratorPoolConfig) -> NodeTemplate:
    smallest = pool.smallest_instance
    return NodeTemplate(
        labels={POOL_LABEL: pool.name, ACCELERATOR_LABEL: pool.accelerator},
        taints={NEURON_TAINT_KEY: f"{NEURON_TAINT_VALUE}:NoSchedule"},
        resources={NEURONCORE_RESOURCE: smallest.cores, NEURON_DEVICE_RESOURCE: smallest.chips},
    )


class GravitonPool(Construct):
    """A Graviton (arm64, AL2023) managed node group."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster: eks.ICluster,
        name: str,
        settings: GravitonPoolConfig,
        node_role: iam.IRole,
        subnets: ec2.SubnetSelection,
    ) -> None:
        super().__init__(scope, construct_id)
        self.template = graviton_node_template(name)
        launch_template = _launch_template(
            self, disk_size_gib=settings.disk_size_gib, imds_hop_limit=settings.imds_hop_limit
        )
        self.nodegroup = eks.Nodegroup(
            self,
            "Nodegroup",
            cluster=cluster,
            nodegroup_name=f"{name}-graviton",
            instance_types=[ec2.InstanceType(instance_type) for instance_type in settings.instance_types],
            ami_type=eks.NodegroupAmiType.AL2023_ARM_64_STANDARD,
            capacity_type=eks.CapacityType.ON_DEMAND,
            min_size=settings.min_size,
            desired_size=settings.desired_size,
            max_size=settings.max_size,
            labels=self.template.labels,
            launch_template_spec=_spec(launch_template),
            node_role=node_role,
            subnets=subnets,
            enable_node_auto_repair=True,
            max_unavailable=settings.max_unavailable,
        )


class AcceleratorPool(Construct):
    """A Trainium or Inferentia2 managed node group on the AL2023 Neuron AMI."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster: eks.Cluster,
        settings: AcceleratorPoolConfig,
        node_role: iam.IRole,
        subnets: ec2.SubnetSelection,
    ) -> None:
        super().__init__(scope, construct_id)
        self.template = accelerator_node_template(settings)
        launch_template = _launch_template(
            self, disk_size_gib=settings.disk_size_gib, imds_hop_limit=settings.imds_hop_limit
        )
        data = launch_template.node.default_child
        if settings.capacity.type == "capacity_block":
            # The L2 LaunchTemplate has no capacity-block options; EKS requires both in the template.
            data.add_property_override("LaunchTemplateData.InstanceMarketOptions", {"MarketType": "capacity-block"})
            data.add_property_override(
                "LaunchTemplateData.CapacityReservationSpecification",
                {"CapacityReservationTarget": {"CapacityReservationId": settings.capacity.reservation_id}},
            )
        if settings.efa is not None:
            self.placement_group = ec2.PlacementGroup(
                self, "PlacementGroup", strategy=ec2.PlacementGroupStrategy.CLUSTER
            )
            # The L2 LaunchTemplate cannot declare EFA interfaces; one per network card, as the type allows.
            interfaces = max(spec.efa_interfaces for spec in settings.instance_specs)
            data.add_property_override(
                "LaunchTemplateData.NetworkInterfaces",
                [
                    {
                        "DeviceIndex": 0 if card == 0 else 1,
                        "NetworkCardIndex": card,
                        "InterfaceType": "efa",
                        "DeleteOnTermination": True,
                        "Groups": [cluster.cluster_security_group_id],
                    }
                    for card in range(interfaces)
                ],
            )
            data.add_property_override(
                "LaunchTemplateData.Placement", {"GroupName": self.placement_group.placement_group_name}
            )
            subnets = ec2.SubnetSelection(
                subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, availability_zones=[settings.efa.availability_zone]
            )

        self.nodegroup = eks.Nodegroup(
            self,
            "Nodegroup",
            cluster=cluster,
            nodegroup_name=f"{settings.name}-{settings.family}",
            instance_types=[ec2.InstanceType(instance_type) for instance_type in settings.instance_types],
            capacity_type=CAPACITY_TYPES[settings.capacity.type],
            min_size=settings.min_size,
            desired_size=settings.desired_size,
            max_size=settings.max_size,
            labels=self.template.labels,
            taints=[eks.TaintSpec(effect=eks.TaintEffect.NO_SCHEDULE, key=NEURON_TAINT_KEY, value=NEURON_TAINT_VALUE)],
            launch_template_spec=_spec(launch_template),
            node_role=node_role,
            subnets=subnets,
            enable_node_auto_repair=True,
            max_unavailable=settings.max_unavailable,
        )
        self.nodegroup.node.default_child.add_property_override("AmiType", NEURON_AMI_TYPE)
        Annotations.of(self.nodegroup).acknowledge_warning(
            "@aws-cdk/aws-eks:gpuInstancesUseAL2", "AmiType is set to AL2023_x86_64_NEURON just above."
        )


def _launch_template(scope: Construct, *, disk_size_gib: int, imds_hop_limit: int) -> ec2.LaunchTemplate:
    template = ec2.LaunchTemplate(
        scope,
        "LaunchTemplate",
        require_imdsv2=True,
        http_put_response_hop_limit=imds_hop_limit,
        block_devices=[
            ec2.BlockDevice(
                device_name=ROOT_DEVICE,
                volume=ec2.BlockDeviceVolume.ebs(
                    disk_size_gib,
                    volume_type=ec2.EbsDeviceVolumeType.GP3,
                    encrypted=True,
                    delete_on_termination=True,
                ),
            )
        ],
    )
    # EKS writes the AL2023 node bootstrap itself; a launch template with user data of its own must be
    # MIME multipart, so CDK's default empty user data is removed.
    template.node.default_child.add_property_deletion_override("LaunchTemplateData.UserData")
    return template


def _spec(template: ec2.LaunchTemplate) -> eks.LaunchTemplateSpec:
    return eks.LaunchTemplateSpec(id=template.launch_template_id, version=template.latest_version_number)
