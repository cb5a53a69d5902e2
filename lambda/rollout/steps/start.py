"""The steps that start a rollout: Prepare (the plan from the service's settings and this rollout's
overrides), AcquireLock, and Preflight (the version may run, the service is at rest, the pool fits)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from rollout.authority import SHOWN_CHARACTERS, registered_artifacts, service_settings, shown
from rollout.capacity import pool_fit
from rollout.cleanup import settle_after
from rollout.clients import Clients
from rollout.contract import Plan, Progress, RolloutTarget, ServiceSettings, StableSnapshot
from rollout.contract.outcomes import Verdict
from rollout.contract.records import AuditEntry, AuditKind
from rollout.errors import RolloutError, RolloutInProgressError, StartRefusedError
from rollout.kube.client import NotFoundError
from rollout.kube.deployments import running_placement, server_container
from rollout.ledger import RUNNABLE_STATES
from rollout.ownership import settings_problems
from rollout.policy import OverrideError, apply_overrides, policy_problems
from rollout.record_size import check_record_size
from rollout.steps.common import canary_replicas, guard, iso, saved
from rollout.traffic import current_weights
from tessera_shared.constants import MODEL_VERSION_PATTERN, QUIESCENCE_SECONDS, SERVICE_NAME_PATTERN

START_FIELDS = ("service", "version", "overrides")


def prepare(request: object, execution: str, clients: Clients) -> Plan:
    """The execution's plan: the service's rollout settings with this rollout's overrides applied, and the image
    and model URI the registry decides (rollout.authority). Everything is checked before anything is touched; a
    bad request is refused, not rolled back."""
    service, version, overrides = _start_request(request)
    settings = service_settings(clients, service)
    if settings is None:
        name = f"{clients.settings_prefix}{service}"
        raise StartRefusedError(f"service {service!r} not found: it has no rollout settings ({name})")
    problems = settings_problems(settings, service, clients)
    if problems:
        raise StartRefusedError(f"{service}'s rollout settings are not its own: {'; '.join(problems)}")
    out_of_bounds = policy_problems(settings.policy)
    if out_of_bounds:
        raise StartRefusedError(f"{service}'s rollout settings hold a policy out of bounds: {'; '.join(out_of_bounds)}")
    try:
        policy = apply_overrides(settings.policy, overrides)
    except OverrideError as error:
        raise StartRefusedError(f"invalid overrides: {error}") from None
    record = clients.ledger.version(service, version)
    if record is None:
        raise StartRefusedError(f"{service} version {version} not found in the registry")
    target = _target_of(settings, service, version, record.get("pool"))
    try:
        artifacts = registered_artifacts(settings, record, version)
    except ValueError as error:
        raise StartRefusedError(f"{service} version {version} cannot run: {error}; register it again") from None
    plan = Plan(
        service=service,
        version=version,
        execution=execution,
        started_at=iso(clients.now()),
        namespace=settings.namespace,
        stable_deployment=settings.stable_deployment,
        canary_deployment=settings.canary_deployment,
        stable_autoscaler=settings.stable_autoscaler,
        stable_autoscaler_kind=settings.stable_autoscaler_kind,
        service_alarm=settings.service_alarm,
        rule_arn=settings.rule_arn,
        stable_tg=settings.stable_target_group,
        canary_tg=settings.canary_target_group,
        load_balancer=settings.load_balancer,
        image=artifacts.image,
        image_repository=artifacts.image_repository,
        image_digest=artifacts.image_digest,
        model_uri=artifacts.model_uri,
        stable_version=clients.ledger.pointer(service).get("stable"),
        pool=target.pool if target else settings.pool,
        policy=policy,
        placement=target.placement if target else None,
        stable_floor=settings.stable_floor,
        runtime_metrics=settings.runtime_metrics,
    )
    check_record_size(plan)  # beside the policy's duration check: every rollout started can record its way to the end
    return plan


def _start_request(request: object) -> tuple[str, str, dict[str, Any]]:
    """(service, version, overrides) of a start, as the CLI, an auto-start rule or `aws stepfunctions
    start-execution` sends it. Anything else in it is refused: an image or a model URI there would be ignored
    (the registry decides them), which its sender could take for obeyed."""
    usage = 'start a rollout with {"service": ..., "version": ..., "overrides": {...}}'
    if not isinstance(request, dict):
        raise StartRefusedError(f"{usage}, got {shown(request)}")
    unknown = sorted(str(key)[:SHOWN_CHARACTERS] for key in set(request) - set(START_FIELDS))
    if unknown:
        raise StartRefusedError(f"{usage}: unknown field(s) {unknown}")
    service, version = request.get("service"), request.get("version")
    if not isinstance(service, str) or not isinstance(version, str):
        raise StartRefusedError(usage)
    if not re.match(SERVICE_NAME_PATTERN, service):
        raise StartRefusedError(f"service: {shown(service)} is not a service name ({SERVICE_NAME_PATTERN})")
    if not re.match(MODEL_VERSION_PATTERN, version):
        raise StartRefusedError(f"version: {shown(version)} is not a model version ({MODEL_VERSION_PATTERN})")
    overrides = request.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise StartRefusedError(f"overrides: expected an object, got {shown(overrides)}")
    return service, version, overrides


def _target_of(settings: ServiceSettings, service: str, version: str, pool: str | None) -> RolloutTarget | None:
    """The allowed target the registry found the version fits: where its tracks will run (None: a version
    registered before targets were recorded, which runs where the tracks already are)."""
    if pool is None:
        return None
    target = next((target for target in settings.targets if target.name == pool), None)
    if target is None:
        allowed = ", ".join(target.name for target in settings.targets) or "none recorded"
        raise StartRefusedError(
            f"{service} version {version} was built for pool {pool!r}, which is not among the service's allowed "
            f"targets ({allowed}); add it to the service's alternative_accelerators and deploy"
        )
    return target


def acquire_lock(plan: Plan, clients: Clients) -> dict[str, Any]:
    """Take the service's lock and start the rollout's record (one transaction). A holder that is gone is taken
    over only once none of its invocations can still land (it stopped QUIESCENCE_SECONDS ago, or its lease
    passed), after its clean-up ran here from its record; an operator's hold, a running holder and a holder
    not yet quiescent are refused with the reason."""
    locks = clients.ledger.locks
    seen = locks.item(plan.service)
    holder = seen if seen and seen.get("execution") else None
    if holder is not None and holder["execution"] == plan.execution:
        return {}  # a retried task: the lock and the record were taken together
    previous = None
    if holder is not None:
        _refuse_unless_gone(plan.service, holder, clients)
        previous = settle_after(holder, clients)
    locks.take(plan, seen=seen, previous=previous)
    if holder is not None and previous is not None:
        taken_over = {"from": holder["execution"], "its_outcome": previous.outcome}
        clients.ledger.record_decision(plan, AuditEntry(kind=AuditKind.LOCK_TAKEN_OVER, details=taken_over))
        clients.announcer.outcome(
            plan.service, str(holder.get("version")), holder["execution"], previous.outcome, previous.reason
        )
    return {}


def _refuse_unless_gone(service: str, holder: dict[str, Any], clients: Clients) -> None:
    if holder.get("operator"):
        raise RolloutInProgressError(
            f"{service} is held by an operator since a rollout of version {holder.get('version')} could not clean "
            f"up ({holder.get('left', 'see its record')}); fix it, then `tessera rollout unlock --force`"
        )
    if clients.ledger.locks.lease_passed(holder):
        return
    stopped = _stopped_at(clients, holder["execution"])
    if stopped is None:
        raise RolloutInProgressError(
            f"{service} is already being rolled out: version {holder.get('version')} by execution "
            f"{holder['execution']} since {holder.get('acquired_at')}"
        )
    quiet = stopped + timedelta(seconds=QUIESCENCE_SECONDS)
    if clients.now() < quiet:
        raise RolloutInProgressError(
            f"{service}: the rollout of version {holder.get('version')} stopped at {iso(stopped)} and its steps may "
            f"still land until {iso(quiet)}; start again after that"
        )


def _stopped_at(clients: Clients, execution: str) -> datetime | None:
    """When the execution stopped (None while it runs); an execution Step Functions does not know stopped long ago."""
    try:
        described = clients.stepfunctions.describe_execution(executionArn=execution)
    except clients.stepfunctions.exceptions.ExecutionDoesNotExist:
        return datetime.min.replace(tzinfo=UTC)
    if described["status"] == "RUNNING":
        return None
    stopped = described.get("stopDate")
    return stopped if isinstance(stopped, datetime) else datetime.min.replace(tzinfo=UTC)


def preflight(plan: Plan, progress: Progress, clients: Clients) -> Progress:
    """Nothing moves unless the version may run, the service is at rest, the watched alarms exist and the
    pool fits stable, the canary's largest size and the surge pod of stable's own rolling update."""
    guard(plan, clients)
    record = clients.ledger.version(plan.service, plan.version)
    if record is None or record["state"] not in RUNNABLE_STATES:
        state = record["state"] if record else "not in the registry"
        raise RolloutError(f"{plan.service} version {plan.version} is {state}; only registered versions roll out")
    missing = _missing_alarms(clients, plan.watched_alarms)
    if missing:
        raise RolloutError(f"watched alarm(s) do not exist: {', '.join(missing)}")
    snapshot = _stable_snapshot(plan, clients)
    unrest = not_at_rest(plan, snapshot, clients)
    if unrest:
        raise RolloutError(f"{plan.service} is not at rest: {'; '.join(unrest)}")
    most_canary = canary_replicas(snapshot.replicas, max(plan.policy.steps))
    checks: dict[str, Any] = {"stable_replicas": snapshot.replicas, "most_canary_replicas": most_canary}
    if plan.placement is not None:
        checks["pool"] = plan.placement.pool  # the version's target (another chip than stable's, for a move)
    if plan.pool:
        # stable's rolling update at promotion adds one pod (maxSurge 1) beside stable and canary.
        fit = pool_fit(plan.pool, pods=snapshot.replicas + most_canary + 1)
        checks |= fit.evidence
        if not fit.fits:
            raise RolloutError(
                f"pool cannot fit the rollout: {snapshot.replicas} stable + {most_canary} canary pods + 1 surge pod "
                f"at promotion {fit.shortfall}"
            )
    clients.ledger.record_decision(plan, AuditEntry(kind=AuditKind.PREFLIGHT, verdict=Verdict.PASS, details=checks))
    return saved(plan, clients, progress.replace(stable=snapshot, stable_replicas=snapshot.replicas))


def not_at_rest(plan: Plan, snapshot: StableSnapshot, clients: Clients) -> list[str]:
    """What differs from the rest position: canary at 0 % and 0 replicas, stable on the version the pointer names
    (its image and placement as the registry recorded them, where it did) and its floor at config's value."""
    found = []
    weight = current_weights(clients.elbv2, rule_arn=plan.rule_arn).get(plan.canary_tg, 0)
    if weight != 0:
        found.append(f"the canary has weight {weight}")
    canary = clients.kube.get_deployment(plan.namespace, plan.canary_deployment)["spec"].get("replicas", 0)
    if canary != 0:
        found.append(f"the canary has {canary} replica(s)")
    pointer = clients.ledger.pointer(plan.service).get("stable")
    if pointer and snapshot.model_version != pointer:
        found.append(f"stable runs {snapshot.model_version!r}, the pointer names {pointer!r}")
    record = clients.ledger.version(plan.service, pointer) if pointer else None
    digest = (record or {}).get("image_digest")
    if digest and "@sha256:" in snapshot.image and not snapshot.image.endswith(f"@{digest}"):
        found.append(f"stable runs image {snapshot.image}, not {pointer}'s {digest}")
    target = (record or {}).get("pool")
    if target and snapshot.placement is not None and snapshot.placement.pool != target:
        found.append(f"stable runs on {snapshot.placement.pool!r}, {pointer} on {target!r}")
    if plan.stable_floor is not None and snapshot.autoscaler_min not in (None, plan.stable_floor):
        found.append(f"stable's autoscaler floor is {snapshot.autoscaler_min}, config's {plan.stable_floor}")
    return found


