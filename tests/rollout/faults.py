"""Fault injection for whole rollouts: each fault class is armed for the invocations of one action of the
state machine (its first invocation for passing faults, every invocation for lasting ones) and disarmed
after, so that the fault strikes exactly "at that state".

A scenario proves something only if its fault struck: many faults legitimately end PROMOTED, so an injector
that never fired would look like a well-handled fault. Each armed fault therefore keeps its own record of what
it struck (the Lambda error it raised, the queued Kubernetes error a request consumed, the client call it
failed, the abort it wrote), and `run_scenario` asserts it struck (exactly once for one-shot faults), then
that the rollout ended in an outcome class the fault may end in at that state's phase (docs/rollouts.md "Progressive
rollouts", "How a rollout ends").

The actions are every Task state's action in the synthesized state machine (tests/rollout/task_states.py).
Where a fault has nothing to strike at an action (a PUT fault at a state that makes no PUT), the matrix
excludes the pair with the reason, read from a rollout without faults (`cannot_strike`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from botocore.exceptions import ClientError

from rollout.contract.records import RolloutRecord
from tessera_shared.constants import ABORTED, FAILED, NEEDS_OPERATOR, PROMOTED, REGISTERED, ROLLED_BACK
from tests.rollout.harness import NAMESPACE, After, LambdaThrottledDouble, LambdaTimeoutDouble, RolloutWorld
from tests.rollout.invocations import SERVICE, Invocation, InvocationRecorder, is_evidence_read
from tests.rollout.scenarios import Rollouts
from tests.rollout.task_states import Phase, action_phases, synthesized_task_states

CLOSED_PORT_ENDPOINT = "http://127.0.0.1:9"  # nothing listens there: the API is unreachable
QUEUED_ERRORS = 1000  # per armed invocation: far more requests than any action makes
# No record: the start was refused before the lock (the safety net announces REFUSED).
REFUSED = "REFUSED"
# The state the rolled-out version is left in by each outcome (docs/rollouts.md, "How a rollout ends"): only a
# promotion or a verdict on the version changes it; every other ending leaves it startable.
VERSION_AFTER = {PROMOTED: PROMOTED, ROLLED_BACK: ROLLED_BACK}


@dataclass
class Injection:
    """An armed fault's own record: one entry per strike, saying what it struck."""

    struck: list[str] = field(default_factory=list)


class Armed(Enum):
    FIRST = "its first invocation"  # a passing fault: the retry (or the next poll) runs without it
    EVERY = "every invocation"  # a lasting fault: it outlasts the state's retries


@dataclass(frozen=True)
class Target:
    """What a fault strikes, to tell from a rollout without faults whether an invocation offers it."""

    offered_by: Callable[[Invocation], bool]
    absent: str  # how an invocation that does not offer it is described: "makes no PUT request to ..."


def ends(
    not_started: set[str], rolling_out: set[str], rolling_back: set[str], handing_over: set[str]
) -> Mapping[Phase, frozenset[str]]:
    """The outcome classes a fault may end a rollout in, by the phase of the state it strikes at."""
    return {
        Phase.NOT_STARTED: frozenset(not_started),
        Phase.ROLLING_OUT: frozenset(rolling_out),
        Phase.ROLLING_BACK: frozenset(rolling_back),
        Phase.HANDING_OVER: frozenset(handing_over),
    }


# A fault the state outlasts (a retry, or a best-effort step) ends the rollout as it would end without it:
# promoted; or, where the scenario's set-up fails the judgement so that the clean-up runs, rolled back (the
# verdict stands: only a failed judgement or a rejection rolls back, and the hand-over keeps the original
# verdict, issue 20 "What to build" 9).
AS_WITHOUT_IT = ends({PROMOTED}, {PROMOTED}, {ROLLED_BACK}, {ROLLED_BACK})
# An error the state does not retry (a bug's exception, a refused write): before the lock the start is refused;
# while rolling out the rollout fails and the version stays startable; the clean-up states retry any error.
NOT_RETRIED = ends({REFUSED}, {FAILED}, {ROLLED_BACK}, {ROLLED_BACK})
# A transient infrastructure error is retried, except by the hand-over, which tries its clean-up once and hands
# what it could not undo to a person (docs/rollouts.md: "the hand-over tries once more and keeps the service locked").
TRANSIENT = ends({PROMOTED}, {PROMOTED}, {ROLLED_BACK}, {NEEDS_OPERATOR})
# An infrastructure fault that outlasts the retries: the rollout fails (the version stays startable); one that
# keeps Rollback from finishing leaves it to the hand-over, which finishes it (the verdict stands); one that
# strikes the hand-over leaves what it could not undo to a person.
LASTING = ends({REFUSED}, {FAILED}, {ROLLED_BACK}, {NEEDS_OPERATOR})
# An operator's abort rolls a rollout back as ABORTED; one that arrives once the clean-up of a failed
# judgement runs changes nothing (the verdict came first). Before AcquireLock there is no lock to write it on.
ABORT = ends(set(), {ABORTED}, {ROLLED_BACK}, {ROLLED_BACK})


