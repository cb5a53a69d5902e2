"""Moves a service's traffic between its stable and canary target groups on the load balancer rule,
and checks that the canary's targets are registered and healthy."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from rollout.errors import RolloutError, TransientError

TRANSIENT_CODES = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "ServiceUnavailable", "InternalFailure"}


def _aws(call: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        response: dict[str, Any] = call(**kwargs)
        return response
    except ClientError as error:
        code = error.response["Error"]["Code"]
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in TRANSIENT_CODES or status >= 500:
            raise TransientError(f"{call.__name__}: {code}") from error
        raise


def current_weights(elbv2: Any, *, rule_arn: str) -> dict[str, int]:
    """Target group ARN -> weight of the rule's forward action, as the load balancer has it now."""
    [rule] = _aws(elbv2.describe_rules, RuleArns=[rule_arn])["Rules"]
    forward = next(action for action in rule["Actions"] if action["Type"] == "forward")
    groups = forward.get("ForwardConfig", {}).get("TargetGroups") or [
        {"TargetGroupArn": forward["TargetGroupArn"], "Weight": 1}
    ]
    return {group["TargetGroupArn"]: group.get("Weight", 1) for group in groups}


def set_weights(elbv2: Any, *, rule_arn: str, stable_tg: str, canary_tg: str, canary_weight: int) -> dict[str, int]:
    """Set canary_weight % to the canary and the rest to stable, then read back; a mismatch is an error."""
    wanted = {stable_tg: 100 - canary_weight, canary_tg: canary_weight}
    _aws(
        elbv2.modify_rule,
        RuleArn=rule_arn,
        Actions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [{"TargetGroupArn": arn, "Weight": weight} for arn, weight in wanted.items()]
                },
            }
        ],
    )
    live = current_weights(elbv2, rule_arn=rule_arn)
    if {arn: live.get(arn, 0) for arn in wanted} != wanted or set(live) - set(wanted):
        raise RolloutError(f"load balancer rule reports weights {live} after setting {wanted}")
    return wanted


def healthy_targets(elbv2: Any, *, target_group: str) -> tuple[int, int]:
    """(healthy, registered) targets of a target group."""
    descriptions = _aws(elbv2.describe_target_health, TargetGroupArn=target_group)["TargetHealthDescriptions"]
    healthy = sum(1 for target in descriptions if target["TargetHealth"]["State"] == "healthy")
    return healthy, len(descriptions)
