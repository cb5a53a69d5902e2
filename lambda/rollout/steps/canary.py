"""The canary's steps: deploy the version to the canary track, wait for it to be ready and warm, size it for
each traffic step, and move the step's weight onto it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from registry.images import protect_image
from rollout.clients import Clients, record_lifecycle
from rollout.contract import Plan, Progress
from rollout.contract.outcomes import Verdict
from rollout.contract.records import AuditEntry, AuditKind
from rollout.errors import RolloutError
from rollout.kube.deployments import deployment_ready, ready_summary
from rollout.steps.analysis import bake_wait
from rollout.steps.common import (
    canary_replicas,
    deadline,
    fence,
    guard,
    iso,
    parse_time,
    run_version,
    saved,
    set_canary_weight,
    writer_mark,
)
from rollout.traffic import healthy_targets
from tessera_shared.constants import EVENT_DEPLOYED_CANARY


def deploy_canary(plan: Plan, progress: Progress, clients: Clients) -> Progress:
    """Run the version on the canary track, sized to the first step; hold stable at its size."""
    epoch = guard(plan, clients, progress)
    snapshot = progress.stable
    if snapshot is None:
        raise RolloutError("deploy_canary needs the stable snapshot that preflight records")
    if snapshot.autoscaler_min is not None:
        # While the rollout runs, nothing may shrink stable below its size at the start.
        clients.kube.set_autoscaler_floor(
            plan.namespace, plan.stable_autoscaler_kind, plan.stable_autoscaler, snapshot.replicas
        )
    replicas = canary_replicas(snapshot.replicas, plan.policy.steps[0])
    # The image must outlive its tag's lifecycle while any track runs it.
    protect_image(clients.ecr, repository=plan.image_repository, image_digest=plan.image_digest, version=plan.version)
    run_version(clients, plan, plan.canary_deployment, epoch=epoch)
    clients.kube.scale(plan.namespace, plan.canary_deployment, replicas, mark=writer_mark(plan, epoch))
    fence(plan, progress, clients, epoch)
    clients.ledger.set_canary(plan.service, plan.version)
    record_lifecycle(clients, plan, EVENT_DEPLOYED_CANARY, {"image": plan.image})
    # Each track's pool: where the canary runs and where stable runs until promotion (the cost of each track
    # per request is computed from these).
    pools = {"canary_pool": plan.placement.pool if plan.placement else None}
    pools["stable_pool"] = snapshot.placement.pool if snapshot.placement else None
    evidence = {"replicas": replicas, "image": plan.image, **pools}
    clients.ledger.record_decision(plan, AuditEntry(kind=AuditKind.DEPLOY_CANARY, details=evidence))
    return saved(
        plan,
        clients,
        progress.replace(deployed=True, replicas=replicas, deadline=deadline(plan, clients), warm_until=None),
    )


def check_ready(plan: Plan, progress: Progress, track: str, clients: Clients) -> dict[str, Any]:
    """Is the track's Deployment fully rolled out? Past the deadline it is an error."""
    guard(plan, clients)
    name = plan.canary_deployment if track == "canary" else plan.stable_deployment
    deployment = clients.kube.get_deployment(plan.namespace, name)
    if deployment_ready(deployment):
        return {"ready": True}
    if progress.deadline and clients.now() > parse_time(progress.deadline):
        raise RolloutError(f"{name} not ready after {plan.policy.ready_timeout_seconds} s: {ready_summary(deployment)}")
    return {"ready": False, "summary": ready_summary(deployment)}


def check_warm(plan: Plan, progress: Progress, clients: Clients) -> Progress:
    """The canary serves no traffic for the warm-up; at its end every canary pod must be a healthy target."""
    guard(plan, clients)
    now = clients.now()
    if progress.warm_until is None:
        until = iso(now + timedelta(seconds=plan.policy.warmup_seconds))
        return progress.replace(warm_until=until, waiting=now < parse_time(until))
    if now < parse_time(progress.warm_until):
        return progress.replace(waiting=True)
    healthy, registered = healthy_targets(clients.elbv2, target_group=plan.canary_tg)
    if healthy < progress.replicas or healthy != registered:
        raise RolloutError(
            f"canary warm-up failed: {healthy} of {registered} targets healthy, {progress.replicas} expected"
        )
    warm = AuditEntry(kind=AuditKind.WARM_UP, verdict=Verdict.PASS, details={"healthy_targets": healthy})
    clients.ledger.record_decision(plan, warm)
    return progress.replace(waiting=False)


def scale_canary(plan: Plan, progress: Progress, clients: Clients) -> Progress:
    """Size the canary to this step's share of stable as stable is now (its autoscaler may have moved it)."""
    epoch = guard(plan, clients, progress)
    stable_now = clients.kube.get_deployment(plan.namespace, plan.stable_deployment)["spec"].get("replicas", 0)
    weight = plan.policy.steps[progress.step]
    replicas = canary_replicas(stable_now, weight)
    clients.kube.scale(plan.namespace, plan.canary_deployment, replicas, mark=writer_mark(plan, epoch))
    fence(plan, progress, clients, epoch)
    return saved(
        plan,
        clients,
        progress.replace(replicas=replicas, stable_replicas=stable_now, deadline=deadline(plan, clients)),
    )


def shift_traffic(plan: Plan, progress: Progress, clients: Clients) -> Progress:
    epoch = guard(plan, clients, progress)
    weight = plan.policy.steps[progress.step]
    weights = set_canary_weight(plan, clients, weight)
    fence(plan, progress, clients, epoch)
    evidence = {"canary_weight": weight, "weights": weights}
    clients.ledger.record_decision(plan, AuditEntry(kind=AuditKind.STEP_WEIGHTS, step=progress.step, details=evidence))
    now = clients.now()
    baking = progress.replace(
        step_started_at=iso(now),
        bake_until=iso(now + timedelta(seconds=plan.policy.bake_seconds)),
        extensions=0,
        waiting=True,
        verdict=None,
        reasons=[],
        interval=0,
        failing_intervals=0,
    )
    return saved(plan, clients, baking.replace(wait_seconds=bake_wait(plan, baking, now)))