Arm = Callable[[RolloutWorld, str, Armed], Injection]  # (world, action, for which invocations) -> its record


@dataclass(frozen=True)
class Fault:
    name: str
    arm: Arm
    armed: Armed
    target: Target
    ends: Mapping[Phase, frozenset[str]]
    once: bool = False  # strikes exactly once (one queued Lambda error, one abort)
    # Kubernetes faults: where every strike was a read of the judge's cost evidence, the judgement goes on.
    spares_evidence_reads: bool = False

    def inject(self, world: RolloutWorld, action: str) -> Injection:
        return self.arm(world, action, self.armed)

    def outcomes(self, phase: Phase, injection: Injection) -> frozenset[str]:
        if self.spares_evidence_reads and injection.struck and all(map(is_evidence_read, injection.struck)):
            return AS_WITHOUT_IT[phase]
        return self.ends[phase]


class UnexpectedOutcome(AssertionError):  # noqa: N818 - an assertion, named for what it found
    """The rollout ended in an outcome class its fault may not end in at that state."""


# -- what faults strike ------------------------------------------------------------------------------
INVOCATION = Target(offered_by=lambda _: True, absent="is never invoked")
KUBERNETES = Target(
    offered_by=lambda invocation: bool(invocation.kube_requests), absent="makes no request to the Kubernetes API"
)
KUBERNETES_PUT = Target(
    offered_by=lambda invocation: any(request.startswith("PUT ") for request in invocation.kube_requests),
    absent="makes no PUT request to the Kubernetes API",
)
LOCK = Target(
    offered_by=lambda invocation: invocation.lock_held,
    absent="starts before the service's lock exists, so there is nothing to write an abort on",
)


def aws_call(client_name: str, operations: tuple[str, ...]) -> Target:
    calls = {f"{client_name}.{operation}" for operation in operations}
    return Target(
        offered_by=lambda invocation: not calls.isdisjoint(invocation.aws_calls),
        absent=f"makes no {' / '.join(sorted(calls))} call",
    )


# -- arming ------------------------------------------------------------------------------------------
def _lambda(error: Exception | After) -> Arm:
    """The Lambda invocation itself fails: the harness raises the error queued for the action, once per queued
    error; each invocation that took one is a strike."""

    def arm(world: RolloutWorld, action: str, armed: Armed) -> Injection:
        injection = Injection()
        world.faults[action] = [error] * (1 if armed is Armed.FIRST else QUEUED_ERRORS)
        original = world.invoke_action

        def invoke(event: dict) -> dict:
            if event.get("action") != action or not world.faults.get(action):
                return original(event)
            queued = len(world.faults[action])
            try:
                return original(event)
            finally:
                if len(world.faults[action]) < queued:  # the harness took a queued error: this invocation raised it
                    injection.struck.append(f"{action} raised {type(error).__name__}")

        world.invoke_action = invoke  # type: ignore[method-assign]
        return injection

    return arm


