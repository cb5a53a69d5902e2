"""Point 6: the VPC CNI gets its permissions from Pod Identity, so no node role carries AmazonEKS_CNI_Policy
(a pod that reaches a node's credentials no longer gets the right to rewire the VPC's network interfaces)."""

from __future__ import annotations

import json

from tests.synth import SynthesizedEnvironment

CNI_POLICY = "AmazonEKS_CNI_Policy"


def _ec2_roles(env: SynthesizedEnvironment) -> list[dict]:
    return [
        role["Properties"]
        for role in env.resources("Cluster", "AWS::IAM::Role").values()
        if "ec2.amazonaws.com" in json.dumps(role["Properties"]["AssumeRolePolicyDocument"])
    ]


def test_no_node_role_carries_the_cni_policy(dev: SynthesizedEnvironment) -> None:
    roles = _ec2_roles(dev)
    assert len(roles) == 2  # the managed node groups' and Karpenter's
    for role in roles:
        assert CNI_POLICY not in json.dumps(role.get("ManagedPolicyArns", []))


def test_vpc_cni_uses_pod_identity_with_the_cni_policy(dev: SynthesizedEnvironment) -> None:
    [addon] = [
        a["Properties"]
        for a in dev.resources("Cluster", "AWS::EKS::Addon").values()
        if a["Properties"]["AddonName"] == "vpc-cni"
    ]
    [association] = addon["PodIdentityAssociations"]
    assert association["ServiceAccount"] == "aws-node"
    role = dev.template_json("Cluster")["Resources"][association["RoleArn"]["Fn::GetAtt"][0]]["Properties"]
    assert CNI_POLICY in json.dumps(role["ManagedPolicyArns"])
