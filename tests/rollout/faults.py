"""Fault injection for whole rollouts: each fault class is armed for the invocations of one action of the
state machine (its first invocation for passing faults, every invocation for lasting ones) and disarmed
after, so that the fault strikes exactly "at that state"."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from rollout.contract.records import RolloutRecord
from tests.rollout.harness import NAMESPACE, After, LambdaThrottledDouble, LambdaTimeoutDouble, RolloutWorld
from tests.rollout.scenarios import Rollouts

CLOSED_PORT_ENDPOINT = "http://127.0.0.1:9"  # nothing listens there: the API is unreachable


@dataclass(frozen=True)
class Fault:
    name: str
    arm: Callable[[RolloutWorld, str], None]


def _lambda(error: Exception | After) -> Callable[[RolloutWorld, str], None]:
    def arm(world: RolloutWorld, action: str) -> None:
        world.faults[action] = [error]

    return arm


def _around(
    world: RolloutWorld, action: str, *, every: bool, start: Callable[[], None], stop: Callable[[], None]
) -> None:
    """Run `start` before the action's invocation(s) and `stop` after each."""
    original = world.invoke_action
    state = {"armed": True}

    def invoke(event: dict) -> dict:
        if event.get("action") != action or not state["armed"]:
            return original(event)
        start()
        try:
            return original(event)
        finally:
            stop()
            if not every:
                state["armed"] = False

    world.invoke_action = invoke  # type: ignore[method-assign]


def _kube_status(code: int, *, every: bool, method: str | None = None) -> Callable[[RolloutWorld, str], None]:
    def arm(world: RolloutWorld, action: str) -> None:
        methods = [method] if method else ["GET", "PUT", "POST", "DELETE"]
        _around(
            world,
            action,
            every=every,
            start=lambda: [world.kube.fail_next(m, code, times=1000) for m in methods],
            stop=world.kube.clear_faults,
        )

    return arm


def _kube_unreachable(world: RolloutWorld, action: str) -> None:
    kube = world.clients.kube
    endpoint = kube.endpoint

    def start() -> None:
        kube.endpoint = CLOSED_PORT_ENDPOINT

    def stop() -> None:
        kube.endpoint = endpoint

    _around(world, action, every=True, start=start, stop=stop)


def _client_failure(client_name: str, operations: tuple[str, ...], code: str, *, every: bool) -> Callable[..., None]:
    def arm(world: RolloutWorld, action: str) -> None:
        client = getattr(world, client_name) if client_name == "dynamodb" else getattr(world.clients, client_name)
        originals = {op: getattr(client, op) for op in operations}

        def failing(op: str) -> Callable[..., Any]:
            def call(**kwargs: Any) -> Any:
                raise ClientError({"Error": {"Code": code, "Message": f"injected {code}"}}, op)

            return call

        def start() -> None:
            for op in operations:
                setattr(client, op, failing(op))

        def stop() -> None:
            for op, original in originals.items():
                setattr(client, op, original)

        _around(world, action, every=every, start=start, stop=stop)

    return arm


def _abort(world: RolloutWorld, action: str) -> None:
    """An operator's abort arrives just as the action starts (what `tessera rollout abort` writes)."""
    ledger = world.clients.ledger

    def start() -> None:
        holder = ledger.lock_holder("assistant")
        if holder:
            ledger.request_abort("assistant", execution=holder["execution"], reason="injected abort", by="test")

    _around(world, action, every=False, start=start, stop=lambda: None)


def _twice(world: RolloutWorld, action: str) -> None:
    original = world.invoke_action

    def invoke(event: dict) -> dict:
        if event.get("action") == action:
            original(event)  # a duplicated delivery of the same task
        return original(event)

    world.invoke_action = invoke  # type: ignore[method-assign]


FAULTS = {
    fault.name: fault
    for fault in (
        Fault("handler-exception", _lambda(RuntimeError("injected handler exception"))),
        Fault("lambda-timeout", _lambda(After(LambdaTimeoutDouble("Task timed out after 120.00 seconds")))),
        Fault("throttling", _lambda(LambdaThrottledDouble("Rate exceeded"))),
        Fault("kubernetes-503", _kube_status(503, every=False)),
        Fault("kubernetes-403", _kube_status(403, every=True)),
        Fault("kubernetes-409", _kube_status(409, every=False, method="PUT")),
        Fault("kubernetes-unreachable", _kube_unreachable),
        Fault("modify-rule-failure", _client_failure("elbv2", ("modify_rule",), "ValidationError", every=True)),
        Fault(
            "dynamodb-conditional-failure",
            _client_failure(
                "dynamodb",
                ("put_item", "update_item", "delete_item", "transact_write_items"),
                "ConditionalCheckFailedException",
                every=False,
            ),
        ),
        Fault("sns-failure", _client_failure("sns", ("publish",), "InternalError", every=False)),
        Fault("abort", _abort),
        Fault("delivered-twice", _twice),
    )
}

# Every task state's action; the wait states are covered by the abort (seen by the check after a wait).
ACTIONS = (
    "prepare",
    "acquire_lock",
    "preflight",
    "deploy_canary",
    "check_canary_ready",
    "check_warm",
    "scale_canary",
    "shift_traffic",
    "judge_interval",
    "advance",
    "await_approval",
    "promote_stable",
    "check_stable_ready",
    "finalize",
    "rollback",
    "hand_to_operator",
)
POLICY = {"manual_approval": True}


def run_scenario(rollouts: Rollouts, action: str, fault: Fault) -> RolloutRecord | None:
    """One rollout with `fault` at `action`; returns the rollout record after every invariant held."""
    world = rollouts.world
    if action in ("rollback", "hand_to_operator"):
        world.traffic.canary.errors_5xx = 80  # the judge fails the canary, so Rollback runs
    if action == "hand_to_operator":
        _kube_status(403, every=True, method="PUT")(world, "rollback")  # and cannot finish
    fault.arm(world, action)
    _approve_when_asked(rollouts)
    ended = rollouts.settle(rollouts.start(POLICY, timeout=120))
    record = rollouts.assert_invariants(ended)
    if action == "hand_to_operator":
        world.kube.clear_faults()
    return record


def _approve_when_asked(rollouts: Rollouts) -> None:
    """The operator approves every approval request, a moment after it is made."""
    world = rollouts.world
    original = world.invoke_action

    def invoke(event: dict) -> dict:
        result = original(event)
        if event.get("action") == "await_approval":
            threading.Thread(target=_approve, args=(rollouts, event["plan"]), daemon=True).start()
        return result

    world.invoke_action = invoke  # type: ignore[method-assign]


def _approve(rollouts: Rollouts, plan: dict) -> None:
    time.sleep(0.05)
    record = rollouts.world.clients.ledger.record_for(plan["service"], plan["execution"])
    token = record.approval_token if record else None
    if token and record.status == "RUNNING":
        try:
            rollouts.sfn.send_task_success(taskToken=token, output="{}")
        except ClientError:
            return  # the approval task is gone already (an abort or a retry replaced it)


__all__ = ["ACTIONS", "FAULTS", "NAMESPACE", "run_scenario"]
