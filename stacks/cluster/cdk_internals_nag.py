"""cdk-nag acknowledgments for resources that CDK generates inside the EKS cluster construct.

These roles and functions belong to aws-cdk-lib (the cluster's service role, the kubectl provider);
Tessera cannot change their policies or runtimes, only explain why each finding is acceptable.
Each acknowledgment is put on the one construct it concerns.
"""

from __future__ import annotations

import json

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_eks_v2 as eks
from constructs import IConstruct

BASIC_EXECUTION = (
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]"
)
VPC_EXECUTION = (
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]"
)
LOGS_REASON = "CDK-generated provider function; the managed policy only lets it write its own CloudWatch logs."
VPC_REASON = "CDK-generated kubectl function runs in the private subnets; the managed policy manages its ENIs."


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))


def acknowledge_cluster_internals(cluster: eks.Cluster) -> None:
    stack = Stack.of(cluster)
    acknowledge(
        cluster.role,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonEKSClusterPolicy]",
        "The EKS control plane's service role; AWS maintains AmazonEKSClusterPolicy for exactly this use.",
    )
    provider = cluster.node.find_child("KubectlProvider")
    handler = provider.node.find_child("Handler")
    handler_role = handler.node.find_child("ServiceRole")
    acknowledge(handler_role, BASIC_EXECUTION, LOGS_REASON)
    acknowledge(handler_role, VPC_EXECUTION, VPC_REASON)
    acknowledge(
        handler_role,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly]",
        "CDK's kubectl function pulls Helm charts from private ECR registries with this read-only policy.",
    )
    ecr_public = {
        "Fn::If": [
            stack.get_logical_id(handler.node.find_child("HasEcrPublic")),
            {
                "Fn::Join": [
                    "",
                    [
                        "arn:",
                        {"Ref": "AWS::Partition"},
                        ":iam::aws:policy/AmazonElasticContainerRegistryPublicReadOnly",
                    ],
                ]
            },
            {"Ref": "AWS::NoValue"},
        ]
    }
    acknowledge(
        handler_role,
        f"AwsSolutions-IAM4[Policy::{json.dumps(ecr_public, separators=(',', ':'))}]",
        "CDK's kubectl function pulls the Neuron Helm chart from the ECR Public registry (read-only).",
    )
    acknowledge(
        handler,
        "AwsSolutions-L1",
        "CDK pins the kubectl function's runtime to the one its bundled kubectl/helm layer is built for.",
    )
    on_event = provider.node.find_child("Provider").node.find_child("framework-onEvent")
    on_event_role = on_event.node.find_child("ServiceRole")
    acknowledge(on_event_role, BASIC_EXECUTION, LOGS_REASON)
    acknowledge(on_event_role, VPC_EXECUTION, VPC_REASON)
    handler_arn = f"<{stack.get_logical_id(handler.node.default_child)}.Arn>"
    acknowledge(
        on_event_role.node.find_child("DefaultPolicy"),
        f"AwsSolutions-IAM5[Resource::{handler_arn}:*]",
        "The provider framework invokes any version of its own kubectl function: the ARN suffix is the version.",
    )
