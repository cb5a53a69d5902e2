"""The rollout Lambda: one function, one entry point per state-machine task (`action`), plus the
Step Functions "Execution Status Change" events of the safety net.

Each action's module is imported on first use, so a cold start pays only for what it runs.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from functools import cache, partial
from typing import Any

from aws_lambda_powertools import Logger

from tessera_shared import constants as shared

logger = Logger(service=shared.ROLLOUT_FUNCTION_SERVICE)
STATUS_CHANGE = "Step Functions Execution Status Change"


@cache
def clients() -> Any:
    """Built once per execution environment from the function's environment variables."""
    import boto3

    from registry.store import RegistryStore
    from rollout.clients import Clients, SqsSettleScheduler
    from rollout.kube.client import KubeClient
    from rollout.kube.token import eks_token
    from rollout.ledger import Ledger
    from rollout.metrics import CloudWatchPercentiles

    sts = boto3.client("sts")
    clock = partial(datetime.now, UTC)  # one clock for every part of the engine
    cloudwatch = boto3.client("cloudwatch")
    cluster = os.environ[shared.ENV_CLUSTER_NAME]
    dynamodb = boto3.client("dynamodb")
    table = os.environ[shared.ENV_REGISTRY_TABLE]
    return Clients(
        ledger=Ledger(dynamodb, table, clock=clock),
        store=RegistryStore(dynamodb, table, clock=clock),
        ecr=boto3.client("ecr"),
        elbv2=boto3.client("elbv2"),
        cloudwatch=cloudwatch,
        sns=boto3.client("sns"),
        ssm=boto3.client("ssm"),
        stepfunctions=boto3.client("stepfunctions"),
        kube=KubeClient(
            os.environ[shared.ENV_CLUSTER_ENDPOINT],
            lambda: eks_token(sts, cluster),
            ca_data=os.environ.get(shared.ENV_CLUSTER_CA),
        ),
        percentiles=CloudWatchPercentiles(cloudwatch),
        topic_arn=os.environ[shared.ENV_TOPIC_ARN],
        settings_prefix=os.environ[shared.ENV_SETTINGS_PREFIX],
        cluster_name=cluster,
        settle=SqsSettleScheduler(boto3.client("sqs"), os.environ[shared.ENV_SETTLE_QUEUE_URL], clock),
        clock=clock,
    )


def dispatch(event: dict[str, Any], deps: Any) -> dict[str, Any]:
    """Run the step named by event["action"] on the typed plan and progress the state machine passed."""
    from rollout import cleanup, safety_net
    from rollout.cleanup import parse_json
    from rollout.contract import Plan, Progress
    from rollout.steps import analysis, canary, promotion, start

    if event.get("detail-type") == STATUS_CHANGE:
        return safety_net.execution_ended(event.get("detail") or {}, deps)
    if isinstance(event.get("Records"), list):  # the settle queue (batch size 1: a failure retries its message)
        return {"settled": [safety_net.settle(parse_json(r.get("body")), deps) for r in event["Records"]]}

    def plan() -> Plan:
        return Plan.from_json(event.get("plan"), where="plan")

    def progress() -> Progress:
        return Progress.from_json(event.get("progress") or {}, where="progress")

    actions = {
        "prepare": lambda: start.prepare(event.get("input") or {}, event.get("execution", ""), deps).to_json(),
        "acquire_lock": lambda: start.acquire_lock(plan(), deps),
        "preflight": lambda: start.preflight(plan(), progress(), deps).to_json(),
        "deploy_canary": lambda: canary.deploy_canary(plan(), progress(), deps).to_json(),
        "check_canary_ready": lambda: canary.check_ready(plan(), progress(), "canary", deps),
        "check_stable_ready": lambda: canary.check_ready(plan(), progress(), "stable", deps),
        "check_warm": lambda: canary.check_warm(plan(), progress(), deps).to_json(),
        "scale_canary": lambda: canary.scale_canary(plan(), progress(), deps).to_json(),
        "shift_traffic": lambda: canary.shift_traffic(plan(), progress(), deps).to_json(),
        "judge_interval": lambda: analysis.judge_interval(plan(), progress(), deps).to_json(),
        "advance": lambda: promotion.advance(plan(), progress(), deps).to_json(),
        "await_approval": lambda: promotion.await_approval(plan(), event.get("token", ""), deps),
        "promote_stable": lambda: promotion.promote_stable(plan(), progress(), deps).to_json(),
        "finalize": lambda: promotion.finalize(plan(), progress(), deps),
        "rollback": lambda: cleanup.rollback(plan(), progress(), event.get("error"), deps),
        "hand_to_operator": lambda: cleanup.hand_to_operator(
            plan(), progress(), event.get("error"), event.get("cleanup_error"), deps
        ),
    }
    action = event.get("action")
    if action not in actions:
        raise ValueError(f"unknown action {action!r}; expected one of {sorted(actions)}")
    return actions[action]()


@logger.inject_lambda_context(clear_state=True)
def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    plan = event.get("plan") or event.get("input") or {}
    logger.append_keys(action=event.get("action"), service_name=plan.get("service"), version=plan.get("version"))
    result = dispatch(event, clients())
    logger.info("step done", extra={"result": result})
    return result
