"""The cluster's EKS managed node groups: the Graviton `system` group that runs Karpenter, CoreDNS and
the controllers, and (only when a service needs the Neuron scheduler extension) a small x86 group for
it. Every other node comes from Karpenter (stacks/cluster/karpenter.py).

Nothing autoscales these groups: their size is one number from config that CloudFormation owns. They
carry the `CriticalAddonsOnly` taint, so only controllers that tolerate it run there. Each has its own
launch template (IMDSv2 required, encrypted gp3 root volume, hop limit from config), node auto-repair
and a bounded update.
"""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from tessera_shared.constants import ACCELERATOR_LABEL, CRITICAL_ADDONS_TAINT_KEY, POOL_LABEL

ROOT_DEVICE = "/dev/xvda"


class SystemNodegroup(Construct):
    """A fixed-size managed node group for cluster components, tainted CriticalAddonsOnly."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster: eks.ICluster,
        name: str,
        instance_types: list[str],
        nodes: int,
        ami_type: eks.NodegroupAmiType,
        node_role: iam.IRole,
        subnets: ec2.SubnetSelection,
        disk_size_gib: int = 50,
        imds_hop_limit: int = 1,
        max_unavailable: int = 1,
    ) -> None:
        super().__init__(scope, construct_id)
        self.labels = {POOL_LABEL: name, ACCELERATOR_LABEL: "cpu"}
        launch_template = _launch_template(self, disk_size_gib=disk_size_gib, imds_hop_limit=imds_hop_limit)
        self.nodegroup = eks.Nodegroup(
            self,
            "Nodegroup",
            cluster=cluster,
            nodegroup_name=name,
            instance_types=[ec2.InstanceType(instance_type) for instance_type in instance_types],
            ami_type=ami_type,
            capacity_type=eks.CapacityType.ON_DEMAND,
            min_size=nodes,
            desired_size=nodes,
            max_size=nodes,
            labels=self.labels,
            taints=[eks.TaintSpec(effect=eks.TaintEffect.NO_SCHEDULE, key=CRITICAL_ADDONS_TAINT_KEY, value="true")],
            launch_template_spec=eks.LaunchTemplateSpec(
                id=launch_template.launch_template_id, version=launch_template.latest_version_number
            ),
            node_role=node_role,
            subnets=subnets,
            enable_node_auto_repair=True,
            max_unavailable=max_unavailable,
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
