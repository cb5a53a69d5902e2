"""The steps that end a passing rollout: the next step or the approval, stable takes the version, and
Finalize commits the promotion."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from rollout.cleanup import return_to_rest
from rollout.clients import Clients, record_lifecycle
from rollout.contract import Plan, Progress
from rollout.contract.records import AuditEntry, AuditKind
from rollout.errors import RolloutError, TransientError
from rollout.kube.deployments import running_placement, server_container
from rollout.steps.common import deadline, fence, guard, run_version, saved
from tessera_shared.constants import EVENT_PROMOTED, PROMOTED, RUNNING

logger = Logger(child=True)


def advance(plan: Plan, progress: Progress, clients: Clients) -> Progress:
    guard(plan, clients)
    step = progress.step + 1
    return progress.replace(step=step, done=step >= len(plan.policy.steps), verdict=None)


def await_approval(plan: Plan, token: str, clients: Clients) -> dict[str, Any]:
    """Park the execution until an operator approves (or rejects) promotion. A retried task gets a new
    token, so the token is overwritten on every attempt."""
    guard(plan, clients)
    clients.ledger.set_approval_token(plan, token)
    # An abort that arrived after the check above found no token to fail: look again now that it is recorded.
    guard(plan, clients)
    clients.ledger.record_decision(plan, AuditEntry(kind=AuditKind.APPROVAL_REQUESTED))
    clients.announcer.progress(plan, "APPROVAL_NEEDED", f"approve with: tessera rollout approve {plan.service}")
    return {}


def promote_stable(plan: Plan, progress: Progress, clients: Clients) -> Progress:
    epoch = guard(plan, clients, progress)
    run_version(clients, plan, plan.stable_deployment, epoch=epoch)
    fence(plan, progress.replace(promotion_started=True), clients, epoch)
    pool = plan.placement.pool if plan.placement else None
    promoted = AuditEntry(kind=AuditKind.PROMOTE_STABLE, details={"version": plan.version, "pool": pool})
    clients.ledger.record_decision(plan, promoted)
    return saved(plan, clients, progress.replace(promotion_started=True, deadline=deadline(plan, clients)))


def finalize(plan: Plan, progress: Progress, clients: Clients) -> dict[str, Any]:
    """Stable serves the new version: traffic back to stable, canary to zero, stable's own floor back,
    then one transaction commits the promotion and frees the lock. The announcement after the commit
    is best-effort: it never changes the outcome."""
    if _finished(plan, clients) == PROMOTED:  # a repeated delivery after the commit
        return _announce_promotion(plan, clients)
    epoch = guard(plan, clients, progress)
    left = return_to_rest(plan, progress, clients, restore_stable=False)
    if left:  # each stage is idempotent: retried (Step Functions), and only after the retries is it a failure
        raise TransientError(f"could not return to rest after promotion: {'; '.join(left)}")
    _check_stable_runs_the_version(plan, clients)
    clients.ledger.commit_promotion(plan, epoch=epoch)
    try:  # the version's history; the promotion itself is committed and must stand
        record_lifecycle(clients, plan, EVENT_PROMOTED, {"previous": plan.stable_version})
    except Exception:
        logger.exception("could not add the promotion to the version's history")
    return _announce_promotion(plan, clients)


def _check_stable_runs_the_version(plan: Plan, clients: Clients) -> None:
    """What is committed must be what runs: a deploy (or a person) may have changed stable since PromoteStable."""
    stable = clients.kube.get_deployment(plan.namespace, plan.stable_deployment)
    server = server_container(stable)
    env = {entry.get("name"): entry.get("value") for entry in server.get("env", [])}
    found: dict[str, object] = {"image": server.get("image"), "model version": env.get("MODEL_VERSION")}
    wanted: dict[str, object] = {"image": plan.image, "model version": plan.version}
    if plan.placement is not None:
        found["placement"], wanted["placement"] = running_placement(stable), plan.placement
    wrong = [f"{name} {found[name]!r}, not {wanted[name]!r}" for name in wanted if found[name] != wanted[name]]
    if wrong:
        raise RolloutError(f"{plan.stable_deployment} no longer runs what was promoted: {'; '.join(wrong)}")


def _announce_promotion(plan: Plan, clients: Clients) -> dict[str, Any]:
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
