"""What every rollout step shares: the lock check before it acts and the fence after it writes, saving progress,
the times it writes, and the writes of a track's version and of the canary's weight."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from rollout.authority import authorised_artifacts
from rollout.cleanup import return_to_rest
from rollout.clients import Clients
from rollout.contract import Plan, Progress
from rollout.errors import LockLostError, RolloutError
from rollout.traffic import set_weights


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def parse_time(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


def guard(plan: Plan, clients: Clients, progress: Progress | None = None) -> int:
    """Raises unless this execution holds the service's lock and may act, and what the event claims is what this
    rollout recorded: its plan, as written when it took the lock, and stable's snapshot, as Preflight wrote it
    (whoever may invoke the function can send any event; the snapshot decides what a clean-up puts back on
    stable). Returns the lock's epoch, which the step's writes carry and its fence checks after them."""
    lock = clients.ledger.locks.guard(plan.service, execution=plan.execution)
    recorded = clients.ledger.record(plan.service, lock["record"])
    if recorded is None or recorded.plan != plan:
        sent, kept = plan.to_json(), recorded.plan.to_json() if recorded else {}
        differ = ", ".join(f"plan.{key}" for key in sorted(sent.keys() | kept.keys()) if sent.get(key) != kept.get(key))
        raise RolloutError(f"{plan.service}: the plan sent is not the one this rollout recorded ({differ})")
    kept_stable = recorded.progress.stable if recorded.progress else None
    if progress is not None and kept_stable is not None and progress.stable != kept_stable:
        raise RolloutError(f"{plan.service}: the stable snapshot sent differs from the one Preflight recorded")
    return int(lock["epoch"])


def writer_mark(plan: Plan, epoch: int) -> str:
    """What a step's Kubernetes writes carry: this execution and its lock epoch."""
    return f"{plan.execution}#{epoch}"


def fence(plan: Plan, progress: Progress, clients: Clients, epoch: int) -> None:
    """After a write: if the lock is no longer this execution's at `epoch` (a stop, a forced unlock or a take-over
    happened while the step ran), the write may have landed on a service that was already returned to rest.
    Unless another live rollout holds the lock now, put the service back to rest (the same clean-up Rollback
    runs), then raise LockLostError so the step reports nothing it did."""
    if clients.ledger.locks.holds(plan.service, execution=plan.execution, epoch=epoch):
        return
    holder = clients.ledger.locks.holder(plan.service)
    undone = "left alone: another rollout holds the lock"
    if holder is None or holder.get("execution") == plan.execution:
        left = return_to_rest(plan, progress, clients, restore_stable=True)
        undone = f"returned to rest{' except: ' + '; '.join(left) if left else ''}"
    raise LockLostError(f"{plan.service}: the lock changed while this step wrote; the service was {undone}")


def saved(plan: Plan, clients: Clients, progress: Progress) -> Progress:
    clients.ledger.save_progress(plan, progress)
    return progress


def deadline(plan: Plan, clients: Clients) -> str:
    return iso(clients.now() + timedelta(seconds=plan.policy.ready_timeout_seconds))


def run_version(clients: Clients, plan: Plan, deployment: str, *, epoch: int) -> None:
    """The track runs the plan's version, on the version's target (a change of chip moves its pods). The image and
    model URI written are the registry's and the service's settings', never the event's: a plan that disagrees with
    them is refused before anything is written (rollout.authority)."""
    artifacts = authorised_artifacts(plan, clients)
    clients.kube.set_version(
        plan.namespace,
        deployment,
        image=artifacts.image,
        model_version=plan.version,
        model_uri=artifacts.model_uri,
        placement=plan.placement,
        mark=writer_mark(plan, epoch),
    )


def set_canary_weight(plan: Plan, clients: Clients, weight: int) -> dict[str, int]:
    return set_weights(
        clients.elbv2, rule_arn=plan.rule_arn, stable_tg=plan.stable_tg, canary_tg=plan.canary_tg, canary_weight=weight
    )


def canary_replicas(stable_replicas: int, weight: int) -> int:
    """Capacity follows traffic: the canary gets its share of stable's pods, and at least one."""
    return max(1, math.ceil(stable_replicas * weight / 100))
