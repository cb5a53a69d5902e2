"""The rollout's steps. Each takes the typed plan and progress (rollout.contract) and the clients, does
one thing, and returns what the state machine keeps. Every step is safe to run twice: it sets absolute
values (weights, replicas, versions, states) rather than changing them by a delta, and its audit entry
carries an id that is written once. Every step after the lock first checks that its execution still
holds the lock (and has not been asked to abort), so nothing lands for a rollout that is over.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from registry.images import image_reference, protect_image
from registry.store import RegistryStore
from rollout.capacity import pool_fit
from rollout.cleanup import return_to_rest
from rollout.contract import Plan, Progress, RolloutTarget, ServiceSettings, StableSnapshot
from rollout.errors import RolloutError, StartRefusedError, TransientError
from rollout.judge import AnalysisPolicy, ExtraMetricRule, Judgement, TrackStats, count_interval, judge
from rollout.kube import KubeClient, NotFoundError, deployment_ready, ready_summary, running_placement
from rollout.ledger import RUNNABLE_STATES, Ledger
from rollout.metrics import AlbMetrics, ExtraMetricQuery, PercentileReader, alarms_in_alarm, arn_dimension
from rollout.notify import Announcer
from rollout.policy import OverrideError, apply_overrides
from rollout.track_cost import judgement_costs
from rollout.traffic import current_weights, healthy_targets, set_weights
from tessera_shared.constants import (
    EVENT_DEPLOYED_CANARY,
    EVENT_PROMOTED,
    GENERAL_POOL,
    PROMOTED,
    RUNNING,
    SERVING_CONTAINER,
)

logger = Logger(child=True)

PER_REQUEST_STATISTICS = frozenset({"Sum", "SampleCount"})


@dataclass
class Clients:
    ledger: Ledger
    store: RegistryStore
    ecr: Any
    elbv2: Any
    cloudwatch: Any
    sns: Any
    ssm: Any
    stepfunctions: Any
    kube: KubeClient
    percentiles: PercentileReader
    topic_arn: str
    settings_prefix: str
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def now(self) -> datetime:
        return self.clock()

    @property
    def announcer(self) -> Announcer:
        return Announcer(self.ledger, self.sns, self.topic_arn)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


# -- preparing -------------------------------------------------------------------------------------
def prepare(request: dict, execution: str, clients: Clients) -> Plan:
    """The execution's plan: the service's rollout settings with this rollout's overrides applied.
    Everything is checked before anything is touched; a bad request is refused, not rolled back."""
    service, version = request.get("service"), request.get("version")
    if not isinstance(service, str) or not isinstance(version, str):
        raise StartRefusedError('start a rollout with {"service": ..., "version": ..., "overrides": {...}}')
    name = f"{clients.settings_prefix}{service}"
    try:
        raw = clients.ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except clients.ssm.exceptions.ParameterNotFound:
        raise StartRefusedError(f"service {service!r} not found: it has no rollout settings ({name})") from None
    settings = ServiceSettings.from_json(json.loads(raw), where="settings")
    overrides = request.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise StartRefusedError(f"overrides: expected an object, got {overrides!r}")
    try:
        policy = apply_overrides(settings.policy, overrides)
    except OverrideError as error:
        raise StartRefusedError(f"invalid overrides: {error}") from None
    record = clients.ledger.version(service, version)
    target = _target_of(settings, service, version, (record or {}).get("pool"))
    digest = (record or {}).get("image_digest")
    try:
        image = image_reference(settings.image_repository_uri, digest)
    except ValueError:
        raise StartRefusedError(
            f"{service} version {version} has no recorded image digest (not registered, or registered before "
            "digests were recorded): register it again"
        ) from None
    return Plan(
        service=service,
        version=version,
        execution=execution,
        started_at=_iso(clients.now()),
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
        image=image,
        image_repository=settings.image_repository_uri.split("/", 1)[1],
        image_digest=str(digest),
        model_uri=f"s3://{settings.model_bucket}/{settings.model_prefix}{version}/",
        stable_version=clients.ledger.pointer(service).get("stable"),
        pool=target.pool if target else settings.pool,
        policy=policy,
        placement=target.placement if target else None,
    )


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
    _guard(plan, clients)
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
    _audit(clients, plan, "preflight", {"verdict": "PASS", **checks})
    return _saved(plan, clients, progress.replace(stable=snapshot, stable_replicas=snapshot.replicas))


def _missing_alarms(clients: Clients, names: list[str]) -> list[str]:
    found: set[str] = set()
    for start in range(0, len(names), 100):
        chunk = names[start : start + 100]
        response = clients.cloudwatch.describe_alarms(AlarmNames=chunk, AlarmTypes=["MetricAlarm", "CompositeAlarm"])
        found |= {a["AlarmName"] for a in response.get("MetricAlarms", []) + response.get("CompositeAlarms", [])}
    return [name for name in names if name not in found]


def _stable_snapshot(plan: Plan, clients: Clients) -> StableSnapshot:
    stable = clients.kube.get_deployment(plan.namespace, plan.stable_deployment)
    server = _server(stable)
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


def canary_replicas(stable_replicas: int, weight: int) -> int:
    """Capacity follows traffic: the canary gets its share of stable's pods, and at least one."""
    return max(1, math.ceil(stable_replicas * weight / 100))


