"""Puts the Cluster Autoscaler's node-template tags on a managed node group's Auto Scaling group.

EKS does not copy node-group tags to the group's ASG, and the autoscaler reads extended resources
(`aws.amazon.com/neuroncore`) for a pool at zero nodes only from ASG tags. The ASG's name exists
only after EKS creates it, so one SDK call reads it from DescribeNodegroup and a second one tags it.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Acknowledgment, ArnFormat, Stack, Validations
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks.common.nag_environment import nag_environment

ASG_NAME_PATH = "nodegroup.resources.autoScalingGroups.0.name"
ASG_RESOURCE_NAME = "*:autoScalingGroupName/eks-*"


class AutoscalerNodeTemplateTags(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster_name: str,
        nodegroup: eks.Nodegroup,
        tags: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        describe_call = cr.AwsSdkCall(
            service="EKS",
            action="describeNodegroup",
            parameters={"clusterName": cluster_name, "nodegroupName": nodegroup.nodegroup_name},
            physical_resource_id=cr.PhysicalResourceId.of(f"{construct_id}-asg-name"),
            output_paths=[ASG_NAME_PATH],
        )
        lookup = cr.AwsCustomResource(
            self,
            "AsgName",
            on_create=describe_call,
            on_update=describe_call,
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [iam.PolicyStatement(actions=["eks:DescribeNodegroup"], resources=[nodegroup.nodegroup_arn])]
            ),
            install_latest_aws_sdk=False,
        )
        asg_name = lookup.get_response_field(ASG_NAME_PATH)
        tag_call = cr.AwsSdkCall(
            service="AutoScaling",
            action="createOrUpdateTags",
            parameters={
                "Tags": [
                    {
                        "ResourceId": asg_name,
                        "ResourceType": "auto-scaling-group",
                        "Key": key,
                        "Value": value,
                        "PropagateAtLaunch": False,
                    }
                    for key, value in sorted(tags.items())
                ]
            },
            physical_resource_id=cr.PhysicalResourceId.of(f"{construct_id}-asg-tags"),
        )
        tagger = cr.AwsCustomResource(
            self,
            "AsgTags",
            on_create=tag_call,
            on_update=tag_call,
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [
                    iam.PolicyStatement(
                        actions=["autoscaling:CreateOrUpdateTags"],
                        # EKS names the group eks-<node group>-<uuid>; only the cluster's own groups may be tagged.
                        resources=[
                            stack.format_arn(
                                service="autoscaling",
                                resource="autoScalingGroup",
                                resource_name=ASG_RESOURCE_NAME,
                                arn_format=ArnFormat.COLON_RESOURCE_NAME,
                            )
                        ],
                        conditions={"StringEquals": {"aws:ResourceTag/eks:cluster-name": cluster_name}},
                    )
                ]
            ),
            install_latest_aws_sdk=False,
        )
        Validations.of(tagger.node.find_child("CustomResourcePolicy")).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{_asg_arn_as_nag_names_it(stack)}]",
                reason="EKS names a node group's Auto Scaling group eks-<node group>-<uuid>, unknown before it exists; "
                "tagging is limited to groups carrying this cluster's eks:cluster-name tag.",
            )
        )


def _asg_arn_as_nag_names_it(stack: Stack) -> str:
    env = nag_environment(stack)
    return f"arn:{env.partition}:autoscaling:{env.region}:{env.account}:autoScalingGroup:{ASG_RESOURCE_NAME}"