def _around(
    world: RolloutWorld, action: str, *, armed: Armed, start: Callable[[], None], stop: Callable[[], None]
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
            if armed is Armed.FIRST:
                state["armed"] = False

    world.invoke_action = invoke  # type: ignore[method-assign]


def _kube_status(code: int, *, method: str | None = None) -> Arm:
    """The API double answers `code` to every request (of `method`) while armed: each request it received in that
    time consumed one queued error, and is a strike."""
    methods = (method,) if method else ("GET", "PUT", "POST", "DELETE")

    def arm(world: RolloutWorld, action: str, armed: Armed) -> Injection:
        injection = Injection()
        received = [0]

        def start() -> None:
            received[0] = len(world.kube.requests)
            for each in methods:
                world.kube.fail_next(each, code, times=QUEUED_ERRORS)

        def stop() -> None:
            injection.struck += [f"{m} {path}" for m, path in world.kube.requests[received[0] :] if m in methods]
            world.kube.clear_faults()

        _around(world, action, armed=armed, start=start, stop=stop)
        return injection

    return arm


def _kube_unreachable(world: RolloutWorld, action: str, armed: Armed) -> Injection:
    """Nothing listens at the API's address while armed. Nothing reaches the double, so the client counts: its
    one way out (`_request`) is wrapped, and every request it sends meanwhile is a strike."""
    kube = world.clients.kube
    endpoint, send = kube.endpoint, kube._request
    injection = Injection()

    def counted(method: str, resource: Any, namespace: str | None, name: str | None, *args: Any, **kwargs: Any) -> Any:
        injection.struck.append(f"{method} {resource.path(namespace, name)}")
        return send(method, resource, namespace, name, *args, **kwargs)

    def start() -> None:
        kube.endpoint = CLOSED_PORT_ENDPOINT
        kube._request = counted  # type: ignore[method-assign]

    def stop() -> None:
        kube.endpoint = endpoint
        kube._request = send  # type: ignore[method-assign]

    _around(world, action, armed=armed, start=start, stop=stop)
    return injection


def _client_failure(client_name: str, operations: tuple[str, ...], code: str) -> Arm:
    """The client's operations raise `code` while armed; each call is a strike."""

    def arm(world: RolloutWorld, action: str, armed: Armed) -> Injection:
        client = world.dynamodb if client_name == "dynamodb" else getattr(world.clients, client_name)
        originals = {op: getattr(client, op) for op in operations}
        injection = Injection()

        def failing(op: str) -> Callable[..., Any]:
            def call(**_: Any) -> Any:
                injection.struck.append(f"{client_name}.{op}")
                raise ClientError({"Error": {"Code": code, "Message": f"injected {code}"}}, op)

            return call

        def start() -> None:
            for op in operations:
                setattr(client, op, failing(op))

        def stop() -> None:
            for op, original in originals.items():
                setattr(client, op, original)

        _around(world, action, armed=armed, start=start, stop=stop)
        return injection

    return arm


def _abort(world: RolloutWorld, action: str, armed: Armed) -> Injection:
    """An operator's abort arrives just as the action starts (what `tessera rollout abort` writes)."""
    ledger = world.clients.ledger
    injection = Injection()

    def start() -> None:
        holder = ledger.locks.holder(SERVICE)
        if holder and ledger.locks.request_abort(
            SERVICE, execution=holder["execution"], reason="injected abort", by="test"
        ):
            injection.struck.append(f"abort requested before {action}")

    _around(world, action, armed=armed, start=start, stop=lambda: None)
    return injection


def _twice(world: RolloutWorld, action: str, armed: Armed) -> Injection:
    """The action's task is delivered twice (Lambda's at-least-once); each extra delivery is a strike."""
    original = world.invoke_action
    injection = Injection()

    def invoke(event: dict) -> dict:
        if event.get("action") == action and (armed is Armed.EVERY or not injection.struck):
            injection.struck.append(f"{action} delivered again")
            original(event)  # a duplicated delivery of the same task
        return original(event)

    world.invoke_action = invoke  # type: ignore[method-assign]
    return injection


DYNAMODB_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")
FAULTS = {
    fault.name: fault
    for fault in (
        Fault(
            "handler-exception",
            _lambda(RuntimeError("injected handler exception")),
            Armed.FIRST,
            INVOCATION,
            NOT_RETRIED,
            once=True,
        ),
        Fault(
            "lambda-timeout",
            _lambda(After(LambdaTimeoutDouble("Task timed out after 120.00 seconds"))),
            Armed.FIRST,
            INVOCATION,
            AS_WITHOUT_IT,
            once=True,
        ),
        Fault(
            "throttling",
            _lambda(LambdaThrottledDouble("Rate exceeded")),
            Armed.FIRST,
            INVOCATION,
            AS_WITHOUT_IT,
            once=True,
        ),
        Fault(
            "kubernetes-503",
            _kube_status(503),
            Armed.FIRST,
            KUBERNETES,
            TRANSIENT,
            spares_evidence_reads=True,
        ),
        Fault(
            "kubernetes-403",
            _kube_status(403),
            Armed.EVERY,
            KUBERNETES,
            LASTING,
            spares_evidence_reads=True,
        ),
        Fault("kubernetes-409", _kube_status(409, method="PUT"), Armed.FIRST, KUBERNETES_PUT, TRANSIENT),
        Fault(
            "kubernetes-unreachable",
            _kube_unreachable,
            Armed.EVERY,
            KUBERNETES,
            LASTING,
            spares_evidence_reads=True,
        ),
        Fault(
            "modify-rule-failure",
            _client_failure("elbv2", ("modify_rule",), "ValidationError"),
            Armed.EVERY,
            aws_call("elbv2", ("modify_rule",)),
            LASTING,
        ),
        Fault(
            "dynamodb-conditional-failure",
            _client_failure("dynamodb", DYNAMODB_WRITES, "ConditionalCheckFailedException"),
            Armed.FIRST,
            aws_call("dynamodb", DYNAMODB_WRITES),
            NOT_RETRIED,
        ),
        Fault(
            "sns-failure",
            _client_failure("sns", ("publish",), "InternalError"),
            Armed.FIRST,
            aws_call("sns", ("publish",)),
            AS_WITHOUT_IT,  # announcements are best-effort: they never change the outcome
        ),
        Fault("abort", _abort, Armed.FIRST, LOCK, ABORT, once=True),
        Fault("delivered-twice", _twice, Armed.EVERY, INVOCATION, AS_WITHOUT_IT),  # every task is idempotent
    )
}

# Every task state's action in the synthesized state machine; the wait states are covered by the abort (seen by
# the check after a wait).
PHASES = action_phases(list(synthesized_task_states()))
ACTIONS = tuple(PHASES)
POLICY = {"manual_approval": True}


# -- scenarios ---------------------------------------------------------------------------------------
def run_scenario(rollouts: Rollouts, action: str, fault: Fault) -> RolloutRecord | None:
    """One rollout with `fault` at `action`; returns the rollout record (None: refused before the lock) after the
    fault was seen to strike, every invariant held, and the outcome was one the fault may end in."""
    world = rollouts.world
    phase = PHASES[action]
    set_up(world, phase)
    injection = fault.inject(world, action)
    _approve_when_asked(rollouts)
    ended = rollouts.settle(rollouts.start(POLICY, timeout=120))
    assert_struck(fault, action, injection)
    record = rollouts.assert_invariants(ended)
    outcome = record.status if record else REFUSED
    allowed = fault.outcomes(phase, injection)
    if outcome not in allowed:
        raise UnexpectedOutcome(
            f"{fault.name} at {action} ({phase}) ended {outcome}, expected one of {sorted(allowed)}: "
            f"{record.reason if record else ''}"
        )
    version = rollouts.version_state()
    # After a failed judgement the version is ROLLED_BACK even when the clean-up is left to an operator.
    judged = phase in (Phase.ROLLING_BACK, Phase.HANDING_OVER) and outcome == NEEDS_OPERATOR
    if version != (ROLLED_BACK if judged else VERSION_AFTER.get(outcome, REGISTERED)):
        raise UnexpectedOutcome(f"{fault.name} at {action} ended {outcome} but left the version {version}")
    world.kube.clear_faults()
    return record


def set_up(world: RolloutWorld, phase: Phase) -> None:
    """Make the rollout reach the states of `phase`: the clean-up runs after a failed judgement; the hand-over
    runs when Rollback, after its retries, still cannot undo the canary (every PUT refused)."""
    if phase in (Phase.ROLLING_BACK, Phase.HANDING_OVER):
        world.traffic.canary.errors_5xx = 80  # the judge fails the canary, so Rollback runs
    if phase is Phase.HANDING_OVER:
        [clean_up] = [action for action, each in PHASES.items() if each is Phase.ROLLING_BACK]
        _kube_status(403, method="PUT")(world, clean_up, Armed.EVERY)


def assert_struck(fault: Fault, action: str, injection: Injection) -> None:
    strikes = len(injection.struck)
    expected = "exactly 1" if fault.once else "at least 1"
    assert strikes == 1 if fault.once else strikes >= 1, (
        f"{fault.name} armed at {action} struck {strikes} time(s), expected {expected}: {injection.struck}"
    )


def baseline_invocations(rollouts: Rollouts, phase: Phase) -> list[Invocation]:
    """Every invocation of a rollout without faults under `phase`'s set-up, with what each one called."""
    set_up(rollouts.world, phase)
    _approve_when_asked(rollouts)
    recorder = InvocationRecorder(rollouts.world)
    rollouts.assert_invariants(rollouts.settle(rollouts.start(POLICY, timeout=120)))
    return recorder.invocations


def cannot_strike(fault: Fault, action: str, invocations: list[Invocation]) -> str | None:
    """Why `fault` armed at `action` has nothing to strike, judged from a rollout without faults under the same
    set-up (None: it can strike)."""
    runs = [invocation for invocation in invocations if invocation.action == action]
    if not runs:
        return f"{action} is never invoked under its set-up: the matrix cannot test it"
    considered = runs[:1] if fault.armed is Armed.FIRST else runs
    if any(fault.target.offered_by(invocation) for invocation in considered):
        return None
    scope = "its first invocation" if fault.armed is Armed.FIRST else f"every one of its {len(runs)} invocations"
    return f"{fault.name} cannot strike at {action}: in a rollout without faults, {scope} {fault.target.absent}"


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


__all__ = [
    "ACTIONS",
    "FAULTS",
    "NAMESPACE",
    "PHASES",
    "Injection",
    "UnexpectedOutcome",
    "baseline_invocations",
    "cannot_strike",
    "run_scenario",
]