# -- the canary ------------------------------------------------------------------------------------
def deploy_canary(plan: Plan, progress: Progress, clients: Clients) -> Progress:
    """Run the version on the canary track, sized to the first step; hold stable at its size."""
    _guard(plan, clients)
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
    _run_version(clients, plan, plan.canary_deployment)
    clients.kube.scale(plan.namespace, plan.canary_deployment, replicas)
    clients.ledger.set_canary(plan.service, plan.version)
    record_lifecycle(clients, plan, EVENT_DEPLOYED_CANARY, {"image": plan.image})
    # Each track's pool: where the canary runs and where stable runs until promotion (the cost of each track
    # per request is computed from these).
    pools = {"canary_pool": plan.placement.pool if plan.placement else None}
    pools["stable_pool"] = snapshot.placement.pool if snapshot.placement else None
    _audit(clients, plan, "deploy-canary", {"replicas": replicas, "image": plan.image, **pools})
    return _saved(
        plan,
        clients,
        progress.replace(deployed=True, replicas=replicas, deadline=_deadline(plan, clients), warm_until=None),
    )


def check_ready(plan: Plan, progress: Progress, track: str, clients: Clients) -> dict:
    """Is the track's Deployment fully rolled out? Past the deadline it is an error."""
    _guard(plan, clients)
    name = plan.canary_deployment if track == "canary" else plan.stable_deployment
    deployment = clients.kube.get_deployment(plan.namespace, name)
    if deployment_ready(deployment):
        return {"ready": True}
    if progress.deadline and clients.now() > _parse(progress.deadline):
        raise RolloutError(f"{name} not ready after {plan.policy.ready_timeout_seconds} s: {ready_summary(deployment)}")
    return {"ready": False, "summary": ready_summary(deployment)}


def check_warm(plan: Plan, progress: Progress, clients: Clients) -> Progress:
    """The canary serves no traffic for the warm-up; at its end every canary pod must be a healthy target."""
    _guard(plan, clients)
    now = clients.now()
    if progress.warm_until is None:
        until = _iso(now + timedelta(seconds=plan.policy.warmup_seconds))
        return progress.replace(warm_until=until, waiting=now < _parse(until))
    if now < _parse(progress.warm_until):
        return progress.replace(waiting=True)
    healthy, registered = healthy_targets(clients.elbv2, target_group=plan.canary_tg)
    if healthy < progress.replicas or healthy != registered:
        raise RolloutError(
            f"canary warm-up failed: {healthy} of {registered} targets healthy, {progress.replicas} expected"
        )
    _audit(clients, plan, "warm-up", {"verdict": "PASS", "healthy_targets": healthy})
    return progress.replace(waiting=False)


