"""The safety net: a Step Functions "Execution Status Change" to FAILED, TIMED_OUT or ABORTED (delivered by an
EventBridge rule of the Rollout stack) for an execution that ended without Rollback or the operator hand-over
(stopped from outside, timed out, or failed in a state nothing catches)."""

from __future__ import annotations

from rollout.cleanup import history, parse_json, return_to_rest
from rollout.clients import Clients
from rollout.contract import Progress
from rollout.contract.records import RolloutRecord
from tessera_shared.constants import ABORTED, EVENT_ROLLOUT_FAILED, FAILED, NEEDS_OPERATOR, RUNNING, TIMED_OUT

STATUS_OUTCOMES = {"ABORTED": ABORTED, "TIMED_OUT": TIMED_OUT, "FAILED": FAILED}


def execution_ended(detail: dict, clients: Clients) -> dict:
    """A Step Functions "Execution Status Change" to FAILED, TIMED_OUT or ABORTED. When the rollout's
    record is still RUNNING, nothing inside the execution finished it: revoke the lock (so no late step
    acts), bring the service to rest, and record the outcome. Either way the outcome is announced once."""
    status, execution = detail.get("status", ""), detail.get("executionArn", "")
    request = parse_json(detail.get("input"))
    service, version = request.get("service"), str(request.get("version", ""))
    cause = f"execution {status}: {detail.get('error') or ''} {detail.get('cause') or ''}".strip()
    if not isinstance(service, str) or not execution:
        return {"outcome": "IGNORED", "reason": "not a rollout execution"}
    record = clients.ledger.record_for(service, execution)
    if record is None:
        # Refused before it took the lock: nothing changed, but whoever started it should hear why.
        clients.announcer.outcome(service, version, execution, "REFUSED", cause)
        return {"outcome": "REFUSED"}
    outcome: str = record.status
    if outcome == RUNNING:
        outcome = _clean_up_after(record, status, cause, clients)
    clients.announcer.outcome(service, record.version, execution, outcome, record.reason or cause)
    return {"outcome": outcome}


def _clean_up_after(record: RolloutRecord, status: str, cause: str, clients: Clients) -> str:
    plan = record.plan
    progress = record.progress or Progress()
    lock = clients.ledger.lock_holder(plan.service) or {}
    if lock.get("execution") != plan.execution:
        outcome, left = FAILED, ""
        cause = f"{cause}; the lock was no longer this rollout's, nothing was undone"
    else:
        clients.ledger.revoke_lock(plan.service, execution=plan.execution)
        remaining = return_to_rest(plan, progress, clients, restore_stable=True)
        left = "; ".join(remaining)
        if remaining:
            clients.ledger.hand_to_operator(plan.service, execution=plan.execution, left=left)
            outcome = NEEDS_OPERATOR
        else:
            clients.ledger.release_lock(plan.service, execution=plan.execution)
            outcome = STATUS_OUTCOMES.get(status, FAILED)
    clients.ledger.finish_record(plan.service, plan.execution, outcome, reason=cause, left=left)
    if progress.deployed:
        history(clients, plan, EVENT_ROLLOUT_FAILED, {"outcome": outcome, "reason": cause[:2000]})
    return outcome
