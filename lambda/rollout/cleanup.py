"""Every way a rollout ends short of promotion: Rollback, the hand-over to an operator when Rollback cannot
finish, and the clean-up after a holder that is gone (a start that takes its lock over). rollout.safety_net
handles an execution that ended without any of them.

All of them bring the service back to rest the same way (`return_to_rest`), in this order:
1. traffic to stable 100 / canary 0,
2. stable's Deployment back to what it ran before, if promotion had started to change it,
3. the canary to 0 replicas (only once its traffic is gone: never send users to pods that are leaving),
4. stable's autoscaler floor back to its value at rest (config's, as a deploy during the rollout set it).
Each stage is idempotent and best-effort: a failed stage is reported, the others still run.

The outcome follows from the error that ended the rollout (`outcome_of`): ROLLED_BACK only for a verdict on
the version itself (a failed judgement of the canary's own figures, a rejection); an abort is ABORTED;
everything else (infrastructure, an inconclusive canary, a stable-side alarm, a stop) is FAILED and leaves the
version startable. The hand-over to an operator keeps that outcome's verdict on the version.
"""

from __future__ import annotations

import json
from typing import Any

from rollout.clients import Clients, record_lifecycle
from rollout.contract import Plan, Progress
from rollout.contract.outcomes import Outcome
from rollout.contract.records import AuditEntry, AuditKind
from rollout.errors import CleanupIncompleteError, RolloutError, RolloutInProgressError
from rollout.kube.deployments import running_placement
from rollout.locks import Finished
from rollout.traffic import set_weights
from tessera_shared.constants import (
    ABORTED,
    EVENT_ROLLED_BACK,
    EVENT_ROLLOUT_FAILED,
    FAILED,
    MODEL_VERSION_LABEL,
    NEEDS_OPERATOR,
    PROMOTED,
    ROLLED_BACK,
    RUNNING,
)

# Errors that say the version itself is bad: only these mark it ROLLED_BACK.
VERDICT_ERRORS = frozenset({"CanaryFailed", "Rejected"})
OUTCOME_BY_ERROR = {"AbortRequestedError": ABORTED}


def return_to_rest(plan: Plan, progress: Progress, clients: Clients, *, restore_stable: bool) -> list[str]:
    """Run every clean-up stage; return what could not be done (empty: the service is at rest)."""
    left: list[str] = []
    traffic_moved = _stage(left, "traffic", lambda: _stable_takes_all(plan, clients))
    if restore_stable and progress.stable is not None:
        _stage(left, "stable", lambda: _restore_stable(plan, progress, clients))
    if traffic_moved:
        _stage(left, "canary", lambda: clients.kube.scale(plan.namespace, plan.canary_deployment, 0))
    else:
        left.append("canary: kept running because its traffic could not be moved to stable")
    floor = _floor_at_rest(plan, progress, clients)
    if floor is not None:
        _stage(
            left,
            "autoscaler",
            lambda: clients.kube.set_autoscaler_floor(
                plan.namespace, plan.stable_autoscaler_kind, plan.stable_autoscaler, floor
            ),
        )
    return left


def _floor_at_rest(plan: Plan, progress: Progress, clients: Clients) -> int | None:
    """Stable's floor at rest: what a deploy during the rollout set (recorded on the lock), else its value when
    the rollout started."""
    lock = clients.ledger.locks.item(plan.service) or {}
    if lock.get("execution") == plan.execution and lock.get("deploy_floor") is not None:
        return int(lock["deploy_floor"])
    return progress.stable.autoscaler_min if progress.stable is not None else None


def _stage(left: list[str], name: str, action: Any) -> bool:
    try:
        action()
    except Exception as error:  # best-effort: report it and go on with the next stage
        left.append(f"{name}: {type(error).__name__}: {error}")
        return False
    return True


def _stable_takes_all(plan: Plan, clients: Clients) -> None:
    set_weights(
        clients.elbv2, rule_arn=plan.rule_arn, stable_tg=plan.stable_tg, canary_tg=plan.canary_tg, canary_weight=0
    )