def scale_canary(plan: Plan, progress: Progress, clients: Clients) -> Progress:
    """Size the canary to this step's share of stable as stable is now (its autoscaler may have moved it)."""
    _guard(plan, clients)
    stable_now = clients.kube.get_deployment(plan.namespace, plan.stable_deployment)["spec"].get("replicas", 0)
    weight = plan.policy.steps[progress.step]
    replicas = canary_replicas(stable_now, weight)
    clients.kube.scale(plan.namespace, plan.canary_deployment, replicas)
    return _saved(
        plan,
        clients,
        progress.replace(replicas=replicas, stable_replicas=stable_now, deadline=_deadline(plan, clients)),
    )


def shift_traffic(plan: Plan, progress: Progress, clients: Clients) -> Progress:
    _guard(plan, clients)
    weight = plan.policy.steps[progress.step]
    weights = _set_canary_weight(plan, clients, weight)
    _audit(
        clients,
        plan,
        f"step-{progress.step}-weights",
        {"step": progress.step, "canary_weight": weight, "weights": weights},
    )
    now = clients.now()
    baking = progress.replace(
        step_started_at=_iso(now),
        bake_until=_iso(now + timedelta(seconds=plan.policy.bake_seconds)),
        extensions=0,
        waiting=True,
        verdict=None,
        reasons=[],
        interval=0,
        failing_intervals=0,
    )
    return _saved(plan, clients, baking.replace(wait_seconds=_bake_wait(plan, baking, now)))


# -- continuous judgement within the bake ------------------------------------------------------------
MAX_INTERVALS_PER_POLL = 10  # after a long stall, the rest are judged at the next poll


def judge_interval(plan: Plan, progress: Progress, clients: Clients) -> Progress:
    """One poll of a step's bake. A watched alarm in ALARM fails the step at once. Every analysis interval
    whose window (ending `metric_delay_seconds` before now, as CloudWatch's load balancer metrics arrive
    late) is complete is judged and recorded; `consecutive_failures` failing intervals in a row fail the
    step. The step passes only once the metric delay after the bake's end has passed, on the whole bake's
    figures (extended while data is short). Polled every `poll_seconds` at most, so an abort is seen
    within one poll."""
    _guard(plan, clients)
    analysis = plan.policy.analysis
    alarms = alarms_in_alarm(clients.cloudwatch, plan.watched_alarms)
    if alarms:
        reasons = [f"{len(alarms)} alarm(s) in ALARM: {', '.join(alarms)}"]
        _audit(
            clients,
            plan,
            f"step-{progress.step}-alarm",
            {"step": progress.step, "alarms_in_alarm": alarms, "verdict": "FAIL", "reasons": reasons},
        )
        return _saved(plan, clients, progress.replace(verdict="FAIL", reasons=reasons, waiting=False))
    now = clients.now()
    delay = timedelta(seconds=analysis.metric_delay_seconds)
    bake_until = _parse(progress.bake_until or _iso(now))
    judged = 0
    while judged < MAX_INTERVALS_PER_POLL:
        start, end = _interval_window(plan, progress, progress.interval)
        if end > bake_until or end + delay > now:
            break
        progress = _judge_one_interval(plan, progress, clients, start, end)
        judged += 1
        if progress.verdict == "FAIL":
            return _saved(plan, clients, progress)
    # The whole bake is judged once every interval in it has been (a stall can leave more than one poll's worth).
    if judged == MAX_INTERVALS_PER_POLL or now < bake_until + delay:
        waiting = progress.replace(waiting=True)
        waiting = waiting.replace(wait_seconds=_bake_wait(plan, waiting, now))
        return _saved(plan, clients, waiting) if judged else waiting
    return _judge_bake(plan, progress, clients, start=_parse(progress.step_started_at or _iso(now)), end=bake_until)