def _missing_alarms(clients: Clients, names: list[str]) -> list[str]:
    found: set[str] = set()
    for start in range(0, len(names), 100):
        chunk = names[start : start + 100]
        response = clients.cloudwatch.describe_alarms(AlarmNames=chunk, AlarmTypes=["MetricAlarm", "CompositeAlarm"])
        found |= {a["AlarmName"] for a in response.get("MetricAlarms", []) + response.get("CompositeAlarms", [])}
    return [name for name in names if name not in found]


def _stable_snapshot(plan: Plan, clients: Clients) -> StableSnapshot:
    stable = clients.kube.get_deployment(plan.namespace, plan.stable_deployment)
    server = server_container(stable)
    env = {entry["name"]: entry.get("value", "") for entry in server.get("env", [])}
    try:
        autoscaler_min = clients.kube.autoscaler_floor(
            plan.namespace, plan.stable_autoscaler_kind, plan.stable_autoscaler
        )
    except NotFoundError:
        autoscaler_min = None
    return StableSnapshot(
        image=server["image"],
        model_version=env.get("MODEL_VERSION", ""),
        model_uri=env.get("MODEL_S3_URI", ""),
        replicas=stable["spec"].get("replicas", 0),
        autoscaler_min=autoscaler_min,
        placement=running_placement(stable),
    )
