"""Network stack: what each VPC resource must be."""

from __future__ import annotations

from aws_cdk.assertions import Match

from tests.synth import SynthesizedEnvironment

INTERFACE_SERVICES = ("ecr.api", "ecr.dkr", "sts", "logs", "ec2")


def test_vpc_uses_the_configured_cidr(dev: SynthesizedEnvironment) -> None:
    dev.template("Network").has_resource_properties(
        "AWS::EC2::VPC", {"CidrBlock": "10.40.0.0/16", "EnableDnsHostnames": True, "EnableDnsSupport": True}
    )


def test_public_and_private_subnet_in_each_of_three_azs(dev: SynthesizedEnvironment) -> None:
    subnets = dev.resources("Network", "AWS::EC2::Subnet").values()
    public = [s for s in subnets if s["Properties"]["MapPublicIpOnLaunch"]]
    private = [s for s in subnets if not s["Properties"]["MapPublicIpOnLaunch"]]
    assert len(public) == len(private) == 3
    # Environment-agnostic: zones are the region's first three, chosen at deploy time.
    zones = [s["Properties"]["AvailabilityZone"] for s in private]
    assert [zone["Fn::Select"][0] for zone in zones] == [0, 1, 2]
    assert all(zone["Fn::Select"][1] == {"Fn::GetAZs": ""} for zone in zones)
    assert {s["Properties"]["CidrBlock"].split("/")[1] for s in private} == {"19"}


def test_subnets_carry_load_balancer_role_tags(dev: SynthesizedEnvironment) -> None:
    for subnet in dev.resources("Network", "AWS::EC2::Subnet").values():
        tags = {tag["Key"]: tag["Value"] for tag in subnet["Properties"]["Tags"]}
        role = (
            "kubernetes.io/role/elb"
            if subnet["Properties"]["MapPublicIpOnLaunch"]
            else "kubernetes.io/role/internal-elb"
        )
        assert tags[role] == "1"
        other = {"kubernetes.io/role/elb", "kubernetes.io/role/internal-elb"} - {role}
        assert not other & tags.keys()


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
    assert len(endpoints[0]["RouteTableIds"]) == 6


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
    for name in ("vpc-id", "vpc-cidr", "private-subnet-ids", "public-subnet-ids"):
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
    from stacks.config.environment import NetworkConfig
    from stacks.network.stack import NetworkStack
    from tests.synth import CDK_JSON_CONTEXT

    zones = ["eu-west-1a", "eu-west-1b"]
    app = App(context=CDK_JSON_CONTEXT, builtin_cloud_formation_validation=False)
    stack = NetworkStack(
        app,
        "ExplicitZones",
        settings=NetworkConfig(az_count=2, nat_gateways=2, availability_zones=zones),
        environment=EnvironmentScope(name="test", parameter_prefix="/tessera/test", retain=False),
        env=Environment(account="111122223333", region="eu-west-1"),
    )
    subnets = Template.from_stack(stack).find_resources("AWS::EC2::Subnet").values()
    assert sorted(subnet["Properties"]["AvailabilityZone"] for subnet in subnets) == sorted(zones * 2)