def _judge_one_interval(plan: Plan, progress: Progress, clients: Clients, start: datetime, end: datetime) -> Progress:
    analysis = plan.policy.analysis
    stats, costs = _track_stats_and_costs(plan, clients, start, end)
    judgement = judge(
        _analysis_policy(plan, min_requests=analysis.min_requests_per_interval), stats["canary"], stats["stable"]
    )
    failing = count_interval(progress.failing_intervals, judgement.verdict)
    failed = failing >= analysis.consecutive_failures
    clients.ledger.record_interval(
        plan,
        step=progress.step,
        index=progress.interval,
        figures={
            "canary_weight": plan.policy.steps[progress.step],
            "window": [_iso(start), _iso(end)],
            **_track_figures(plan, progress, stats, costs),
            "judgement": judgement.as_dict(),
            "failing_intervals": failing,
        },
    )
    progress = progress.replace(interval=progress.interval + 1, failing_intervals=failing)
    if not failed:
        return progress
    reasons = [
        f"{failing} analysis intervals in a row failed, the last {_iso(start)} to {_iso(end)}",
        *judgement.reasons,
    ]
    _audit(
        clients,
        plan,
        f"step-{progress.step}-intervals-failed",
        {"step": progress.step, "last_interval": progress.interval - 1, "verdict": "FAIL", "reasons": reasons},
    )
    return progress.replace(verdict="FAIL", reasons=reasons, waiting=False)


def _judge_bake(plan: Plan, progress: Progress, clients: Clients, *, start: datetime, end: datetime) -> Progress:
    """The step's judgement over the whole bake [start, end) with the policy's min_requests; while data is
    short the bake is extended (the window grows by a bake), up to max_bake_extensions."""
    stats, costs = _track_stats_and_costs(plan, clients, start, end)
    judgement = judge(_analysis_policy(plan), stats["canary"], stats["stable"])
    reasons = list(judgement.reasons)
    verdict, extensions = _extend_while_short(plan, judgement.verdict, progress.extensions, reasons)
    bake_until = end + timedelta(seconds=plan.policy.bake_seconds) if extensions > progress.extensions else end
    _audit(
        clients,
        plan,
        f"step-{progress.step}-judgement-{progress.extensions}",
        {
            **_judgement_evidence(plan, progress, stats, costs, start, end, judgement),
            "intervals_judged": progress.interval,
            "failing_intervals": progress.failing_intervals,
            "verdict": verdict,
            "reasons": reasons,
        },
    )
    judged = progress.replace(
        verdict=verdict, extensions=extensions, reasons=reasons, bake_until=_iso(bake_until), waiting=verdict != "PASS"
    )
    if verdict == "NOT_ENOUGH_DATA":
        judged = judged.replace(wait_seconds=_bake_wait(plan, judged, clients.now()))
    return _saved(plan, clients, judged)


def _extend_while_short(plan: Plan, verdict: str, extensions: int, reasons: list[str]) -> tuple[str, int]:
    """Not enough data extends the bake once more, up to max_bake_extensions; after that it is a failure
    (appended to `reasons`). Returns the verdict and the extensions so far."""
    if verdict != "NOT_ENOUGH_DATA":
        return verdict, extensions
    if extensions >= plan.policy.analysis.max_bake_extensions:
        reasons.append(f"still not enough data after {extensions} bake extension(s)")
        return "FAIL", extensions
    return verdict, extensions + 1


def _interval_window(plan: Plan, progress: Progress, index: int) -> tuple[datetime, datetime]:
    """Interval `index` of the step: whole minutes from the minute the step started in, as CloudWatch's
    load balancer datapoints are per minute."""
    base = _parse(progress.step_started_at or "").replace(second=0, microsecond=0)
    size = timedelta(seconds=plan.policy.analysis.interval_seconds)
    return base + index * size, base + (index + 1) * size


