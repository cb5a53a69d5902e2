"""After the pipeline deploys an environment to one account and region: is it serving?

    python3 tools/post_deploy_check.py --environment prod --region us-east-1 [--role-arn ARN] [--wait-seconds 600]

Reads, through the AWS APIs only, what the environment's stacks publish under `/tessera/<env>/` in SSM: the EKS
cluster (`cluster/name`) must be ACTIVE, and every service's stable target group
(`services/<service>/stable-target-group-arn`) must have at least one healthy target. With `--role-arn` it first
assumes that role (the pipeline passes the target's CDK bootstrap lookup role: AWS ReadOnlyAccess). Until
`--wait-seconds` pass it looks again every 15 seconds (targets register and pass health checks after a deploy);
then it prints one line per problem and exits 1, or prints what it checked and exits 0.

Self-contained (boto3 only), so that a CodeBuild step runs it from the source checkout without the project's set-up.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import boto3

PARAMETER_ROOT = "/tessera"  # tessera_shared.constants.parameter_prefix (tests check they agree)
STABLE_SUFFIX = "/stable-target-group-arn"
POLL_SECONDS = 15


def parameter_prefix(environment: str) -> str:
    return f"{PARAMETER_ROOT}/{environment}"


def check(session: Any, environment: str) -> tuple[list[str], list[str]]:
    """(problems, what was found healthy) for one environment in the session's account and region."""
    prefix = parameter_prefix(environment)
    ssm = session.client("ssm")
    problems: list[str] = []
    fine: list[str] = []
    try:
        cluster = ssm.get_parameter(Name=f"{prefix}/cluster/name")["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return [f"{prefix}/cluster/name not found: is environment {environment!r} deployed here?"], []
    status = session.client("eks").describe_cluster(name=cluster)["cluster"]["status"]
    if status == "ACTIVE":
        fine.append(f"cluster {cluster} is ACTIVE")
    else:
        problems.append(f"cluster {cluster} is {status}, not ACTIVE")

    target_groups = _stable_target_groups(ssm, prefix)
    if not target_groups:
        problems.append(f"no service publishes a stable target group under {prefix}/services")
    elbv2 = session.client("elbv2")
    for service, arn in sorted(target_groups.items()):
        states = [
            description["TargetHealth"]["State"]
            for description in elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        ]
        healthy = states.count("healthy")
        if healthy:
            fine.append(f"{service}: {healthy} healthy stable target(s)")
        else:
            seen = ", ".join(sorted(set(states))) or "no targets"
            problems.append(f"{service}: no healthy target in its stable target group ({seen})")
    return problems, fine


def _stable_target_groups(ssm: Any, prefix: str) -> dict[str, str]:
    root = f"{prefix}/services/"
    found = {}
    for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=f"{prefix}/services", Recursive=True):
        for parameter in page["Parameters"]:
            name = parameter["Name"]
            if name.endswith(STABLE_SUFFIX):
                found[name.removeprefix(root).removesuffix(STABLE_SUFFIX)] = parameter["Value"]
    return found


def session_for(region: str, role_arn: str | None) -> Any:
    if role_arn is None:
        return boto3.session.Session(region_name=region)
    credentials = boto3.client("sts", region_name=region).assume_role(
        RoleArn=role_arn, RoleSessionName="tessera-post-deploy-check", DurationSeconds=3600
    )["Credentials"]
    return boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=region,
    )


def run(
    session: Any,
    environment: str,
    *,
    wait_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    deadline = clock() + wait_seconds
    while True:
        problems, fine = check(session, environment)
        if not problems:
            for line in fine:
                print(f"{environment}: {line}")
            return 0
        if clock() >= deadline:
            for line in problems:
                print(f"{environment}: {line}", file=sys.stderr)
            return 1
        sleep(POLL_SECONDS)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--environment", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--role-arn", help="assume this role first (the target's CDK bootstrap lookup role)")
    parser.add_argument("--wait-seconds", type=float, default=600)
    args = parser.parse_args(argv)
    return run(session_for(args.region, args.role_arn), args.environment, wait_seconds=args.wait_seconds)


if __name__ == "__main__":
    sys.exit(main())