def _restore_stable(plan: Plan, progress: Progress, clients: Clients) -> None:
    """Put back what stable ran before, and where, if the Deployment now runs something else (promotion
    started, even if the step that started it never reported back)."""
    snapshot = progress.stable
    assert snapshot is not None  # noqa: S101 - checked by the caller
    stable = clients.kube.get_deployment(plan.namespace, plan.stable_deployment)
    running = stable["spec"]["template"].get("metadata", {}).get("labels", {}).get(MODEL_VERSION_LABEL)
    moved = snapshot.placement is not None and running_placement(stable) != snapshot.placement
    if running == snapshot.model_version and not moved:
        return
    clients.kube.set_version(
        plan.namespace,
        plan.stable_deployment,
        image=snapshot.image,
        model_version=snapshot.model_version,
        model_uri=snapshot.model_uri,
        placement=snapshot.placement,
    )


# -- Rollback and the hand-over ----------------------------------------------------------------------
def rollback(plan: Plan, progress: Progress, error: dict[str, Any] | None, clients: Clients) -> dict[str, Any]:
    """Return the service to rest, then finish the record with the outcome and free the lock (one
    transaction), and announce it. A clean-up that cannot finish raises CleanupIncompleteError: the state
    machine retries, then hands over to an operator."""
    return _end_short(plan, progress, error, None, clients)


def hand_to_operator(
    plan: Plan, progress: Progress, error: dict[str, Any] | None, cleanup_error: dict[str, Any] | None, clients: Clients
) -> dict[str, Any]:
    """Rollback gave up. Try the clean-up once more; what still cannot be undone is handed to a person, with
    the service kept locked and a notification that says what is left. The rollout's own verdict (the error
    that sent it to Rollback) still decides what the version's history says."""
    return _end_short(plan, progress, error, cleanup_error, clients)


def _end_short(
    plan: Plan, progress: Progress, error: dict[str, Any] | None, cleanup_error: dict[str, Any] | None, clients: Clients
) -> dict[str, Any]:
    record = clients.ledger.record_for(plan.service, plan.execution)
    if record is not None and record.plan != plan:  # an event is a claim: clean up only what this rollout recorded
        raise RolloutError(f"{plan.service}: the plan sent differs from the one this rollout recorded")
    if record is not None and record.status != RUNNING:
        # A repeated delivery, or Finalize's retries ran out after its commit: the outcome stands.
        clients.announcer.outcome(plan.service, plan.version, plan.execution, record.status, record.reason or "")
        return {"outcome": record.status, "reason": record.reason or record.left_to_undo or ""}
    outcome, reason = outcome_of(error), error_text(error)
    # What its steps recorded (stable's snapshot above all), not the event's copy: the clean-up puts it back.
    progress = (record.progress if record is not None else None) or progress
    owner = _take_back_lock(plan, clients)
    if owner == "other":  # another live rollout owns the service now: touching it would undo its work
        reason = f"{reason}; the lock was another rollout's, nothing was undone"
        clients.ledger.finish_record(plan.service, plan.execution, FAILED, reason=reason)
        clients.announcer.outcome(plan.service, plan.version, plan.execution, FAILED, reason)
        return {"outcome": FAILED, "reason": reason}
    left = return_to_rest(plan, progress, clients, restore_stable=True)
    if not left:
        clients.ledger.set_canary(plan.service, None)
    if owner == "revoked":  # this execution was stopped: the safety net finishes it once it is quiescent
        return {"outcome": FAILED, "reason": f"{reason}; stopped, the safety net finishes it"}
    if left and cleanup_error is None:
        raise CleanupIncompleteError("; ".join(left))
    _version_history(clients, plan, progress, outcome, reason)
    if left:
        remaining = "; ".join(left)
        reason = f"{reason}; rollback incomplete after: {error_text(cleanup_error)}"
        clients.ledger.locks.hand_to_operator(
            plan.service, execution=plan.execution, outcome=NEEDS_OPERATOR, reason=reason, left=remaining
        )
        clients.announcer.outcome(
            plan.service, plan.version, plan.execution, NEEDS_OPERATOR, f"{reason}; left to undo: {remaining}"
        )
        return {"outcome": NEEDS_OPERATOR, "reason": remaining}
    clients.ledger.record_decision(
        plan, AuditEntry(kind=AuditKind.ROLLBACK, outcome=Outcome(outcome), details={"reason": reason})
    )
    clients.ledger.locks.finish(plan.service, execution=plan.execution, outcome=outcome, reason=reason)
    clients.announcer.outcome(plan.service, plan.version, plan.execution, outcome, reason)
    return {"outcome": outcome, "reason": reason}