def _bake_wait(plan: Plan, progress: Progress, now: datetime) -> int:
    """Seconds until the next poll: a poll, or less when the next interval or the bake's end falls due sooner."""
    delay = timedelta(seconds=plan.policy.analysis.metric_delay_seconds)
    interval_due = _interval_window(plan, progress, progress.interval)[1] + delay
    bake_due = _parse(progress.bake_until or _iso(now)) + delay
    seconds = math.ceil((min(interval_due, bake_due) - now).total_seconds())
    return max(1, min(plan.policy.poll_seconds, seconds))  # a Wait state's seconds must be a positive integer


# -- the bake of executions started before continuous judgement (their definition polls, then judges once)
def check_bake(plan: Plan, progress: Progress, clients: Clients) -> Progress:
    """Is the step's bake over? (Checked every poll, so an abort is seen within one poll.)"""
    _guard(plan, clients)
    return progress.replace(waiting=clients.now() < _parse(progress.bake_until or _iso(clients.now())))


def judge_canary(plan: Plan, progress: Progress, clients: Clients) -> Progress:
    """Judge the canary against stable over the step so far; extend the bake while data is short."""
    _guard(plan, clients)
    start, end = _parse(progress.step_started_at or _iso(clients.now())), clients.now()
    stats, costs = _track_stats_and_costs(plan, clients, start, end)
    alarms = alarms_in_alarm(clients.cloudwatch, plan.watched_alarms)
    judgement = judge(_analysis_policy(plan), stats["canary"], stats["stable"], alarms)
    reasons = list(judgement.reasons)
    verdict, extensions = _extend_while_short(plan, judgement.verdict, progress.extensions, reasons)
    bake_until = (
        _iso(end + timedelta(seconds=plan.policy.bake_seconds))
        if extensions > progress.extensions
        else progress.bake_until
    )
    _audit(
        clients,
        plan,
        f"step-{progress.step}-judgement-{progress.extensions}",
        {
            **_judgement_evidence(plan, progress, stats, costs, start, end, judgement),
            "alarms_in_alarm": alarms,
            "verdict": verdict,
            "reasons": reasons,
        },
    )
    return _saved(
        plan,
        clients,
        progress.replace(verdict=verdict, extensions=extensions, reasons=reasons, bake_until=bake_until, waiting=True),
    )


def _track_stats(plan: Plan, clients: Clients, start: datetime, end: datetime) -> dict[str, TrackStats]:
    metrics = AlbMetrics(clients.cloudwatch, clients.percentiles, load_balancer=arn_dimension(plan.load_balancer))
    extra = [
        ExtraMetricQuery(
            name=m.name,
            namespace=m.namespace,
            metric_name=m.metric_name,
            statistic=m.statistic,
            dimensions={k: v.replace("{service}", plan.service) for k, v in m.dimensions.items()},
        )
        for m in plan.policy.analysis.extra_metrics
    ]
    return {
        track: metrics.track_stats(
            track=track,
            target_group=arn_dimension(plan.canary_tg if track == "canary" else plan.stable_tg),
            start=start,
            end=end,
            extra=extra,
        )
        for track in ("canary", "stable")
    }


def _track_stats_and_costs(
    plan: Plan, clients: Clients, start: datetime, end: datetime
) -> tuple[dict[str, TrackStats], dict[str, dict]]:
    """Each track's figures over [start, end), with its cost per million requests over the window (pods and
    nodes read now; a cluster that cannot be read gives no cost and the reason, not a failed judgement)."""
    stats = _track_stats(plan, clients, start, end)
    costs = judgement_costs(
        clients,
        namespace=plan.namespace,
        service=plan.service,
        requests={track: figures.requests for track, figures in stats.items()},
        interval_seconds=_counted_seconds(start, end),
        region=_region_of(plan, clients),
    )
    priced = {
        track: dataclasses.replace(figures, cost_per_million_requests=costs[track]["cost_per_million_requests"])
        for track, figures in stats.items()
    }
    return priced, costs


