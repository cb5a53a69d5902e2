"""Whether a service's rollout settings point at the service's own routing and tracks.

The settings are an SSM parameter: whoever can write it could send the canary's (or the promoted) weights to
another target group, move another service's rule, or deploy onto another service's Deployment. So Prepare
trusts the settings only as far as the resources they name say the same, by the tags the Services stack puts on
them: the load balancer is this environment's (LOAD_BALANCER_OWNER_TAG names this environment's cluster), the
rule is one of that load balancer's (its ARN names its load balancer) tagged for the service, and each target
group is tagged for this environment (TARGET_GROUP_OWNER_TAG), the service and its track. The names the service's
name decides (namespace, Deployments, autoscaler, model prefix) must be those.
"""

from __future__ import annotations

import re

from botocore.exceptions import ClientError

from rollout.authority import shown
from rollout.clients import Clients
from rollout.contract import ServiceSettings
from rollout.prometheus import query_url_problem
from tessera_shared.constants import (
    LOAD_BALANCER_OWNER_TAG,
    NAMESPACE,
    SERVICE_LABEL,
    TARGET_GROUP_OWNER_TAG,
    TRACK_LABEL,
    model_prefix,
    track_object_name,
)

# The documented shapes of ELBv2 ARNs: a rule's names its load balancer (name and id) and its listener.
_ARN = r"arn:[\w-]+:elasticloadbalancing:[\w-]+:\d{12}:"
LOAD_BALANCER_ARN = re.compile(rf"^{_ARN}loadbalancer/app/[\w-]{{1,32}}/[0-9a-f]{{1,32}}$")
RULE_ARN = re.compile(rf"^{_ARN}listener-rule/app/[\w-]{{1,32}}/[0-9a-f]{{1,32}}/[0-9a-f]{{1,32}}/[0-9a-f]{{1,32}}$")
TARGET_GROUP_ARN = re.compile(rf"^{_ARN}targetgroup/[\w-]{{1,32}}/[0-9a-f]{{1,32}}$")


def settings_problems(settings: ServiceSettings, service: str, clients: Clients) -> list[str]:
    """What in the settings is not the service's own, one entry per field; empty when all of it is."""
    problems = _name_problems(settings, service)
    # The judge signs its queries to this URL with the function's credentials: only a workspace's will do.
    runtime_problem = settings.runtime_metrics and query_url_problem(settings.runtime_metrics)
    if runtime_problem:
        problems.append(f"settings.{runtime_problem}")
    routing = {
        "load_balancer": (settings.load_balancer, LOAD_BALANCER_ARN, "a load balancer ARN"),
        "rule_arn": (settings.rule_arn, RULE_ARN, "a listener rule ARN"),
        "stable_target_group": (settings.stable_target_group, TARGET_GROUP_ARN, "a target group ARN"),
        "canary_target_group": (settings.canary_target_group, TARGET_GROUP_ARN, "a target group ARN"),
    }
    malformed = [
        f"settings.{f}: {shown(arn)} is not {what}" for f, (arn, form, what) in routing.items() if not form.match(arn)
    ]
    if malformed:
        return problems + malformed
    rule_of = settings.rule_arn.replace(":listener-rule/", ":loadbalancer/").rsplit("/", 2)[0]
    if rule_of != settings.load_balancer:
        problems.append(
            f"settings.rule_arn: {settings.rule_arn} is a rule of another load balancer than settings.load_balancer "
            f"({settings.load_balancer})"
        )
    expected = {
        "load_balancer": {LOAD_BALANCER_OWNER_TAG: clients.cluster_name},
        "rule_arn": {SERVICE_LABEL: service},
        "stable_target_group": _target_group_tags(clients.cluster_name, service, "stable"),
        "canary_target_group": _target_group_tags(clients.cluster_name, service, "canary"),
    }
    try:
        found = _tags(clients, [arn for arn, _, _ in routing.values()])
    except ClientError as error:
        return [*problems, f"settings: the load balancer, rule or target groups cannot be read: {error}"]
    for field, wanted in expected.items():
        arn = routing[field][0]
        problems.extend(
            f"settings.{field}: {arn}: its tag {key} is {found.get(arn, {}).get(key)!r}, expected {value!r}"
            for key, value in wanted.items()
            if found.get(arn, {}).get(key) != value
        )
    return problems


def _name_problems(settings: ServiceSettings, service: str) -> list[str]:
    expected = {
        "service": service,
        "namespace": NAMESPACE,
        "stable_deployment": track_object_name(service, "stable"),
        "canary_deployment": track_object_name(service, "canary"),
        "stable_autoscaler": track_object_name(service, "stable"),
        "model_prefix": model_prefix(service),
    }
    return [
        f"settings.{field}: {shown(getattr(settings, field))} is not {value!r}"
        for field, value in expected.items()
        if getattr(settings, field) != value
    ]


def _target_group_tags(cluster: str, service: str, track: str) -> dict[str, str]:
    return {TARGET_GROUP_OWNER_TAG: cluster, SERVICE_LABEL: service, TRACK_LABEL: track}


def _tags(clients: Clients, arns: list[str]) -> dict[str, dict[str, str]]:
    """ARN -> tags; DescribeTags takes up to 20 resources of any ELBv2 kind in one call."""
    described = clients.elbv2.describe_tags(ResourceArns=list(dict.fromkeys(arns)))["TagDescriptions"]
    return {item["ResourceArn"]: {tag["Key"]: tag["Value"] for tag in item.get("Tags", [])} for item in described}
