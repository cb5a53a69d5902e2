"""Network stack: what each VPC resource must be."""

from __future__ import annotations

import json

from aws_cdk.assertions import Match

from tests.synth import SynthesizedEnvironment

INTERFACE_SERVICES = ("ecr.api", "ecr.dkr", "sts", "logs", "ec2", "s3")


def test_vpc_uses_the_configured_cidr(dev: SynthesizedEnvironment) -> None:
    dev.template("Network").has_resource_properties(
        "AWS::EC2::VPC", {"CidrBlock": "10.40.0.0/16", "EnableDnsHostnames": True, "EnableDnsSupport": True}
    )


def _groups(env: SynthesizedEnvironment) -> dict[str, list[dict]]:
    """Subnet group name -> its subnets' properties."""
    groups: dict[str, list[dict]] = {}
    for subnet in env.resources("Network", "AWS::EC2::Subnet").values():
        tags = {tag["Key"]: tag["Value"] for tag in subnet["Properties"]["Tags"]}
        groups.setdefault(tags["aws-cdk:subnet-name"], []).append(subnet["Properties"])
    return groups


def test_four_subnet_groups_in_each_of_three_azs(dev: SynthesizedEnvironment) -> None:
    groups = _groups(dev)
    assert {name: len(subnets) for name, subnets in groups.items()} == {
        "public": 3,
        "private": 3,
        "load-balancer": 3,
        "endpoints": 3,
    }
    # Environment-agnostic: zones are the region's first three, chosen at deploy time.
    zones = [s["AvailabilityZone"] for s in groups["private"]]
    assert [zone["Fn::Select"][0] for zone in zones] == [0, 1, 2]
    assert all(zone["Fn::Select"][1] == {"Fn::GetAZs": ""} for zone in zones)
    masks = {name: {s["CidrBlock"].split("/")[1] for s in subnets} for name, subnets in groups.items()}
    # An ALB needs at least a /27 per subnet.
    assert masks == {"public": {"24"}, "private": {"19"}, "load-balancer": {"26"}, "endpoints": {"26"}}


def test_new_subnet_groups_leave_existing_subnets_where_they_were(dev: SynthesizedEnvironment) -> None:
    """CDK allocates CIDRs in group order: the dedicated groups come last, so no deployed subnet is replaced."""
    groups = _groups(dev)
    assert sorted(s["CidrBlock"] for s in groups["public"]) == ["10.40.0.0/24", "10.40.1.0/24", "10.40.2.0/24"]
    assert sorted(s["CidrBlock"] for s in groups["private"]) == ["10.40.32.0/19", "10.40.64.0/19", "10.40.96.0/19"]


def test_load_balancer_subnets_are_public_only_for_an_internet_facing_load_balancer(
    dev: SynthesizedEnvironment, variant: SynthesizedEnvironment
) -> None:
    assert not any(s["MapPublicIpOnLaunch"] for s in _groups(dev)["load-balancer"])
    assert all(s["MapPublicIpOnLaunch"] for s in _groups(variant)["load-balancer"])
    # NAT gateways stay in the public group.
    public_ids = {
        logical_id
        for logical_id, subnet in variant.resources("Network", "AWS::EC2::Subnet").items()
        if {"Key": "aws-cdk:subnet-name", "Value": "public"} in subnet["Properties"]["Tags"]
    }
    for nat in variant.resources("Network", "AWS::EC2::NatGateway").values():
        assert nat["Properties"]["SubnetId"]["Ref"] in public_ids


def test_load_balancer_subnets_carry_the_load_balancer_role_tag(
    dev: SynthesizedEnvironment, variant: SynthesizedEnvironment
) -> None:
    """(CDK's EKS cluster also tags every public and private subnet with these roles.)"""
    for env, role in ((dev, "kubernetes.io/role/internal-elb"), (variant, "kubernetes.io/role/elb")):
        for subnet in _groups(env)["load-balancer"]:
            assert {"Key": role, "Value": "1"} in subnet["Tags"]


def test_nat_gateways_follow_the_environment(dev: SynthesizedEnvironment, prod: SynthesizedEnvironment) -> None:
    assert len(dev.resources("Network", "AWS::EC2::NatGateway")) == 1
    assert len(prod.resources("Network", "AWS::EC2::NatGateway")) == 3


def test_every_private_route_table_defaults_to_a_nat_gateway(prod: SynthesizedEnvironment) -> None:
    routes = [
        route["Properties"]
        for route in prod.resources("Network", "AWS::EC2::Route").values()
        if "NatGatewayId" in route["Properties"]
    ]
    assert len(routes) == 3
    assert len({route["NatGatewayId"]["Ref"] for route in routes}) == 3


def test_s3_gateway_endpoint_serves_the_private_subnets(dev: SynthesizedEnvironment) -> None:
    endpoints = [
        e["Properties"]
        for e in dev.resources("Network", "AWS::EC2::VPCEndpoint").values()
        if e["Properties"].get("VpcEndpointType") == "Gateway"
    ]
    assert len(endpoints) == 1
    assert "s3" in str(endpoints[0]["ServiceName"])
    assert len(endpoints[0]["RouteTableIds"]) == 12  # every subnet's route table