def _counted_seconds(start: datetime, end: datetime) -> int:
    """The span the load balancer's per-minute request counts over [start, end) cover: from start's minute to
    the end of end's (rollout.metrics reads them so), which the pods are charged over."""
    seconds = (end - start.replace(second=0, microsecond=0)).total_seconds()
    return math.ceil(seconds / 60) * 60


def _region_of(plan: Plan, clients: Clients) -> str:
    """The region the service runs in: its load balancer's (arn:aws:elasticloadbalancing:<region>:...), else
    the region the rollout's own clients talk to (the same: the rollout runs beside the cluster)."""
    parts = plan.load_balancer.split(":")
    if len(parts) > 3 and parts[0] == "arn" and parts[3]:
        return parts[3]
    return clients.cloudwatch.meta.region_name


def _targets(plan: Plan, progress: Progress) -> dict[str, str]:
    """The target (pool) each track runs on while judged: the canary on the version's, stable where it ran
    before the rollout; without a recorded placement, the service's pool."""
    home = plan.pool.name if plan.pool else GENERAL_POOL
    snapshot = progress.stable.placement if progress.stable else None
    return {
        "canary": plan.placement.pool if plan.placement else home,
        "stable": snapshot.pool if snapshot and snapshot.pool else home,
    }


def _track_figures(plan: Plan, progress: Progress, stats: dict[str, TrackStats], costs: dict[str, dict]) -> dict:
    """Each track's latency, errors and cost side by side, with the target it ran on (`tessera cost` reads a
    canary's requests per pod-hour on its target from these)."""
    targets = _targets(plan, progress)
    return {
        track: {**_stats_dict(stats[track]), "target": targets[track], "cost": costs[track]}
        for track in ("canary", "stable")
    }


def _judgement_evidence(
    plan: Plan,
    progress: Progress,
    stats: dict[str, TrackStats],
    costs: dict[str, dict],
    start: datetime,
    end: datetime,
    judgement: Judgement,
) -> dict:
    return {
        "step": progress.step,
        "canary_weight": plan.policy.steps[progress.step],
        "window": [_iso(start), _iso(end)],
        **_track_figures(plan, progress, stats, costs),
        "thresholds": {k: v for k, v in plan.policy.analysis.to_json().items() if k != "extra_metrics"},
        "judgement": judgement.as_dict(),
    }


def advance(plan: Plan, progress: Progress, clients: Clients) -> Progress:
    _guard(plan, clients)
    step = progress.step + 1
    return progress.replace(step=step, done=step >= len(plan.policy.steps), verdict=None)


def await_approval(plan: Plan, token: str, clients: Clients) -> dict:
    """Park the execution until an operator approves (or rejects) promotion. A retried task gets a new
    token, so the token is overwritten on every attempt."""
    _guard(plan, clients)
    clients.ledger.set_approval_token(plan, token)
    _audit(clients, plan, "approval-requested", {})
    clients.announcer.progress(plan, "APPROVAL_NEEDED", f"approve with: tessera rollout approve {plan.service}")
    return {}


# -- the end ---------------------------------------------------------------------------------------
def promote_stable(plan: Plan, progress: Progress, clients: Clients) -> Progress:
    _guard(plan, clients)
    _run_version(clients, plan, plan.stable_deployment)
    pool = plan.placement.pool if plan.placement else None
    _audit(clients, plan, "promote-stable", {"version": plan.version, "pool": pool})
    return _saved(plan, clients, progress.replace(promotion_started=True, deadline=_deadline(plan, clients)))