def _take_back_lock(plan: Plan, clients: Clients) -> str:
    """Whose the lock is for this clean-up: "mine" (held, or free and taken back at a new epoch), "revoked"
    (held but revoked: this execution was stopped) or "other" (another rollout holds it)."""
    locks = clients.ledger.locks
    seen = locks.item(plan.service)
    holder = (seen or {}).get("execution")
    if holder == plan.execution:
        return "revoked" if seen and (seen.get("revoked") and not seen.get("operator")) else "mine"
    if holder is not None:
        return "other"
    try:  # freed under it (a forced unlock): take it back so nobody starts on a service not yet at rest
        locks.retake(plan, seen=seen)
    except RolloutInProgressError:
        return "other"
    return "mine"


def outcome_of(error: dict[str, Any] | None) -> str:
    name = error_name(error)
    return ROLLED_BACK if name in VERDICT_ERRORS else OUTCOME_BY_ERROR.get(name, FAILED)


def _version_history(clients: Clients, plan: Plan, progress: Progress, outcome: str, reason: str) -> None:
    """ROLLED_BACK (the version's state and history) only for a verdict on the version itself."""
    record = clients.ledger.version(plan.service, plan.version)
    if record is None or not progress.deployed:
        return
    verdict = outcome == ROLLED_BACK and record["state"] != PROMOTED
    history(
        clients, plan, EVENT_ROLLED_BACK if verdict else EVENT_ROLLOUT_FAILED, {"outcome": outcome, "reason": reason}
    )


def history(clients: Clients, plan: Plan, kind: str, detail: dict[str, Any]) -> None:
    """Add a rollout event to the version's history (a version the registry does not hold has none)."""
    try:
        record_lifecycle(clients, plan, kind, {**detail, "reason": str(detail.get("reason", ""))[:2000]})
    except LookupError:
        return


# -- after a holder that is gone ---------------------------------------------------------------------
def settle_after(holder: dict[str, Any], clients: Clients) -> Finished:
    """Bring the service to rest from a gone holder's record before its lock is taken over; returns how its
    record ends (written with the take-over). What cannot be undone is handed to an operator, and the start
    refused with what is left."""
    execution = holder["execution"]
    record = clients.ledger.record(_service_of(holder), holder["record"])
    if record is None:  # a lock never exists without its record; refuse rather than guess
        raise RolloutInProgressError(f"the lock of {_service_of(holder)} names no record ({holder['record']})")
    plan, progress = record.plan, record.progress or Progress()
    reason = f"execution {execution} stopped; cleaned up by the next rollout"
    left = return_to_rest(plan, progress, clients, restore_stable=True)
    if left:
        remaining = "; ".join(left)
        clients.ledger.locks.hand_to_operator(
            plan.service, execution=execution, outcome=NEEDS_OPERATOR, reason=reason, left=remaining
        )
        clients.announcer.outcome(plan.service, plan.version, execution, NEEDS_OPERATOR, remaining)
        raise RolloutInProgressError(
            f"{plan.service}: the last rollout ({execution}) left {remaining}; it is held for an operator"
        )
    if progress.deployed:
        history(clients, plan, EVENT_ROLLOUT_FAILED, {"outcome": FAILED, "reason": reason})
    return Finished(record=holder["record"], outcome=FAILED, reason=reason)


def _service_of(holder: dict[str, Any]) -> str:
    return str(holder["pk"]).removeprefix("SERVICE#")


# -- reading errors --------------------------------------------------------------------------------
def error_name(error: dict[str, Any] | None) -> str:
    return str((error or {}).get("Error", ""))


def error_text(error: dict[str, Any] | None) -> str:
    if not error:
        return "rolled back"
    cause = error.get("Cause", "")
    parsed = parse_json(cause) if isinstance(cause, str) and cause[:1] in "[{" else cause
    if isinstance(parsed, dict):  # a Lambda error: {"errorType": ..., "errorMessage": ...}
        cause = parsed.get("errorMessage", cause)
    elif isinstance(parsed, list):  # the judgement's reasons
        cause = "; ".join(str(reason) for reason in parsed)
    return f"{error.get('Error', 'Error')}: {cause}".strip()


def parse_json(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else (text or {})
    except ValueError:
        return {}
