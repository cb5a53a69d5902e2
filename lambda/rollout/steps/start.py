"""The steps that start a rollout: Prepare (the plan from the service's settings and this rollout's
overrides), AcquireLock, and Preflight (the version may run, the service is at rest, the pool fits)."""

from __future__ import annotations

import re
from typing import Any

from rollout.authority import SHOWN_CHARACTERS, registered_artifacts, service_settings, shown
from rollout.capacity import pool_fit
from rollout.clients import Clients
from rollout.contract import Plan, Progress, RolloutTarget, ServiceSettings, StableSnapshot
from rollout.errors import RolloutError, StartRefusedError
from rollout.kube.client import NotFoundError
from rollout.kube.deployments import running_placement
from rollout.ledger import RUNNABLE_STATES
from rollout.ownership import settings_problems
from rollout.policy import OverrideError, apply_overrides
from rollout.steps.common import audit, canary_replicas, guard, iso, saved, server_container
from rollout.traffic import current_weights
from tessera_shared.constants import MODEL_VERSION_PATTERN, SERVICE_NAME_PATTERN

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
    return Plan(
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
    )


def _start_request(request: object) -> tuple[str, str, dict]:
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


def acquire_lock(plan: Plan, clients: Clients) -> dict:
    taken_over = clients.ledger.acquire_lock(
        plan.service,
        execution=plan.execution,
        version=plan.version,
        is_running=lambda holder: _execution_running(clients, holder),
    )
    clients.ledger.start_record(plan)
    if taken_over:
        clients.ledger.record_decision(
            plan, {"id": "lock-taken-over", "step": "lock", "from": taken_over.get("execution")}
        )
    return {}


def _execution_running(clients: Clients, execution: str) -> bool:
    try:
        return clients.stepfunctions.describe_execution(executionArn=execution)["status"] == "RUNNING"
    except clients.stepfunctions.exceptions.ExecutionDoesNotExist:
        return False


def preflight(plan: Plan, progress: Progress, clients: Clients) -> Progress:
    """Nothing moves unless the version may run, the service is at rest, the watched alarms exist and the
    pool fits stable, the canary's largest size and the surge pod of stable's own rolling update."""
    guard(plan, clients)
    record = clients.ledger.version(plan.service, plan.version)
    if record is None or record["state"] not in RUNNABLE_STATES:
        state = record["state"] if record else "not in the registry"
        raise RolloutError(f"{plan.service} version {plan.version} is {state}; only registered versions roll out")
    weights = current_weights(clients.elbv2, rule_arn=plan.rule_arn)
    if weights.get(plan.canary_tg, 0) != 0:
        raise RolloutError(f"{plan.service} is not at rest: the canary has weight {weights[plan.canary_tg]}")
    missing = _missing_alarms(clients, plan.watched_alarms)
    if missing:
        raise RolloutError(f"watched alarm(s) do not exist: {', '.join(missing)}")
    snapshot = _stable_snapshot(plan, clients)
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
    audit(clients, plan, "preflight", {"verdict": "PASS", **checks})
    return saved(plan, clients, progress.replace(stable=snapshot, stable_replicas=snapshot.replicas))


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