def finalize(plan: Plan, progress: Progress, clients: Clients) -> dict:
    """Stable serves the new version: traffic back to stable, canary to zero, stable's own floor back,
    then one transaction commits the promotion and frees the lock. The announcement after the commit
    is best-effort: it never changes the outcome."""
    if _finished(plan, clients) == PROMOTED:  # a repeated delivery after the commit
        return _announce_promotion(plan, clients)
    _guard(plan, clients)
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
    record = clients.ledger.record_for(plan.service, plan.execution) or {}
    status = record.get("status")
    return status if status and status != RUNNING else None


# -- helpers ---------------------------------------------------------------------------------------
def record_lifecycle(clients: Clients, plan: Plan, kind: str, detail: dict) -> None:
    """Add one event of this rollout to the version's history (once, whatever the retries)."""
    key = f"{plan.execution.rsplit(':', 1)[-1]}#{kind}"
    clients.store.record_lifecycle_event(
        plan.service, plan.version, kind, {"execution": plan.execution, **detail}, key=key
    )


def _guard(plan: Plan, clients: Clients) -> None:
    clients.ledger.guard(plan.service, execution=plan.execution)


def _run_version(clients: Clients, plan: Plan, deployment: str) -> None:
    """The track runs the plan's version, on the version's target (a change of chip moves its pods)."""
    clients.kube.set_version(
        plan.namespace,
        deployment,
        image=plan.image,
        model_version=plan.version,
        model_uri=plan.model_uri,
        placement=plan.placement,
    )


def _server(deployment: dict) -> dict:
    containers = deployment["spec"]["template"]["spec"].get("containers", [])
    server = next((c for c in containers if c.get("name") == SERVING_CONTAINER), None)
    if server is None:
        raise RolloutError(f"deployment {deployment['metadata']['name']} has no container {SERVING_CONTAINER!r}")
    return server


def _set_canary_weight(plan: Plan, clients: Clients, weight: int) -> dict[str, int]:
    return set_weights(
        clients.elbv2, rule_arn=plan.rule_arn, stable_tg=plan.stable_tg, canary_tg=plan.canary_tg, canary_weight=weight
    )


def _deadline(plan: Plan, clients: Clients) -> str:
    return _iso(clients.now() + timedelta(seconds=plan.policy.ready_timeout_seconds))


def _saved(plan: Plan, clients: Clients, progress: Progress) -> Progress:
    clients.ledger.save_progress(plan, progress)
    return progress


def _analysis_policy(plan: Plan, *, min_requests: int | None = None) -> AnalysisPolicy:
    analysis = plan.policy.analysis
    return AnalysisPolicy(
        max_5xx_rate=analysis.max_5xx_rate_percent / 100,
        max_5xx_ratio_vs_stable=analysis.max_5xx_ratio_vs_stable,
        max_p99_seconds=analysis.max_p99_seconds,
        max_p99_ratio_vs_stable=analysis.max_p99_ratio_vs_stable,
        min_requests=analysis.min_requests if min_requests is None else min_requests,
        max_cost_ratio_vs_stable=analysis.max_cost_ratio_vs_stable,
        extra_metrics=tuple(
            ExtraMetricRule(
                name=m.name,
                threshold=m.threshold,
                direction=m.direction,  # type: ignore[arg-type]
                max_ratio_vs_stable=m.max_ratio_vs_stable,
                per_request=m.statistic in PER_REQUEST_STATISTICS,
            )
            for m in analysis.extra_metrics
        ),
    )


def _stats_dict(stats: Any) -> dict:
    return {
        "requests": stats.requests,
        "errors_5xx": stats.errors_5xx,
        "connection_errors": stats.connection_errors,
        "p99_seconds": stats.p99_seconds,
        "extra": dict(stats.extra),
    }


def _audit(clients: Clients, plan: Plan, decision_id: str, details: dict) -> None:
    clients.ledger.record_decision(plan, {"id": decision_id, "step": decision_id, **details})
