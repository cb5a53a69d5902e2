"""Point 8: flow-log role trust tied to this account, VPC endpoints with policies, no all-traffic egress on the
rollout function's and the load balancer's security groups, and IAM reasons that are true of their statements."""

from __future__ import annotations

import json

import pytest

from tests.synth import SynthesizedEnvironment

ALL_TRAFFIC = {"CidrIp": "0.0.0.0/0", "IpProtocol": "-1"}


def _security_group(env: SynthesizedEnvironment, component: str, description: str) -> dict:
    [group] = [
        g["Properties"]
        for g in env.resources(component, "AWS::EC2::SecurityGroup").values()
        if g["Properties"]["GroupDescription"] == description
    ]
    return group


def test_flow_log_role_is_trusted_only_for_this_account(dev: SynthesizedEnvironment) -> None:
    [role] = [
        r["Properties"]
        for r in dev.resources("Network", "AWS::IAM::Role").values()
        if "vpc-flow-logs.amazonaws.com" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])
    ]
    [statement] = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert "aws:SourceArn" in statement["Condition"]["ArnLike"]


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_every_vpc_endpoint_has_a_policy_for_this_account(environment: str, request: pytest.FixtureRequest) -> None:
    synthesized: SynthesizedEnvironment = request.getfixturevalue(environment)
    endpoints = synthesized.resources("Network", "AWS::EC2::VPCEndpoint").values()
    assert len(endpoints) == 7  # six interface endpoints (S3 among them) and the S3 gateway
    for endpoint in endpoints:
        document = endpoint["Properties"].get("PolicyDocument")
        assert document, endpoint["Properties"]["ServiceName"]
        account_statements = [
            s
            for s in document["Statement"]
            if s.get("Condition", {}).get("StringEquals", {}).get("aws:PrincipalAccount")
        ]
        assert account_statements, endpoint["Properties"]["ServiceName"]


def test_s3_endpoint_still_serves_ecr_image_layers(dev: SynthesizedEnvironment) -> None:
    [gateway] = [
        e["Properties"]
        for e in dev.resources("Network", "AWS::EC2::VPCEndpoint").values()
        if e["Properties"].get("VpcEndpointType") == "Gateway"
    ]
    assert "starport-layer-bucket" in json.dumps(gateway["PolicyDocument"])


def test_rollout_function_egress_is_https_only(dev: SynthesizedEnvironment) -> None:
    group = _security_group(dev, "Rollout", "Tessera rollout function")
    assert group["SecurityGroupEgress"] != [ALL_TRAFFIC | {"Description": "Allow all outbound traffic by default"}]
    assert {(rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) for rule in group["SecurityGroupEgress"]} == {
        ("tcp", 443, 443)
    }


def test_load_balancer_reaches_only_the_pods_on_service_ports(dev: SynthesizedEnvironment) -> None:
    for description in (
        "Tessera public services load balancer",
        "Tessera internal load balancer: calls between services",
    ):
        group = _security_group(dev, "Services", description)
        assert all(rule.get("CidrIp") != "0.0.0.0/0" for rule in group.get("SecurityGroupEgress", []))
    ports = {service.port for service in dev.config.services}
    egress = dev.resources("Services", "AWS::EC2::SecurityGroupEgress").values()
    assert {rule["Properties"]["FromPort"] for rule in egress} == ports
    assert all("DestinationSecurityGroupId" in rule["Properties"] for rule in egress)


def test_metric_and_alarm_reads_are_scoped_where_iam_allows(dev: SynthesizedEnvironment) -> None:
    for policy in dev.resources("Rollout", "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if "cloudwatch:DescribeAlarms" in actions:
                assert statement["Resource"] != "*"
                assert ":alarm:" in json.dumps(statement["Resource"])
