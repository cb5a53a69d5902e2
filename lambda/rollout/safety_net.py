"""The safety net: what happens after a rollout execution ends, whichever way it ended.

A Step Functions "Execution Status Change" (delivered by an EventBridge rule of the Rollout stack) to SUCCEEDED,
FAILED, TIMED_OUT or ABORTED. A record that is already final only needs its outcome announced (once; a failed
announcement raises, so Lambda's retries and the function's on-failure destination apply). A record still
RUNNING belongs to an execution that ended without Rollback or the hand-over (stopped from outside, timed out,
or failed in a state nothing catches), and is settled in two passes:

1. at once: revoke the lock (no step of the execution passes its guard again), return the service to rest, and
   schedule the second pass for when the execution is quiescent: StopExecution does not stop a Lambda
   invocation already running, so a step that passed its guard before the stop may still write until
   QUIESCENCE_SECONDS after the stop. The lock stays held (revoked) until then, so nobody else starts.
2. once quiescent (`settle`): return the service to rest again (undoing any late write), then finish the record
   and free the lock in one transaction (or hand it to an operator with what is left), and announce.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from rollout.cleanup import history, parse_json, return_to_rest
from rollout.clients import Clients
from rollout.contract import Plan, Progress
from rollout.errors import TransientError
from tessera_shared.constants import (
    ABORTED,
    EVENT_ROLLOUT_FAILED,
    FAILED,
    NEEDS_OPERATOR,
    PROMOTED,
    QUIESCENCE_SECONDS,
    RUNNING,
    TIMED_OUT,
)

STATUS_OUTCOMES = {"ABORTED": ABORTED, "TIMED_OUT": TIMED_OUT, "FAILED": FAILED}
# Endings that can leave an invocation running (StopExecution, the execution's timeout); a Fail state cannot.
STOPPED_FROM_OUTSIDE = frozenset({"ABORTED", "TIMED_OUT"})
REFUSED = "REFUSED"


def execution_ended(detail: dict[str, Any], clients: Clients) -> dict[str, Any]:
    """The first pass, from the status-change event's detail."""
    status, execution = detail.get("status", ""), detail.get("executionArn", "")
    request = parse_json(detail.get("input"))
    service, version = request.get("service"), str(request.get("version", ""))
    cause = f"execution {status}: {detail.get('error') or ''} {detail.get('cause') or ''}".strip()
    if not isinstance(service, str) or not isinstance(execution, str) or not execution:
        return {"outcome": "IGNORED", "reason": "not a rollout execution"}
    record = clients.ledger.record_for(service, execution)
    if record is None:
        if status == "SUCCEEDED":
            return {"outcome": "IGNORED", "reason": "no record"}
        if status in STOPPED_FROM_OUTSIDE:
            # Its AcquireLock may still be on its way, to take the lock after this: look again once quiescent.
            quiet = clients.now() + timedelta(seconds=QUIESCENCE_SECONDS)
            second_pass = {"service": service, "execution": execution, "status": status, "cause": cause}
            clients.settle.later(second_pass | {"version": version}, not_before=quiet)
            return {"outcome": "SETTLING", "quiescent_after": quiet.isoformat()}
        # Refused before it took the lock (its Fail state came after the task ended): nothing changed, but whoever
        # started it should hear why.
        _announce(clients, service, version, execution, REFUSED, cause)
        return {"outcome": REFUSED}
    outcome = record.status
    if outcome != RUNNING:  # finished inside the execution (a SUCCEEDED one committed its promotion): say so
        detail_text = record.reason or (f"{record.version} is now stable" if outcome == PROMOTED else cause)
        _announce(clients, service, record.version, execution, outcome, detail_text)
        return {"outcome": outcome}
    if status == "SUCCEEDED":
        return {"outcome": "IGNORED", "reason": "succeeded without committing: nothing to settle"}
    plan = record.plan
    lock = clients.ledger.locks.item(service) or {}
    if lock.get("execution") != execution:
        return _not_its_lock(plan, clients, cause)
    # From now, not from the event's stopDate: the event may arrive late, never early.
    quiet = clients.now() + timedelta(seconds=QUIESCENCE_SECONDS)
    clients.ledger.locks.revoke(service, execution=execution, quiescent_after=quiet.isoformat())
    return_to_rest(plan, record.progress or Progress(), clients, restore_stable=True)
    clients.settle.later(
        {"service": service, "execution": execution, "status": status, "cause": cause}, not_before=quiet
    )
    return {"outcome": "SETTLING", "quiescent_after": quiet.isoformat()}


def settle(message: dict[str, Any], clients: Clients) -> dict[str, Any]:
    """The second pass, once the stopped execution is quiescent (a message from the settle queue)."""
    service, execution = message.get("service"), message.get("execution")
    status, cause = str(message.get("status", "")), str(message.get("cause", ""))
    if not isinstance(service, str) or not isinstance(execution, str):
        return {"outcome": "IGNORED", "reason": "not a settle message"}
    record = clients.ledger.record_for(service, execution)
    if record is None:  # stopped before it took the lock, and no late AcquireLock took it: nothing changed
        _announce(clients, service, str(message.get("version", "")), execution, REFUSED, cause)
        return {"outcome": REFUSED}
    if record.status != RUNNING:
        _announce(clients, service, record.version, execution, record.status, record.reason or cause)
        return {"outcome": record.status}
    plan = record.plan
    lock = clients.ledger.locks.item(service) or {}
    if lock.get("execution") != execution:
        return _not_its_lock(plan, clients, cause)
    quiet = lock.get("quiescent_after")
    if quiet and clients.now() < datetime.fromisoformat(quiet):
        raise TransientError(f"{execution} is not quiescent before {quiet}")
    progress = record.progress or Progress()
    left = "; ".join(return_to_rest(plan, progress, clients, restore_stable=True))
    if left:
        outcome = NEEDS_OPERATOR
        clients.ledger.locks.hand_to_operator(service, execution=execution, outcome=outcome, reason=cause, left=left)
    else:
        outcome = STATUS_OUTCOMES.get(status, FAILED)
        clients.ledger.locks.finish(service, execution=execution, outcome=outcome, reason=cause)
    if progress.deployed:
        history(clients, plan, EVENT_ROLLOUT_FAILED, {"outcome": outcome, "reason": cause})
    _announce(clients, service, plan.version, execution, outcome, f"{cause}; left to undo: {left}" if left else cause)
    return {"outcome": outcome}


def _not_its_lock(plan: Plan, clients: Clients, cause: str) -> dict[str, Any]:
    """Another rollout holds the lock (or nobody does): touching the service would undo someone else's work."""
    reason = f"{cause}; the lock was no longer this rollout's, nothing was undone"
    clients.ledger.finish_record(plan.service, plan.execution, FAILED, reason=reason)
    _announce(clients, plan.service, plan.version, plan.execution, FAILED, reason)
    return {"outcome": FAILED}


def _announce(clients: Clients, service: str, version: str, execution: str, outcome: str, detail: str) -> None:
    """An outcome the safety net announces must get out: a failure raises, for Lambda to retry the invocation."""
    if not clients.announcer.outcome(service, version, execution, outcome, detail):
        raise TransientError(f"the {outcome} announcement of {execution} failed; retried")
