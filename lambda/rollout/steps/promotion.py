"""The steps that end a passing rollout: the next step or the approval, stable takes the version, and
Finalize commits the promotion."""

from __future__ import annotations

from aws_lambda_powertools import Logger

from rollout.cleanup import return_to_rest
from rollout.clients import Clients, record_lifecycle
from rollout.contract import Plan, Progress
from rollout.contract.records import AuditEntry, AuditKind
from rollout.errors import RolloutError, TransientError
from rollout.steps.common import deadline, guard, run_version, saved
from tessera_shared.constants import EVENT_PROMOTED, PROMOTED, RUNNING

logger = Logger(child=True)


def advance(plan: Plan, progress: Progress, clients: Clients) -> Progress:
    guard(plan, clients)
    step = progress.step + 1
    return progress.replace(step=step, done=step >= len(plan.policy.steps), verdict=None)


def await_approval(plan: Plan, token: str, clients: Clients) -> dict:
    """Park the execution until an operator approves (or rejects) promotion. A retried task gets a new
    token, so the token is overwritten on every attempt."""
    guard(plan, clients)
    clients.ledger.set_approval_token(plan, token)
    clients.ledger.record_decision(plan, AuditEntry(kind=AuditKind.APPROVAL_REQUESTED))
    clients.announcer.progress(plan, "APPROVAL_NEEDED", f"approve with: tessera rollout approve {plan.service}")
    return {}


def promote_stable(plan: Plan, progress: Progress, clients: Clients) -> Progress:
    guard(plan, clients)
    run_version(clients, plan, plan.stable_deployment)
    pool = plan.placement.pool if plan.placement else None
    promoted = AuditEntry(kind=AuditKind.PROMOTE_STABLE, details={"version": plan.version, "pool": pool})
    clients.ledger.record_decision(plan, promoted)
    return saved(plan, clients, progress.replace(promotion_started=True, deadline=deadline(plan, clients)))


def finalize(plan: Plan, progress: Progress, clients: Clients) -> dict:
    """Stable serves the new version: traffic back to stable, canary to zero, stable's own floor back,
    then one transaction commits the promotion and frees the lock. The announcement after the commit
    is best-effort: it never changes the outcome."""
    if _finished(plan, clients) == PROMOTED:  # a repeated delivery after the commit
        return _announce_promotion(plan, clients)
    guard(plan, clients)
    left = return_to_rest(plan, progress, clients, restore_stable=False)
    if left:
        raise RolloutError(f"could not return to rest after promotion: {'; '.join(left)}")
    clients.ledger.commit_promotion(plan)
    try:  # the version's history; the promotion itself is committed and must stand
        record_lifecycle(clients, plan, EVENT_PROMOTED, {"previous": plan.stable_version})
    except Exception:
        logger.exception("could not add the promotion to the version's history")
    return _announce_promotion(plan, clients)


def _announce_promotion(plan: Plan, clients: Clients) -> dict:
    """The promotion is committed whatever happens here; a failed announcement is retried by running
    Finalize again (which then finds the commit and only announces)."""
    if not clients.announcer.outcome(
        plan.service, plan.version, plan.execution, PROMOTED, f"{plan.version} is now stable"
    ):
        raise TransientError(f"{plan.service} {plan.version} is promoted; its announcement failed and is retried")
    return {"outcome": PROMOTED}


def _finished(plan: Plan, clients: Clients) -> str | None:
    """The rollout's outcome when its record is already final, else None."""
    record = clients.ledger.record_for(plan.service, plan.execution)
    return record.status if record is not None and record.status != RUNNING else None
