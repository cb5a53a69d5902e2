"""The rollout state machine: lock, preflight, canary, warm-up, traffic steps with bake and judgement,
optional approval, then promote or roll back. Every task runs one action of the rollout Lambda.

Waiting happens in Wait states (never in a Lambda). Throttling and 5xx (TransientError) are retried
with backoff; any other error after the lock is taken goes to Rollback, which restores stable 100 /
canary 0 before anything else.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

RETRYABLE = [
    "TransientError",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
PLAN = sfn.JsonPath.object_at("$.plan")
PROGRESS = sfn.JsonPath.object_at("$.progress")


class RolloutDefinition(Construct):
    """Builds the chain; `self.definition` is the start state."""

    def __init__(self, scope: Construct, construct_id: str, *, function: lambda_.IFunction) -> None:
        super().__init__(scope, construct_id)
        self._function = function

        rolled_back = sfn.Fail(self, "RolledBack", error="RolledBack", cause_path="$.result.reason")
        rollback = self._task(
            "Rollback",
            "rollback",
            {"plan": PLAN, "progress": PROGRESS, "error": sfn.JsonPath.object_at("$.error")},
            "$.result",
        )
        rollback.next(rolled_back)

        refused = sfn.Fail(self, "Refused", error="RolloutRefused", cause_path="$.error.Cause")
        not_started = sfn.Fail(self, "NotStarted", error="RolloutNotStarted", cause_path="$.error.Cause")

        prepare = self._task("Prepare", "prepare", {"input": sfn.JsonPath.object_at("$")}, "$.plan")
        prepare.add_catch(not_started, errors=["States.ALL"], result_path="$.error")
        at_rest = sfn.Pass(
            self, "NothingDeployedYet", result=sfn.Result.from_object({"deployed": False}), result_path="$.progress"
        )
        lock = self._task("AcquireLock", "acquire_lock", {"plan": PLAN}, sfn.JsonPath.DISCARD)
        lock.add_catch(refused, errors=["States.ALL"], result_path="$.error")

        def guarded(task: tasks.LambdaInvoke) -> tasks.LambdaInvoke:
            task.add_catch(rollback, errors=["States.ALL"], result_path="$.error")
            return task

        preflight = guarded(self._task("Preflight", "preflight", {"plan": PLAN}, "$.preflight"))
        deploy = guarded(
            self._task(
                "DeployCanary",
                "deploy_canary",
                {"plan": PLAN, "preflight": sfn.JsonPath.object_at("$.preflight")},
                "$.progress",
            )
        )
        warm_wait = sfn.Wait(self, "WarmUp", time=sfn.WaitTime.seconds_path("$.plan.warmup_seconds"))
        check_warm = guarded(self._task("CheckWarm", "check_warm", {"plan": PLAN, "progress": PROGRESS}, "$.progress"))
        scale = guarded(self._task("ScaleCanary", "scale_canary", {"plan": PLAN, "progress": PROGRESS}, "$.progress"))
        shift = guarded(self._task("ShiftTraffic", "shift_traffic", {"plan": PLAN, "progress": PROGRESS}, "$.progress"))
        bake = sfn.Wait(self, "Bake", time=sfn.WaitTime.seconds_path("$.plan.bake_seconds"))
        evaluate = guarded(self._task("Judge", "evaluate", {"plan": PLAN, "progress": PROGRESS}, "$.progress"))
        advance = guarded(self._task("NextStep", "advance", {"plan": PLAN, "progress": PROGRESS}, "$.progress"))
        failed_judgement = sfn.Pass(
            self,
            "CanaryFailed",
            parameters={
                "Error": "CanaryFailed",
                "Cause": sfn.JsonPath.json_to_string(sfn.JsonPath.object_at("$.progress.reasons")),
            },
            result_path="$.error",
        )
        failed_judgement.next(rollback)
        approval = tasks.LambdaInvoke(
            self,
            "AwaitApproval",
            lambda_function=function,
            integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
            payload=sfn.TaskInput.from_object(
                {
                    "action": "await_approval",
                    "plan": PLAN,
                    "token": sfn.JsonPath.task_token,
                    "execution": sfn.JsonPath.execution_id,
                }
            ),
            task_timeout=sfn.Timeout.at("$.plan.approval_timeout_seconds"),
            result_path=sfn.JsonPath.DISCARD,
        )
        guarded(approval)
        promote = guarded(
            self._task("PromoteStable", "promote_stable", {"plan": PLAN, "progress": PROGRESS}, "$.progress")
        )
        finalize = guarded(self._task("Finalize", "finalize", {"plan": PLAN}, "$.result"))
        promoted = sfn.Succeed(self, "Promoted")

        canary_ready = self._ready_loop("Canary", "check_canary_ready")
        scaled_ready = self._ready_loop("Scaled", "check_canary_ready")
        stable_ready = self._ready_loop("Stable", "check_stable_ready")
        for check in (canary_ready.check, scaled_ready.check, stable_ready.check):
            guarded(check)

        prepare.next(at_rest).next(lock).next(preflight).next(deploy).next(canary_ready.start)
        canary_ready.when_ready.next(warm_wait).next(check_warm).next(scale).next(scaled_ready.start)
        scaled_ready.when_ready.next(shift).next(bake).next(evaluate)
        evaluate.next(
            sfn.Choice(self, "Verdict")
            .when(sfn.Condition.string_equals("$.progress.verdict", "PASS"), advance)
            .when(sfn.Condition.string_equals("$.progress.verdict", "NOT_ENOUGH_DATA"), bake)
            .otherwise(failed_judgement)
        )
        ready_to_promote = (
            sfn.Choice(self, "NeedsApproval")
            .when(sfn.Condition.boolean_equals("$.plan.manual_approval", True), approval.next(promote))
            .otherwise(promote)
        )
        advance.next(
            sfn.Choice(self, "AllStepsDone")
            .when(sfn.Condition.boolean_equals("$.progress.done", True), ready_to_promote)
            .otherwise(scale)
        )
        promote.next(stable_ready.start)
        stable_ready.when_ready.next(finalize).next(promoted)
        self.definition = prepare

    def _task(self, construct_id: str, action: str, payload: dict, result_path: str) -> tasks.LambdaInvoke:
        task = tasks.LambdaInvoke(
            self,
            construct_id,
            lambda_function=self._function,
            payload=sfn.TaskInput.from_object({"action": action, "execution": sfn.JsonPath.execution_id, **payload}),
            payload_response_only=True,
            retry_on_service_exceptions=False,
            result_path=result_path,
        )
        task.add_retry(errors=RETRYABLE, interval=Duration.seconds(2), max_attempts=6, backoff_rate=2.0)
        return task

    def _ready_loop(self, prefix: str, action: str) -> _ReadyLoop:
        wait = sfn.Wait(self, f"{prefix}Settling", time=sfn.WaitTime.seconds_path("$.plan.poll_seconds"))
        check = self._task(f"{prefix}Ready", action, {"plan": PLAN, "progress": PROGRESS}, "$.ready")
        after = sfn.Pass(self, f"{prefix}IsReady")
        wait.next(check).next(
            sfn.Choice(self, f"{prefix}ReadyYet")
            .when(sfn.Condition.boolean_equals("$.ready.ready", True), after)
            .otherwise(wait)
        )
        return _ReadyLoop(start=wait, check=check, when_ready=after)


class _ReadyLoop:
    """Wait, check readiness, repeat until ready (the check fails the rollout past its deadline)."""

    def __init__(self, *, start: sfn.Wait, check: tasks.LambdaInvoke, when_ready: sfn.Pass) -> None:
        self.start = start
        self.check = check
        self.when_ready = when_ready
