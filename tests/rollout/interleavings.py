"""RolloutActors: the actors of a rollout as a Hypothesis rule-based state machine, so that Hypothesis explores how
they interleave and shrinks a failing sequence to a short one.

The actors: executions of the synthesized definition (StepFunctionsDouble, one state per rule), a Lambda
invocation that begins (passes its lock check) now and lands later, past a stop, a safety net or another start;
Step Functions' stop; EventBridge delivering status changes late and in any order; the settle queue; an
operator's start, abort, approval, rejection and forced unlock (as the CLI allows them); a `cdk deploy` whose track
owner applies changed objects (env, floor); time; and one-shot AWS and Kubernetes faults. Every rule runs the real
handler code against moto and the Kubernetes API double; every invariant is checked after every rule, and the
teardown drives every actor to its end and checks the terminal ones.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timedelta
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from moto import mock_aws

from rollout.cleanup import return_to_rest
from rollout.contract import Progress
from rollout.errors import RolloutError, TransientError
from stacks.config.environment import config_path_for, load_config
from tessera_cli.rollout import unlock_refusal
from tessera_shared.constants import QUIESCENCE_SECONDS, ROLLOUT_FUNCTION_TIMEOUT_SECONDS, SCALED_OBJECT_KIND
from tests.rollout.harness import (
    NAMESPACE,
    NEW_VERSION,
    STABLE_VERSION,
    TABLE,
    After,
    LambdaThrottledDouble,
    LambdaTimeoutDouble,
    RolloutWorld,
    settle_event,
)
from tests.rollout.kube_double import KubernetesApiDouble
from tests.rollout.scenarios import status_change_event
from tests.rollout.step_functions_double import RUNNING, StepFunctionsDouble
from tests.rollout.test_track_owner import deploy_tracks, first_deploy, rendered

SERVICE = "assistant"
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:tessera-dev-rollout"
POLICY = {"warmup_seconds": 0, "bake_seconds": 60, "poll_seconds": 10}  # config's: overrides only tighten
LAMBDA_FAULTS = {
    "handler-exception": RuntimeError("injected handler exception"),
    "lambda-timeout": After(LambdaTimeoutDouble("Task timed out")),
    "throttling": LambdaThrottledDouble("Rate exceeded"),
}
ACTIONS = ("preflight", "deploy_canary", "shift_traffic", "judge_interval", "promote_stable", "finalize", "rollback")
CHOICE = st.integers(0, 3)  # which of the candidates a rule acts on (see pick)
MAX_QUEUED_FAULTS = 3  # Kubernetes faults an example queues in all (each strikes once)
ENDING_STEPS = 400  # states an example's teardown may run to bring every execution to its end


class SharedWorld:
    """One world for a whole exploration (moto and the Kubernetes API double), put back to its first state before
    each sequence: building one takes most of a second, putting it back a few calls."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(mock_aws())
        kube = self._stack.enter_context(KubernetesApiDouble())
        self.world = RolloutWorld(config=load_config(config_path_for("dev")), kube=kube).build()
        self.world.judge_runtime_metrics()  # the canary is judged on its serving runtime's figures too
        self.world.set_policy(**POLICY)
        first_deploy(self.world)
        self._items = self._table_items()
        self._kube = kube.snapshot()

    def reset(self) -> RolloutWorld:
        world = self.world
        dynamodb = world.dynamodb
        for item in self._table_items():
            dynamodb.delete_item(TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]})
        for item in self._items:
            dynamodb.put_item(TableName=TABLE, Item=item)
        world.kube.restore(self._kube)
        world.clients.elbv2.modify_rule(
            RuleArn=world.routing.rule,
            Actions=[
                {
                    "Type": "forward",
                    "ForwardConfig": {
                        "TargetGroups": [
                            {"TargetGroupArn": world.routing.stable_target_group, "Weight": 100},
                            {"TargetGroupArn": world.routing.canary_target_group, "Weight": 0},
                        ]
                    },
                }
            ],
        )
        world.register_canary_targets(0)
        world.clients.cloudwatch.set_alarm_state(AlarmName=world.service_alarm, StateValue="OK", StateReason="reset")
        world.notices()  # drained
        world.settle.pending.clear()
        world.faults.clear()
        world.prometheus.faults.clear()
        return world

    def close(self) -> None:
        self._stack.close()

    def _table_items(self) -> list[dict]:
        pages = self.world.dynamodb.get_paginator("scan").paginate(TableName=TABLE)
        return [item for page in pages for item in page["Items"]]


