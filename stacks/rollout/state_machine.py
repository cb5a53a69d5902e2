"""The rollout state machine: prepare, lock, preflight, canary, warm-up, traffic steps with bake and
judgement, optional approval, then promote; or roll back, and when even that cannot finish, hand the
service to an operator. Every task runs one action of the rollout Lambda on the typed plan and progress
of rollout.contract; the JSON paths here come from those models' field names.

Waiting happens in Wait states (never in a Lambda), in loops of `poll_seconds`, so an abort request is
seen within one poll. A step's bake is such a loop around JudgeInterval, which judges every analysis
interval as it falls due (its Wait is shorter than a poll when an interval or the bake's end falls due
sooner) and ends the loop with the step's verdict. Tasks are idempotent, so throttling, 5xx
(TransientError) and Lambda timeouts (`Lambda.Unknown`) are retried with backoff; any other error after
the lock is taken goes to Rollback. A Rollback that still cannot finish after its retries goes to
HandToOperator, which records what is left and notifies. Whatever ends an execution in a way no state
catches (a stop from outside, its timeout) is handled by the safety-net rule on the execution's status
(see the Rollout stack).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from rollout.contract import Plan, Progress, json_path

RETRYABLE = [
    "TransientError",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.Unknown",  # a Lambda timeout: every action is safe to run again
]
PLAN = sfn.JsonPath.object_at("$.plan")
PROGRESS = sfn.JsonPath.object_at("$.progress")
PROGRESS_PATH = "$.progress"


def plan_path(*names: str) -> str:
    return json_path(Plan, *names, root="plan")


def progress_path(*names: str) -> str:
    return json_path(Progress, *names, root="progress")


POLL_SECONDS = plan_path("policy", "poll_seconds")
# Outcomes the clean-up reports, and the error each execution ends with.
ENDINGS = {
    "ROLLED_BACK": "RolledBack",
    "ABORTED": "Aborted",
    "FAILED": "RolloutFailed",
    "NEEDS_OPERATOR": "NeedsOperator",
}


class RolloutDefinition(Construct):
    """Builds the chain; `self.definition` is the start state."""

    def __init__(self, scope: Construct, construct_id: str, *, function: lambda_.IFunction) -> None:
        super().__init__(scope, construct_id)
        self._function = function

        promoted = sfn.Succeed(self, "Promoted")
        rollback = self._rollback(promoted)
        refused = sfn.Fail(self, "Refused", error="RolloutRefused", cause_path="$.error.Cause")
        not_started = sfn.Fail(self, "NotStarted", error="RolloutNotStarted", cause_path="$.error.Cause")

        prepare = self._task("Prepare", "prepare", {"input": sfn.JsonPath.object_at("$")}, "$.plan")
        prepare.add_catch(not_started, errors=["States.ALL"], result_path="$.error")
        at_rest = sfn.Pass(self, "NothingDeployedYet", result=sfn.Result.from_object({}), result_path=PROGRESS_PATH)
        lock = self._task("AcquireLock", "acquire_lock", {"plan": PLAN}, sfn.JsonPath.DISCARD)
        lock.add_catch(refused, errors=["States.ALL"], result_path="$.error")

        def guarded(task: tasks.LambdaInvoke) -> tasks.LambdaInvoke:
            task.add_catch(rollback, errors=["States.ALL"], result_path="$.error")
            return task

        def step(construct_id: str, action: str) -> tasks.LambdaInvoke:
            return guarded(self._task(construct_id, action, {"plan": PLAN, "progress": PROGRESS}, PROGRESS_PATH))

        preflight = step("Preflight", "preflight")
        deploy = step("DeployCanary", "deploy_canary")
        warm = self._poll_loop("WarmUp", step("CheckWarm", "check_warm"))
        scale = step("ScaleCanary", "scale_canary")
        shift = step("ShiftTraffic", "shift_traffic")
        bake_wait = sfn.Wait(self, "BakeWait", time=sfn.WaitTime.seconds_path(progress_path("wait_seconds")))
        judge = step("JudgeInterval", "judge_interval")
        advance = step("NextStep", "advance")
        failed_judgement = sfn.Pass(
            self,
            "CanaryFailed",
            parameters={
                "Error": "CanaryFailed",
                "Cause": sfn.JsonPath.json_to_string(sfn.JsonPath.object_at(progress_path("reasons"))),
            },
            result_path="$.error",
        )
        failed_judgement.next(rollback)
        approval = guarded(self._approval())
        promote = step("PromoteStable", "promote_stable")
        finalize = guarded(self._task("Finalize", "finalize", {"plan": PLAN, "progress": PROGRESS}, "$.result"))

        canary_ready = self._ready_loop("Canary", "check_canary_ready")
        scaled_ready = self._ready_loop("Scaled", "check_canary_ready")
        stable_ready = self._ready_loop("Stable", "check_stable_ready")
        for check in (canary_ready.check, scaled_ready.check, stable_ready.check):
            guarded(check)

        prepare.next(at_rest).next(lock).next(preflight).next(deploy).next(canary_ready.start)
        canary_ready.when_done.next(warm.start)
        warm.when_done.next(scale).next(scaled_ready.start)
        scaled_ready.when_done.next(shift).next(bake_wait).next(judge)
        judge.next(
            sfn.Choice(self, "Verdict")
            .when(sfn.Condition.string_equals(progress_path("verdict"), "PASS"), advance)
            .when(sfn.Condition.string_equals(progress_path("verdict"), "FAIL"), failed_judgement)
            .otherwise(bake_wait)
        )
        ready_to_promote = (
            sfn.Choice(self, "NeedsApproval")
            .when(sfn.Condition.boolean_equals(plan_path("policy", "manual_approval"), True), approval.next(promote))
            .otherwise(promote)
        )
        advance.next(
            sfn.Choice(self, "AllStepsDone")
            .when(sfn.Condition.boolean_equals(progress_path("done"), True), ready_to_promote)
            .otherwise(scale)
        )
        promote.next(stable_ready.start)
        stable_ready.when_done.next(finalize).next(promoted)
        self.definition = prepare

    def _rollback(self, promoted: sfn.Succeed) -> tasks.LambdaInvoke:
        """Rollback, retried while its clean-up is incomplete; then the hand-over to an operator."""
        rollback = self._task(
            "Rollback",
            "rollback",
            {"plan": PLAN, "progress": PROGRESS, "error": sfn.JsonPath.object_at("$.error")},
            "$.result",
        )
        rollback.add_retry(
            errors=["CleanupIncompleteError"], interval=Duration.seconds(10), max_attempts=5, backoff_rate=2.0
        )
        # Rollback is idempotent: whatever failed it (a bug, an unexpected answer) may pass on a second run.
        rollback.add_retry(errors=["States.ALL"], interval=Duration.seconds(5), max_attempts=2, backoff_rate=2.0)
        operator = self._task(
            "HandToOperator",
            "hand_to_operator",
            {
                "plan": PLAN,
                "progress": PROGRESS,
                # The error that sent the rollout to Rollback decides its outcome; Rollback's own, what is left.
                "error": sfn.JsonPath.object_at("$.error"),
                "cleanup_error": sfn.JsonPath.object_at("$.cleanup_error"),
            },
            "$.result",
        )
        operator.add_retry(errors=["States.ALL"], interval=Duration.seconds(5), max_attempts=3, backoff_rate=2.0)
        rollback.add_catch(operator, errors=["States.ALL"], result_path="$.cleanup_error")
        ending = sfn.Choice(self, "RollbackOutcome")
        operator.next(ending)
        for outcome, error in ENDINGS.items():
            ending.when(
                sfn.Condition.string_equals("$.result.outcome", outcome),
                sfn.Fail(self, error, error=error, cause_path="$.result.reason"),
            )
        # Finalize's retries ran out after the promotion was committed: Rollback finds it and touches nothing.
        ending.when(sfn.Condition.string_equals("$.result.outcome", "PROMOTED"), promoted)
        ending.otherwise(sfn.Fail(self, "EndedUnexpectedly", error="RolloutFailed", cause_path="$.result.reason"))
        rollback.next(ending)
        return rollback

    def _approval(self) -> tasks.LambdaInvoke:
        approval = tasks.LambdaInvoke(
            self,
            "AwaitApproval",
            lambda_function=self._function,
            integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
            payload=sfn.TaskInput.from_object(
                {
                    "action": "await_approval",
                    "plan": PLAN,
                    "token": sfn.JsonPath.task_token,
                    "execution": sfn.JsonPath.execution_id,
                }
            ),
            task_timeout=sfn.Timeout.at(plan_path("policy", "approval_timeout_seconds")),
            retry_on_service_exceptions=False,
            result_path=sfn.JsonPath.DISCARD,
        )
        approval.add_retry(errors=RETRYABLE, interval=Duration.seconds(2), max_attempts=6, backoff_rate=2.0)
        return approval

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

    def _ready_loop(self, prefix: str, action: str) -> _Loop:
        wait = sfn.Wait(self, f"{prefix}Settling", time=sfn.WaitTime.seconds_path(POLL_SECONDS))
        check = self._task(f"{prefix}Ready", action, {"plan": PLAN, "progress": PROGRESS}, "$.ready")
        after = sfn.Pass(self, f"{prefix}IsReady")
        wait.next(check).next(
            sfn.Choice(self, f"{prefix}ReadyYet")
            .when(sfn.Condition.boolean_equals("$.ready.ready", True), after)
            .otherwise(wait)
        )
        return _Loop(start=wait, check=check, when_done=after)

    def _poll_loop(self, prefix: str, check: tasks.LambdaInvoke) -> _Loop:
        """Wait a poll, run `check` (which sets progress.waiting), repeat while it says to wait."""
        wait = sfn.Wait(self, f"{prefix}Wait", time=sfn.WaitTime.seconds_path(POLL_SECONDS))
        after = sfn.Pass(self, f"{prefix}Done")
        wait.next(check).next(
            sfn.Choice(self, f"{prefix}Over")
            .when(sfn.Condition.boolean_equals(progress_path("waiting"), True), wait)
            .otherwise(after)
        )
        return _Loop(start=wait, check=check, when_done=after)


class _Loop:
    """Wait, check, repeat until the check says the loop is done (the check fails the rollout past its
    deadline)."""

    def __init__(self, *, start: sfn.Wait, check: tasks.LambdaInvoke, when_done: sfn.Pass) -> None:
        self.start = start
        self.check = check
        self.when_done = when_done
