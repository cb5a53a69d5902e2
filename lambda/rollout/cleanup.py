"""Every way a rollout ends short of promotion inside its execution: Rollback, and the hand-over to an operator
when Rollback cannot finish (rollout.safety_net handles an execution that ended without either).

All of them bring the service back to rest the same way (`return_to_rest`), in this order:
1. traffic to stable 100 / canary 0,
2. stable's Deployment back to what it ran before, if promotion had started to change it,
3. the canary to 0 replicas (only once its traffic is gone: never send users to pods that are leaving),
4. stable's autoscaler floor back to its own minimum.
Each stage is idempotent and best-effort: a failed stage is reported, the others still run.
"""

from __future__ import annotations

import json
from typing import Any

from rollout.clients import Clients, record_lifecycle
from rollout.contract import Plan, Progress
from rollout.contract.records import AuditEntry, AuditKind, RolloutRecord
from rollout.errors import CleanupIncompleteError
from rollout.kube.deployments import running_placement
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

# Errors that say the version itself is bad: only these mark it ROLLED_BACK. Everything else (the
# infrastructure, an abort, a timeout) leaves the version startable again.
VERDICT_ERRORS = frozenset({"CanaryFailed", "Rejected"})
OUTCOME_BY_ERROR = {"AbortRequestedError": ABORTED}


def return_to_rest(plan: Plan, progress: Progress, clients: Clients, *, restore_stable: bool) -> list[str]:
    """Run every clean-up stage; return what could not be done (empty: the service is at rest)."""
    left = []
    traffic_moved = _stage(left, "traffic", lambda: _stable_takes_all(plan, clients))
    if restore_stable and progress.stable is not None:
        _stage(left, "stable", lambda: _restore_stable(plan, progress, clients))
    if traffic_moved:
        _stage(left, "canary", lambda: clients.kube.scale(plan.namespace, plan.canary_deployment, 0))
    else:
        left.append("canary: kept running because its traffic could not be moved to stable")
    if progress.stable is not None and progress.stable.autoscaler_min is not None:
        floor = progress.stable.autoscaler_min
        _stage(
            left,
            "autoscaler",
            lambda: clients.kube.set_autoscaler_floor(
                plan.namespace, plan.stable_autoscaler_kind, plan.stable_autoscaler, floor
            ),
        )
    return left


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


# -- Rollback --------------------------------------------------------------------------------------
def rollback(plan: Plan, progress: Progress, error: dict | None, clients: Clients) -> dict:
    """Return the service to rest, record the outcome, free the lock, announce it. A clean-up that cannot
    finish raises CleanupIncompleteError: the state machine retries, then hands over to an operator."""
    name, reason = error_name(error), error_text(error)
    done = final_record(plan, clients)
    if done is not None:  # a repeated delivery, or Finalize's retries ran out after its commit: the outcome stands
        clients.announcer.outcome(plan.service, plan.version, plan.execution, done.status, done.reason or "")
        return {"outcome": done.status, "reason": done.reason or ""}
    lock = clients.ledger.lock_holder(plan.service)
    if lock is None or lock.get("execution") != plan.execution or lock.get("revoked"):
        # Someone else owns the service now: touching it would undo their rollout.
        return finish(plan, clients, FAILED, f"{reason}; the lock was no longer this rollout's, nothing was undone")
    left = return_to_rest(plan, progress, clients, restore_stable=True)
    if left:
        raise CleanupIncompleteError("; ".join(left))
    outcome = ROLLED_BACK if name in VERDICT_ERRORS else OUTCOME_BY_ERROR.get(name, FAILED)
    clients.ledger.set_canary(plan.service, None)
    record = clients.ledger.version(plan.service, plan.version)
    if record is not None and progress.deployed:
        # ROLLED_BACK (the version's state and history) only for a verdict on the version itself.
        verdict = outcome == ROLLED_BACK and record["state"] != PROMOTED
        kind = EVENT_ROLLED_BACK if verdict else EVENT_ROLLOUT_FAILED
        history(clients, plan, kind, {"outcome": outcome, "reason": reason})
    rolled_back = AuditEntry(kind=AuditKind.ROLLBACK, outcome=outcome, details={"reason": reason})
    clients.ledger.record_decision(plan, rolled_back)
    result = finish(plan, clients, outcome, reason)
    clients.ledger.release_lock(plan.service, execution=plan.execution)
    return result


def hand_to_operator(plan: Plan, progress: Progress, error: dict | None, clients: Clients) -> dict:
    """Rollback gave up. Try the clean-up once more; what still cannot be undone is handed to a person,
    with the service kept locked and a notification that says what is left."""
    done = final_record(plan, clients)
    if done is not None:
        return {"outcome": done.status, "reason": done.left_to_undo or done.reason or ""}
    lock = clients.ledger.lock_holder(plan.service) or {}
    if lock.get("execution") != plan.execution:
        return finish(plan, clients, FAILED, f"{error_text(error)}; the lock was no longer this rollout's")
    remaining = return_to_rest(plan, progress, clients, restore_stable=True)
    if not remaining:
        result = finish(plan, clients, FAILED, f"rolled back after: {error_text(error)}")
        clients.ledger.release_lock(plan.service, execution=plan.execution)
        return result
    left = "; ".join(remaining)
    clients.ledger.hand_to_operator(plan.service, execution=plan.execution, left=left)
    history(clients, plan, EVENT_ROLLOUT_FAILED, {"outcome": NEEDS_OPERATOR, "reason": left})
    clients.ledger.finish_record(plan.service, plan.execution, NEEDS_OPERATOR, reason="rollback incomplete", left=left)
    clients.announcer.outcome(
        plan.service, plan.version, plan.execution, NEEDS_OPERATOR, f"rollback incomplete, left to undo: {left}"
    )
    return {"outcome": NEEDS_OPERATOR, "reason": left}


def history(clients: Clients, plan: Plan, kind: str, detail: dict) -> None:
    """Add a rollout event to the version's history (a version the registry does not hold has none)."""
    try:
        record_lifecycle(clients, plan, kind, detail)
    except LookupError:  # a version the registry does not hold has no history to add to
        return


def final_record(plan: Plan, clients: Clients) -> RolloutRecord | None:
    record = clients.ledger.record_for(plan.service, plan.execution)
    return record if record is not None and record.status != RUNNING else None


def finish(plan: Plan, clients: Clients, outcome: str, reason: str) -> dict:
    clients.ledger.finish_record(plan.service, plan.execution, outcome, reason=reason)
    clients.announcer.outcome(plan.service, plan.version, plan.execution, outcome, reason)
    return {"outcome": outcome, "reason": reason}


# -- reading errors --------------------------------------------------------------------------------
def error_name(error: dict | None) -> str:
    return (error or {}).get("Error", "")


def error_text(error: dict | None) -> str:
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
