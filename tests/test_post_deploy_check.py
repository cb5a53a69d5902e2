"""tools/post_deploy_check.py against moto: the cluster must be ACTIVE and every service's stable target group must
have a healthy target, read from what the stacks publish in SSM; assuming the lookup role first when given."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from tessera_shared.constants import parameter_prefix
from tools import post_deploy_check as check_tool

REGION = "us-east-1"
ENV = "prod"


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.session.Session]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        yield boto3.session.Session(region_name=REGION)


def _environment(session: boto3.session.Session, services: dict[str, bool]) -> dict[str, str]:
    """The cluster and, per service, a stable target group with a healthy instance (True) or none (False)."""
    ec2, ssm, elbv2 = session.client("ec2"), session.client("ssm"), session.client("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    cluster = session.client("eks").create_cluster(
        name=f"tessera-{ENV}",
        roleArn="arn:aws:iam::123456789012:role/cluster",
        resourcesVpcConfig={"subnetIds": [subnet]},
    )["cluster"]["name"]
    prefix = parameter_prefix(ENV)
    ssm.put_parameter(Name=f"{prefix}/cluster/name", Value=cluster, Type="String")
    arns = {}
    for service, healthy in services.items():
        group = elbv2.create_target_group(
            Name=f"{service}-stable", Protocol="HTTP", Port=8000, VpcId=vpc, TargetType="instance"
        )["TargetGroups"][0]["TargetGroupArn"]
        if healthy:
            instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, SubnetId=subnet)
            elbv2.register_targets(TargetGroupArn=group, Targets=[{"Id": instance["Instances"][0]["InstanceId"]}])
        name = f"{prefix}/services/{service}/stable-target-group-arn"
        ssm.put_parameter(Name=name, Value=group, Type="String")
        canary = f"{prefix}/services/{service}/canary-target-group-arn"  # never read: the canary may be empty
        ssm.put_parameter(Name=canary, Value=group + "-canary", Type="String")
        arns[service] = group
    return arns


def test_the_parameter_prefix_is_the_shared_one() -> None:
    assert check_tool.parameter_prefix(ENV) == parameter_prefix(ENV)


def test_an_active_cluster_with_healthy_stable_targets_passes(session, capsys) -> None:
    _environment(session, {"assistant": True, "gateway": True})
    assert check_tool.run(session, ENV, wait_seconds=0) == 0
    out = capsys.readouterr().out
    assert f"{ENV}: cluster tessera-{ENV} is ACTIVE" in out
    assert "assistant: 1 healthy stable target(s)" in out
    assert "gateway: 1 healthy stable target(s)" in out


def test_a_service_without_a_healthy_stable_target_fails_after_the_wait(session, capsys) -> None:
    _environment(session, {"assistant": True, "gateway": False})
    now = [0.0]
    sleeps = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    assert check_tool.run(session, ENV, wait_seconds=30, sleep=sleep, clock=lambda: now[0]) == 1
    assert sleeps == [check_tool.POLL_SECONDS, check_tool.POLL_SECONDS]  # looked again until the wait was over
    err = capsys.readouterr().err
    assert "gateway: no healthy target in its stable target group (no targets)" in err
    assert "assistant" not in err


def test_a_cluster_that_is_not_active_fails(session, monkeypatch) -> None:
    _environment(session, {"assistant": True})
    real_client = session.client

    class Eks:
        def __init__(self) -> None:
            self.inner = real_client("eks")

        def describe_cluster(self, name: str) -> dict:
            found = self.inner.describe_cluster(name=name)
            found["cluster"]["status"] = "UPDATING"
            return found

    monkeypatch.setattr(session, "client", lambda service: Eks() if service == "eks" else real_client(service))
    problems, _ = check_tool.check(session, ENV)
    assert problems == [f"cluster tessera-{ENV} is UPDATING, not ACTIVE"]


def test_an_environment_not_deployed_here_says_so(session) -> None:
    problems, fine = check_tool.check(session, ENV)
    assert problems == [f"/tessera/{ENV}/cluster/name not found: is environment '{ENV}' deployed here?"]
    assert fine == []


def test_an_environment_without_services_fails(session) -> None:
    _environment(session, {})
    problems, _ = check_tool.check(session, ENV)
    assert problems == [f"no service publishes a stable target group under /tessera/{ENV}/services"]


def test_the_role_is_assumed_before_reading(session) -> None:
    iam = session.client("iam")
    role = iam.create_role(RoleName="cdk-hnb659fds-lookup-role-123456789012-us-east-1", AssumeRolePolicyDocument="{}")
    assumed = check_tool.session_for(REGION, role["Role"]["Arn"])
    identity = assumed.client("sts").get_caller_identity()
    assert "assumed-role/cdk-hnb659fds-lookup-role-123456789012-us-east-1/tessera-post-deploy-check" in identity["Arn"]


def test_the_command_line_exits_with_the_outcome(session, monkeypatch) -> None:
    _environment(session, {"assistant": True})
    monkeypatch.setattr(check_tool, "session_for", lambda region, role_arn: session)
    assert check_tool.main(["--environment", ENV, "--region", REGION, "--wait-seconds", "0"]) == 0
    assert check_tool.main(["--environment", "dev", "--region", REGION, "--wait-seconds", "0"]) == 1
