"""Point 6: the VPC CNI gets its permissions from Pod Identity, so no node role carries AmazonEKS_CNI_Policy
(a pod that reaches a node's credentials no longer gets the right to rewire the VPC's network interfaces), and
no pod reaches a node's credentials: hop limit 1 on every node, with the controllers that would otherwise ask
instance metadata given their region and VPC."""

from __future__ import annotations

import json

import pytest

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


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_no_launch_template_lets_pods_reach_instance_metadata(environment: str, request: pytest.FixtureRequest) -> None:
    """Point 6: hop limit 1 on the system pool too, so a pod there cannot take the node's credentials."""
    synthesized: SynthesizedEnvironment = request.getfixturevalue(environment)
    templates = synthesized.resources("Cluster", "AWS::EC2::LaunchTemplate").values()
    assert templates
    for template in templates:
        options = template["Properties"]["LaunchTemplateData"]["MetadataOptions"]
        assert options == {"HttpTokens": "required", "HttpPutResponseHopLimit": 1}


def _chart_values(env: SynthesizedEnvironment, release: str) -> dict:
    """A Helm release's values, CloudFormation references (the region, the VPC id) as `<ref>`."""
    [chart] = [
        c["Properties"]
        for c in env.resources("Cluster", "Custom::AWSCDK-EKS-HelmChart").values()
        if c["Properties"]["Release"] == release
    ]
    values = chart["Values"]
    text = (
        values
        if isinstance(values, str)
        else "".join(part if isinstance(part, str) else "<ref>" for part in values["Fn::Join"][1])
    )
    return json.loads(text)


def test_controllers_on_the_system_pool_are_told_what_they_would_ask_instance_metadata(
    dev: SynthesizedEnvironment,
) -> None:
    """With hop limit 1, a controller that looks up its region or VPC in instance metadata fails at start-up:
    Karpenter reads AWS_REGION before asking IMDS, the load balancer controller its region and vpcId values."""
    karpenter = _chart_values(dev, "karpenter")
    assert {"name": "AWS_REGION", "value": "<ref>"} in karpenter["controller"]["env"]
    controller = _chart_values(dev, "aws-load-balancer-controller")
    assert controller["region"] == "<ref>"
    assert controller["vpcId"] == "<ref>"