def test_interface_endpoints_keep_pulls_off_nat(dev: SynthesizedEnvironment) -> None:
    endpoints = [
        e["Properties"]
        for e in dev.resources("Network", "AWS::EC2::VPCEndpoint").values()
        if e["Properties"].get("VpcEndpointType") == "Interface"
    ]
    names = sorted(str(e["ServiceName"]) for e in endpoints)
    assert len(endpoints) == len(INTERFACE_SERVICES)
    for service in INTERFACE_SERVICES:
        assert sum(f".{service}" in name for name in names) == 1, (service, names)
    for endpoint in endpoints:
        assert endpoint["PrivateDnsEnabled"] is True
        assert len(endpoint["SubnetIds"]) == 3
        # In subnets of their own: the services' NetworkPolicies admit HTTPS to them and not to the node subnets.
        assert all(subnet["Ref"].startswith("VpcendpointsSubnet") for subnet in endpoint["SubnetIds"])


def test_s3_answers_the_whole_vpc_on_an_interface_endpoint(dev: SynthesizedEnvironment) -> None:
    """Pods reach S3 (their models) with no route outside the VPC: S3's regional names resolve, for every resolver
    in the VPC, to an interface endpoint in the endpoint subnets, which the NetworkPolicies admit. Its policy is the
    gateway endpoint's, so that what a node may fetch does not depend on which one DNS picked."""
    endpoints = {
        e["Properties"]["VpcEndpointType"]: e["Properties"]
        for e in dev.resources("Network", "AWS::EC2::VPCEndpoint").values()
        if ".s3" in str(e["Properties"]["ServiceName"])
    }
    interface, gateway = endpoints["Interface"], endpoints["Gateway"]
    assert interface["PrivateDnsEnabled"] is True
    assert interface["DnsOptions"] == {"PrivateDnsOnlyForInboundResolverEndpoint": "AllResolvers"}
    assert all(subnet["Ref"].startswith("VpcendpointsSubnet") for subnet in interface["SubnetIds"])
    assert interface["PolicyDocument"] == gateway["PolicyDocument"]
    assert "RegistryK8sIoLayers" in json.dumps(interface["PolicyDocument"])


def test_interface_endpoints_admit_only_https_from_the_vpc(dev: SynthesizedEnvironment) -> None:
    dev.template("Network").has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "GroupDescription": "HTTPS from the VPC to the interface VPC endpoints",
            "SecurityGroupIngress": [
                Match.object_like({"CidrIp": "10.40.0.0/16", "FromPort": 443, "ToPort": 443, "IpProtocol": "tcp"})
            ],
            "SecurityGroupEgress": [Match.object_like({"CidrIp": "255.255.255.255/32"})],
        },
    )


def test_flow_logs_capture_all_traffic_with_retention(dev: SynthesizedEnvironment) -> None:
    template = dev.template("Network")
    template.has_resource_properties(
        "AWS::EC2::FlowLog", {"ResourceType": "VPC", "TrafficType": "ALL", "LogDestinationType": "cloud-watch-logs"}
    )
    template.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 30})


def test_default_security_group_is_restricted(dev: SynthesizedEnvironment) -> None:
    dev.template("Network").resource_count_is("Custom::VpcRestrictDefaultSG", 1)


def test_removal_policy_of_flow_logs_follows_the_environment(
    dev: SynthesizedEnvironment, prod: SynthesizedEnvironment
) -> None:
    dev.template("Network").has_resource("AWS::Logs::LogGroup", {"DeletionPolicy": "Delete"})
    prod.template("Network").has_resource("AWS::Logs::LogGroup", {"DeletionPolicy": "Retain"})


def test_network_values_are_published_for_later_stacks(dev: SynthesizedEnvironment) -> None:
    template = dev.template("Network")
    for name in ("vpc-id", "vpc-cidr", "private-subnet-ids", "public-subnet-ids", "load-balancer-subnet-ids"):
        template.has_resource_properties(
            "AWS::SSM::Parameter", {"Name": f"/tessera/dev/network/{name}", "Type": "String"}
        )
    assert {
        "NetworkVpcId",
        "NetworkVpcCidr",
        "NetworkPrivateSubnetIds",
        "NetworkPublicSubnetIds",
    } <= template.to_json()["Outputs"].keys()


def test_stacks_carry_the_cost_tags(dev: SynthesizedEnvironment) -> None:
    vpc = next(iter(dev.resources("Network", "AWS::EC2::VPC").values()))
    tags = {tag["Key"]: tag["Value"] for tag in vpc["Properties"]["Tags"]}
    assert tags["project"] == "tessera"
    assert tags["environment"] == "dev"
    assert tags["cost-center"] == "ml-platform"
    assert tags["owner"] == "platform-team"


def test_explicit_zones_are_used_verbatim() -> None:
    from aws_cdk import App, Environment
    from aws_cdk.assertions import Template

    from stacks.common.environment_scope import EnvironmentScope
    from stacks.config.network import NetworkConfig
    from stacks.network.stack import NetworkStack
    from tests.synth import CDK_JSON_CONTEXT

    zones = ["eu-west-1a", "eu-west-1b"]
    app = App(context=CDK_JSON_CONTEXT, builtin_cloud_formation_validation=False)
    stack = NetworkStack(
        app,
        "ExplicitZones",
        settings=NetworkConfig(az_count=2, nat_gateways=2, availability_zones=zones),
        internet_facing_load_balancer=False,
        environment=EnvironmentScope(name="test", parameter_prefix="/tessera/test", retain=False),
        env=Environment(account="111122223333", region="eu-west-1"),
    )
    subnets = Template.from_stack(stack).find_resources("AWS::EC2::Subnet").values()
    assert sorted(subnet["Properties"]["AvailabilityZone"] for subnet in subnets) == sorted(zones * 4)