class RolloutActors(RuleBasedStateMachine):
    definition: ClassVar[dict] = {}  # the synthesized ASL, set by the test before it runs the machine
    shared: ClassVar[SharedWorld | None] = None  # likewise

    def __init__(self) -> None:
        super().__init__()
        assert self.shared is not None, "set RolloutActors.shared (a SharedWorld) first"
        self.world = self.shared.reset()
        self.sfn = StepFunctionsDouble(self.definition, invoke=self.world.invoke_action, clock=self.world.clock)
        self.world.clients.stepfunctions = self.sfn  # the engine asks the double whether a lock's holder runs
        self.executions: list[str] = []
        # execution -> (its task's event, what its lock check answered, when Lambda ends it)
        self.late: dict[str, tuple[dict, Any, datetime]] = {}
        self.events: list[dict] = []  # status changes EventBridge has yet to deliver
        self.announced: dict[str, list[str]] = {}
        self.ended: set[str] = set()
        self.floor = self._config_floor()
        self.queued_faults = 0

    # -- executions ---------------------------------------------------------------------------------------
    @precondition(lambda self: len(self._running()) < 2)
    @rule(version=st.sampled_from([NEW_VERSION, STABLE_VERSION]), approval=st.booleans())
    def start(self, version: str, approval: bool) -> None:
        request = {"service": SERVICE, "version": version, "overrides": {"manual_approval": True} if approval else {}}
        name = f"{SERVICE}-{len(self.executions)}"
        self.executions.append(
            self.sfn.start_execution(stateMachineArn=MACHINE, name=name, input=json.dumps(request))["executionArn"]
        )

    @precondition(lambda self: self._steppable())
    @rule(which=CHOICE, times=st.integers(1, 8))
    def step(self, which: int, times: int) -> None:
        arn = pick(self._steppable(), which)
        for _ in range(times):
            if self.sfn.step(arn) is None:
                break
        self._noticed_end(arn)

    @precondition(lambda self: self._can_begin_late())
    @rule(which=CHOICE)
    def begin_late(self, which: int) -> None:
        """A task's invocation starts and passes (or fails) its lock check now; its writes land later, but before
        the function's timeout (Lambda ends the invocation there: time never passes a late one's deadline)."""
        arn = pick(self._can_begin_late(), which)
        event = self.sfn.next_task_event(arn)
        locks = self.world.clients.ledger.locks
        try:
            answer: Any = locks.guard(SERVICE, execution=arn)
        except Exception as error:
            answer = error
        self.late[arn] = (event, answer, self.world.clock() + timedelta(seconds=ROLLOUT_FUNCTION_TIMEOUT_SECONDS))

    @precondition(lambda self: self.late)
    @rule(which=CHOICE)
    def land(self, which: int) -> None:
        arn = pick(sorted(self.late), which)
        event, answer, _ = self.late.pop(arn)
        locks = self.world.clients.ledger.locks

        def stale_guard(*_: Any, **__: Any) -> dict:
            if isinstance(answer, Exception):
                raise answer
            return dict(answer)

        locks.guard = stale_guard  # type: ignore[method-assign]
        try:
            result, error = self.world.invoke_action(event), None
        except Exception as raised:
            result, error = None, raised
        finally:
            del locks.guard
        self.sfn.complete_task(arn, result, error)
        self._noticed_end(arn)

    @precondition(lambda self: self._running())
    @rule(which=CHOICE)
    def stop(self, which: int) -> None:
        arn = pick(self._running(), which)
        self.sfn.stop_execution(executionArn=arn)
        self._noticed_end(arn)

    # -- the safety net ----------------------------------------------------------------------------------
    @precondition(lambda self: self.events)
    @rule(which=CHOICE)
    def deliver_status_change(self, which: int) -> None:
        event = self.events.pop(which % len(self.events))
        try:
            self.world.invoke_action(event)
        except TransientError:
            self.events.append(event)  # Lambda retries the asynchronous invocation

    @rule()
    def settle(self) -> None:
        self._advance(QUIESCENCE_SECONDS)
        for message in self.world.settle.due(self.world.clock()):
            try:
                self.world.invoke_action(settle_event(message))
            except TransientError:
                self.world.settle.later(message, not_before=self.world.clock())  # the queue delivers it again

    # -- an operator ----------------------------------------------------------------------------------------
    @precondition(lambda self: self._running())
    @rule(which=CHOICE)
    def abort(self, which: int) -> None:
        """What `tessera rollout abort` does: ask the holder to stop, and fail its approval task if it waits."""
        arn = pick(self._running(), which)
        self.world.clients.ledger.locks.request_abort(SERVICE, execution=arn, reason="abort", by="oncall")
        token = self.sfn.executions[arn].token
        if token:
            self.sfn.send_task_failure(taskToken=token, error="AbortRequestedError", cause="abort")

    @precondition(lambda self: self._waiting_for_approval())
    @rule(which=CHOICE, approve=st.booleans())
    def decide(self, which: int, approve: bool) -> None:
        arn = pick(self._waiting_for_approval(), which)
        token = self.sfn.executions[arn].token
        if approve:
            self.sfn.send_task_success(taskToken=token, output="{}")
        else:
            self.sfn.send_task_failure(taskToken=token, error="Rejected", cause="not this one")

    @rule()
    def unlock_force(self) -> None:
        """`tessera rollout unlock --force`, as the CLI allows it; an operator's hold is fixed by hand first."""
        holder = self.world.clients.ledger.locks.holder(SERVICE)
        if holder is None:
            return
        ledger = self.world.clients.ledger
        if unlock_refusal(self.sfn, ledger, SERVICE, holder, self.world.clock()) is not None:
            return
        self._fix_by_hand(holder)  # the documented procedure: clean up, then unlock
        ledger.locks.force_unlock(SERVICE)

    # -- a deploy, time, faults ----------------------------------------------------------------------------
    @rule(level=st.sampled_from(["info", "debug"]), floor=st.integers(1, 2))
    def deploy(self, level: str, floor: int) -> None:
        objects = rendered(self.world.config, env={"LOG_LEVEL": level})
        for obj in objects:
            if obj["kind"] == SCALED_OBJECT_KIND:
                obj["spec"]["minReplicaCount"] = floor
        for _ in range(MAX_QUEUED_FAULTS + 1):  # a failed deploy rolls back; the operator deploys again
            try:
                deploy_tracks(self.world, objects, "Update")
                break
            except (TransientError, RolloutError):
                continue
        else:
            raise AssertionError("the deploy never went through")
        self.floor = floor

    @rule(seconds=st.sampled_from([1, 30, 120, 900]))
    def time_passes(self, seconds: int) -> None:
        self._advance(seconds)

    @rule(action=st.sampled_from(ACTIONS), fault=st.sampled_from(sorted(LAMBDA_FAULTS)))
    def lambda_fault(self, action: str, fault: str) -> None:
        self.world.faults.setdefault(action, []).append(LAMBDA_FAULTS[fault])

    @precondition(lambda self: self.queued_faults < MAX_QUEUED_FAULTS)
    @rule(fault=st.sampled_from([("GET", 503), ("PUT", 503), ("PUT", 409)]))
    def kubernetes_fault(self, fault: tuple[str, int]) -> None:
        self.world.kube.fail_next(*fault)
        self.queued_faults += 1

    @precondition(lambda self: self.queued_faults < MAX_QUEUED_FAULTS)
    @rule(status=st.sampled_from([429, 503, 403]))
    def workspace_fault(self, status: int) -> None:
        """The Prometheus workspace throttles, is unavailable, or denies the judge's next query."""
        self.world.prometheus.faults.append(status)
        self.queued_faults += 1

    # -- invariants -----------------------------------------------------------------------------------
    @invariant()
    def a_lock_never_exists_without_its_record(self) -> None:
        ledger = self.world.clients.ledger
        holder = ledger.locks.holder(SERVICE)
        if holder is not None:
            record = ledger.record(SERVICE, holder["record"])
            assert record is not None, f"lock without record: {holder}"
            assert record.status == "RUNNING" or holder.get("operator"), (holder, record.status)
            if holder.get("operator"):
                assert "lease_until" not in holder, "an operator's hold must never expire"

    @invariant()
    def with_the_lock_free_the_service_is_at_rest(self) -> None:
        if self.world.clients.ledger.locks.holder(SERVICE) is None:
            assert self._not_at_rest() == [], self._not_at_rest()

    @invariant()
    def no_outcome_is_announced_twice(self) -> None:
        for notice in self.world.notices():
            self.announced.setdefault(notice["execution"], []).append(notice["status"])
        for arn, statuses in self.announced.items():
            endings = [s for s in statuses if s != "APPROVAL_NEEDED"]
            assert len(endings) <= 1, (arn, endings)

    def teardown(self) -> None:
        self._run_to_the_end()
        self._assert_every_ending()

    # -- the end -----------------------------------------------------------------------------------------
    def _run_to_the_end(self) -> None:
        self.world.faults.clear()
        self.world.kube.clear_faults()
        while self.late:
            self.land(0)
        for _ in range(ENDING_STEPS):
            if not (self._running() or self.events or self.world.settle.pending):
                return
            for arn in self._waiting_for_approval():
                self.sfn.send_task_success(taskToken=self.sfn.executions[arn].token, output="{}")
            for arn in self._running():
                self.sfn.step(arn)
                self._noticed_end(arn)
            while self.events:
                self.deliver_status_change(0)
            self.settle()
        raise AssertionError(f"not ended after {ENDING_STEPS} rounds: {self._running()}")

    def _assert_every_ending(self) -> None:
        ledger = self.world.clients.ledger
        self.no_outcome_is_announced_twice()
        holder = ledger.locks.holder(SERVICE)
        assert holder is None or holder.get("operator"), f"a lock left behind: {holder}"
        for arn in self.executions:
            record = ledger.record_for(SERVICE, arn)
            endings = [s for s in self.announced.get(arn, []) if s != "APPROVAL_NEEDED"]
            status = record.status if record else "REFUSED"
            assert status != "RUNNING", f"{arn} ended but its record is RUNNING"
            assert endings == [status], (arn, endings, status)
        if holder is None:
            assert self._not_at_rest() == [], self._not_at_rest()

    def _advance(self, seconds: int) -> None:
        """Let time pass; a late invocation whose deadline falls within lands first (the latest it can)."""
        until = self.world.clock() + timedelta(seconds=seconds)
        while overdue := [arn for arn, (_, _, deadline) in sorted(self.late.items()) if deadline <= until]:
            self.land(sorted(self.late).index(overdue[0]))
        self.world.clock.advance(seconds)

    # -- reading the world ------------------------------------------------------------------------------
    def _running(self) -> list[str]:
        return [arn for arn in self.executions if self.sfn.executions[arn].status == RUNNING]

    def _steppable(self) -> list[str]:
        return [arn for arn in self._running() if arn not in self.late and not self.sfn.executions[arn].token]

    def _can_begin_late(self) -> list[str]:
        return [arn for arn in self._steppable() if self.sfn.next_task_event(arn) is not None]

    def _waiting_for_approval(self) -> list[str]:
        return [arn for arn in self._running() if self.sfn.executions[arn].token and arn not in self.late]

    def _noticed_end(self, arn: str) -> None:
        if self.sfn.executions[arn].status != RUNNING and arn not in self.ended:
            self.ended.add(arn)
            self.events.append(status_change_event(self.sfn.describe_execution(executionArn=arn)))

    def _config_floor(self) -> int:
        [scaler] = [obj for obj in rendered(self.world.config) if obj["kind"] == SCALED_OBJECT_KIND]
        return int(scaler["spec"]["minReplicaCount"])

    def _not_at_rest(self) -> list[str]:
        world, ledger = self.world, self.world.clients.ledger
        found = []
        if world.weights()[world.routing.canary_target_group] != 0:
            found.append(f"weights {world.weights()}")
        if world.canary_replicas() != 0:
            found.append(f"canary has {world.canary_replicas()} replicas")
        pointer = ledger.pointer(SERVICE)["stable"]
        if world.deployed_version("stable") != pointer:
            found.append(f"stable runs {world.deployed_version('stable')}, the pointer names {pointer}")
        floor = world.kube.autoscaler_floor(NAMESPACE, "assistant-stable")
        if floor != self.floor:
            found.append(f"stable's floor is {floor}, config's {self.floor}")
        return found

    def _fix_by_hand(self, holder: dict) -> None:
        """What the operator does before freeing a lock: put the service at rest (as the clean-up would have)."""
        record = self.world.clients.ledger.record(SERVICE, holder["record"])
        assert record is not None
        assert return_to_rest(record.plan, record.progress or Progress(), self.world.clients, restore_stable=True) == []


def pick(candidates: list[str], which: int) -> str:
    """The `which`-th candidate, counting round: a plain integer keeps a failing sequence printable as it ran."""
    return candidates[which % len(candidates)]
