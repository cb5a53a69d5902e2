"""The actors of a rollout, played one task at a time so that tests can interleave them exactly: an execution
(ExecutionDouble), the safety net, an operator, a deploy. They call the real handler code (world.invoke_action)
under moto and the Kubernetes API double.

ExecutionDouble is a TEST DOUBLE of one Step Functions execution of the rollout: it has a real execution ARN in
moto's Step Functions (not executing: its status is RUNNING until `stop`), and it runs the tasks of the
synthesized definition's path in order, carrying plan and progress as the definition's result paths do. Where
Step Functions would catch an error and go to Rollback, the test says so (`rollback`); waits are the clock's.
A "late" task (`late`) is one whose invocation passed its lock check before something else happened and whose
writes land after: it runs with the lock check answering what it answered at the start.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rollout.contract import Plan, Progress
from tessera_shared.constants import QUIESCENCE_SECONDS
from tests.rollout.harness import NEW_VERSION, RolloutWorld, settle_event
from tests.rollout.scenarios import status_change_event
from tests.rollout.step_functions_double import StepFunctionsDouble

# The definition's tasks on a passing rollout with one traffic step, in order (loops run once).
HAPPY_PATH = (
    "acquire_lock",
    "preflight",
    "deploy_canary",
    "check_canary_ready",
    "check_warm",
    "scale_canary",
    "check_canary_ready",
    "shift_traffic",
    "judge_interval",
    "advance",
    "promote_stable",
    "check_stable_ready",
    "finalize",
)
PROGRESS_ACTIONS = frozenset(
    {
        "preflight",
        "deploy_canary",
        "check_warm",
        "scale_canary",
        "shift_traffic",
        "judge_interval",
        "advance",
        "promote_stable",
    }
)
# The service's policy (config) whose waits the tests step through by hand: no warm-up, a one-minute bake.
QUICK = {"warmup_seconds": 0, "bake_seconds": 60, "poll_seconds": 10}


MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:tessera-dev-rollout"
IDLE = {"StartAt": "Idle", "States": {"Idle": {"Type": "Pass", "End": True}}}


def step_functions(world: RolloutWorld) -> StepFunctionsDouble:
    """The world's Step Functions, as a double whose executions stop at the clock double's time (the engine
    compares a stopped holder's stop time with that clock). The tests run the tasks themselves."""
    if not isinstance(world.clients.stepfunctions, StepFunctionsDouble):
        world.clients.stepfunctions = StepFunctionsDouble(IDLE, invoke=world.invoke_action, clock=world.clock)
    return world.clients.stepfunctions


@dataclass
class ExecutionDouble:
    world: RolloutWorld
    name: str
    version: str = NEW_VERSION
    overrides: dict = field(default_factory=dict)
    arn: str = ""
    plan: dict | None = None
    progress: dict = field(default_factory=dict)
    done: list[str] = field(default_factory=list)

    def start(self) -> ExecutionDouble:
        self.world.set_policy(**QUICK)
        request = {"service": "assistant", "version": self.version, "overrides": self.overrides}
        sfn = step_functions(self.world)
        self.arn = sfn.start_execution(stateMachineArn=MACHINE, name=self.name, input=json.dumps(request))[
            "executionArn"
        ]
        self.request = request
        self.plan = self.world.invoke_action({"action": "prepare", "input": request, "execution": self.arn})
        return self

    def run(self, action: str, **extra: Any) -> dict:
        """One task, as the definition passes plan and progress to it; keeps the progress it returns."""
        event = {"action": action, "execution": self.arn, "plan": self.plan, "progress": self.progress, **extra}
        result = self.world.invoke_action(event)
        if action in PROGRESS_ACTIONS:
            self.progress = result
        if action == "judge_interval" and result.get("waiting"):
            self.world.clock.advance(result.get("wait_seconds", 1))
        self.done.append(action)
        return result

    def run_until(self, before: str) -> None:
        """Run the happy path up to (not including) `before`, passing the bake by waiting it out."""
        for action in HAPPY_PATH[len(self.done) :]:
            if action == before:
                return
            if action == "judge_interval":
                self._bake()
                continue
            self.run(action)

    def _bake(self) -> None:
        self.world.clock.advance(1)
        for _ in range(200):
            result = self.run("judge_interval")
            if not result.get("waiting"):
                assert result["verdict"] == "PASS", result
                return
        raise AssertionError("the bake never ended")

    @contextlib.contextmanager
    def late(self) -> Iterator[None]:
        """The next task's lock check answers as it would have before (its invocation began then)."""
        locks = self.world.clients.ledger.locks
        lock = locks.guard("assistant", execution=self.arn)
        locks.guard = lambda *_, **__: dict(lock)  # type: ignore[method-assign]
        try:
            yield
        finally:
            del locks.guard

    def rollback(self, error: str = "RolloutError", cause: str = "failed") -> dict:
        """What the definition's Catch does: Rollback with the error."""
        return self.run("rollback", error={"Error": error, "Cause": cause})

    def stop(self) -> dict:
        """Stop the execution from outside (console, API); returns its status-change event."""
        self.world.clients.stepfunctions.stop_execution(executionArn=self.arn)
        return self.status_change()

    def status_change(self, status: str | None = None) -> dict:
        """The execution's status-change event as EventBridge delivers it (`status`: one it ended with, say
        SUCCEEDED, which this double does not reach by itself)."""
        described = self.world.clients.stepfunctions.describe_execution(executionArn=self.arn)
        return status_change_event(
            described | {"input": json.dumps(self.request)} | ({"status": status} if status else {})
        )

    @property
    def typed_plan(self) -> Plan:
        return Plan.from_json(self.plan)

    @property
    def typed_progress(self) -> Progress:
        return Progress.from_json(self.progress)


def second_passes(world: RolloutWorld) -> None:
    """Time passes until stopped executions are quiescent; the settle queue delivers their second passes."""
    world.clock.advance(QUIESCENCE_SECONDS)
    for message in world.settle.due(world.clock()):
        world.invoke_action(settle_event(message))


def safety_net_settles(world: RolloutWorld, event: dict) -> None:
    """The status change reaches the safety net; its second pass runs once the execution is quiescent."""
    world.invoke_action(event)
    second_passes(world)
