"""Judging the canary within a step's bake: every analysis interval as it falls due, then the whole bake
(extended while data is short), each judgement with both tracks' figures and cost as evidence."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timedelta
from typing import Any

from rollout.checks import Judgement
from rollout.clients import Clients
from rollout.contract import Plan, Progress
from rollout.contract.outcomes import Verdict
from rollout.contract.records import AuditEntry, AuditKind
from rollout.errors import CanaryInconclusiveError, CanaryUnavailableError, WatchedAlarmError
from rollout.judge import AnalysisPolicy, ExtraMetricRule, TrackStats, count_interval, judge
from rollout.metrics import AlbMetrics, ExtraMetricQuery, alarms_in_alarm, arn_dimension
from rollout.runtime_figures import publish_judged_figures, read_runtime_stats
from rollout.runtime_judge import RuntimePolicy, RuntimeStats
from rollout.steps.common import guard, iso, parse_time, saved
from rollout.track_cost import judgement_costs
from rollout.traffic import healthy_targets
from tessera_shared.constants import GENERAL_POOL
from tessera_shared.runtime_metrics import runtime_names

PER_REQUEST_STATISTICS = frozenset({"Sum", "SampleCount"})

MAX_INTERVALS_PER_POLL = 10  # after a long stall, the rest are judged at the next poll


def judge_interval(plan: Plan, progress: Progress, clients: Clients) -> Progress:
    """One poll of a step's bake. A watched alarm in ALARM, or a canary without a healthy target, stops the step
    at once (WatchedAlarmError, CanaryUnavailableError: no verdict on the version). Every analysis interval
    whose window (ending `metric_delay_seconds` before now, as CloudWatch's load balancer metrics arrive
    late) is complete is judged and recorded; `consecutive_failures` failing intervals in a row fail the
    step. The step passes only once the metric delay after the bake's end has passed, on the whole bake's
    figures (extended while data is short). Polled every `poll_seconds` at most, so an abort is seen
    within one poll."""
    guard(plan, clients)
    analysis = plan.policy.analysis
    alarms = alarms_in_alarm(clients.cloudwatch, plan.watched_alarms)
    if alarms:
        reasons = [f"{len(alarms)} alarm(s) in ALARM: {', '.join(alarms)}"]
        failed = AuditEntry(
            kind=AuditKind.STEP_ALARM,
            step=progress.step,
            verdict=Verdict.FAIL,
            reasons=reasons,
            details={"alarms_in_alarm": alarms},
        )
        clients.ledger.record_decision(plan, failed)
        saved(plan, clients, progress.replace(verdict=Verdict.FAIL, reasons=reasons, waiting=False))
        raise WatchedAlarmError("; ".join(reasons))
    _require_a_serving_canary(plan, progress, clients)
    now = clients.now()
    delay = timedelta(seconds=analysis.metric_delay_seconds)
    bake_until = parse_time(progress.bake_until or iso(now))
    judged = 0
    while judged < MAX_INTERVALS_PER_POLL:
        start, end = _interval_window(plan, progress, progress.interval)
        if end > bake_until or end + delay > now:
            break
        progress = _judge_one_interval(plan, progress, clients, start, end)
        judged += 1
        if progress.verdict == Verdict.FAIL:
            return saved(plan, clients, progress)
    # The whole bake is judged once every interval in it has been (a stall can leave more than one poll's worth).
    if judged == MAX_INTERVALS_PER_POLL or now < bake_until + delay:
        waiting = progress.replace(waiting=True)
        waiting = waiting.replace(wait_seconds=bake_wait(plan, waiting, now))
        return saved(plan, clients, waiting) if judged else waiting
    return _judge_bake(plan, progress, clients, start=parse_time(progress.step_started_at or iso(now)), end=bake_until)


def _require_a_serving_canary(plan: Plan, progress: Progress, clients: Clients) -> None:
    """The canary has a share of the traffic: with no healthy target, those requests fail at the load balancer."""
    healthy, registered = healthy_targets(clients.elbv2, target_group=plan.canary_tg)
    if healthy > 0:
        return
    reason = (
        f"the canary has {plan.policy.steps[progress.step]} % of traffic and no healthy target ({registered} "
        "registered): its pods are gone or failing health checks"
    )
    unavailable = AuditEntry(kind=AuditKind.CANARY_UNAVAILABLE, step=progress.step, reasons=[reason])
    clients.ledger.record_decision(plan, unavailable)
    raise CanaryUnavailableError(reason)


def _judge_one_interval(plan: Plan, progress: Progress, clients: Clients, start: datetime, end: datetime) -> Progress:
    analysis = plan.policy.analysis
    stats, costs = _track_stats_and_costs(plan, clients, start, end)
    judgement = judge(
        _analysis_policy(plan, min_requests=analysis.min_requests_per_interval), stats["canary"], stats["stable"]
    )
    failing = count_interval(progress.failing_intervals, judgement.verdict)
    failed = failing >= analysis.consecutive_failures
    unpublished = publish_judged_figures(
        clients.cloudwatch,
        service=plan.service,
        figures={track: figures.runtime for track, figures in stats.items()},
        costs=costs,
        at=end,
    )
    clients.ledger.record_interval(
        plan,
        step=progress.step,
        index=progress.interval,
        figures={
            "canary_weight": plan.policy.steps[progress.step],
            "window": [iso(start), iso(end)],
            **_track_figures(plan, progress, stats, costs),
            "judgement": judgement.as_dict(),
            "failing_intervals": failing,
            **({"unpublished": unpublished} if unpublished else {}),
        },
    )
    progress = progress.replace(interval=progress.interval + 1, failing_intervals=failing)
    if not failed:
        return progress
    reasons = [
        f"{failing} analysis intervals in a row failed, the last {iso(start)} to {iso(end)}",
        *judgement.reasons,
    ]
    entry = AuditEntry(
        kind=AuditKind.INTERVALS_FAILED,
        step=progress.step,
        verdict=Verdict.FAIL,
        reasons=reasons,
        details={"last_interval": progress.interval - 1},
    )
    clients.ledger.record_decision(plan, entry)
    return progress.replace(verdict=Verdict.FAIL, reasons=reasons, waiting=False)


def _judge_bake(plan: Plan, progress: Progress, clients: Clients, *, start: datetime, end: datetime) -> Progress:
    """The step's judgement over the whole bake [start, end) with the policy's min_requests; while data is
    short the bake is extended (the window grows by a bake), up to max_bake_extensions."""
    stats, costs = _track_stats_and_costs(plan, clients, start, end)
    judgement = judge(_analysis_policy(plan), stats["canary"], stats["stable"])
    reasons = list(judgement.reasons)
    verdict, extensions = _extend_while_short(plan, judgement.verdict, progress.extensions, reasons)
    bake_until = end + timedelta(seconds=plan.policy.bake_seconds) if extensions > progress.extensions else end
    judged_bake = AuditEntry(
        kind=AuditKind.JUDGEMENT,
        step=progress.step,
        extension=progress.extensions,
        verdict=verdict,
        reasons=reasons,
        details={
            **_judgement_evidence(plan, progress, stats, costs, start, end, judgement),
            "intervals_judged": progress.interval,
            "failing_intervals": progress.failing_intervals,
        },
    )
    clients.ledger.record_decision(plan, judged_bake)
    judged = progress.replace(
        verdict=verdict,
        extensions=extensions,
        reasons=reasons,
        bake_until=iso(bake_until),
        waiting=verdict != Verdict.PASS,
    )
    if verdict == Verdict.INCONCLUSIVE:
        saved(plan, clients, judged.replace(waiting=False))
        raise CanaryInconclusiveError("; ".join(reasons))
    if verdict == Verdict.NOT_ENOUGH_DATA:
        judged = judged.replace(wait_seconds=bake_wait(plan, judged, clients.now()))
    return saved(plan, clients, judged)


def _extend_while_short(plan: Plan, verdict: Verdict, extensions: int, reasons: list[str]) -> tuple[Verdict, int]:
    """Not enough data extends the bake once more, up to max_bake_extensions; after that it is INCONCLUSIVE
    (the reason appended to `reasons`): no verdict on the version. Returns the verdict and the extensions so far."""
    if verdict != Verdict.NOT_ENOUGH_DATA:
        return verdict, extensions
    if extensions >= plan.policy.analysis.max_bake_extensions:
        reasons.append(f"still not enough data after {extensions} bake extension(s)")
        return Verdict.INCONCLUSIVE, extensions
    return verdict, extensions + 1


def _interval_window(plan: Plan, progress: Progress, index: int) -> tuple[datetime, datetime]:
    """Interval `index` of the step: whole minutes from the minute the step started in, as CloudWatch's
    load balancer datapoints are per minute."""
    base = parse_time(progress.step_started_at or "").replace(second=0, microsecond=0)
    size = timedelta(seconds=plan.policy.analysis.interval_seconds)
    return base + index * size, base + (index + 1) * size


def bake_wait(plan: Plan, progress: Progress, now: datetime) -> int:
    """Seconds until the next poll: a poll, or less when the next interval or the bake's end falls due sooner."""
    delay = timedelta(seconds=plan.policy.analysis.metric_delay_seconds)
    interval_due = _interval_window(plan, progress, progress.interval)[1] + delay
    bake_due = parse_time(progress.bake_until or iso(now)) + delay
    seconds = math.ceil((min(interval_due, bake_due) - now).total_seconds())
    return max(1, min(plan.policy.poll_seconds, seconds))  # a Wait state's seconds must be a positive integer


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
    stats = {
        track: metrics.track_stats(
            track=track,
            target_group=arn_dimension(plan.canary_tg if track == "canary" else plan.stable_tg),
            start=start,
            end=end,
            extra=extra,
        )
        for track in ("canary", "stable")
    }
    if plan.runtime_metrics is None:
        return stats
    reader = clients.prometheus(plan.runtime_metrics)
    names = runtime_names(plan.runtime_metrics.runtime)
    return {
        track: dataclasses.replace(
            figures,
            runtime=read_runtime_stats(
                reader, names, namespace=plan.namespace, service=plan.service, track=track, start=start, end=end
            ),
        )
        for track, figures in stats.items()
    }


def _track_stats_and_costs(
    plan: Plan, clients: Clients, start: datetime, end: datetime
) -> tuple[dict[str, TrackStats], dict[str, dict[str, Any]]]:
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
    for track, figures in stats.items():
        if figures.runtime is not None:
            costs[track]["cost_per_million_output_tokens"] = _per_million_output_tokens(costs[track], figures.runtime)
    priced = {
        track: dataclasses.replace(figures, cost_per_million_requests=costs[track]["cost_per_million_requests"])
        for track, figures in stats.items()
    }
    return priced, costs


def _per_million_output_tokens(cost: dict[str, Any], runtime: RuntimeStats) -> float | None:
    """The track's cost over the window per million tokens it generated: the pods' hourly cost over the same hours
    the cost per million requests uses. None without a cost or without tokens."""
    if cost.get("dollars_per_hour") is None or runtime.output_tokens == 0:
        return None
    dollars = float(cost["dollars_per_hour"]) * float(cost["hours"])
    return round(dollars / runtime.output_tokens * 1_000_000, 6)


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
    return str(clients.cloudwatch.meta.region_name)


def _targets(plan: Plan, progress: Progress) -> dict[str, str]:
    """The target (pool) each track runs on while judged: the canary on the version's, stable where it ran
    before the rollout; without a recorded placement, the service's pool."""
    home = plan.pool.name if plan.pool else GENERAL_POOL
    snapshot = progress.stable.placement if progress.stable else None
    return {
        "canary": plan.placement.pool if plan.placement else home,
        "stable": snapshot.pool if snapshot and snapshot.pool else home,
    }


def _track_figures(
    plan: Plan, progress: Progress, stats: dict[str, TrackStats], costs: dict[str, dict[str, Any]]
) -> dict[str, Any]:
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
    costs: dict[str, dict[str, Any]],
    start: datetime,
    end: datetime,
    judgement: Judgement,
) -> dict[str, Any]:
    return {
        "canary_weight": plan.policy.steps[progress.step],
        "window": [iso(start), iso(end)],
        **_track_figures(plan, progress, stats, costs),
        "thresholds": {k: v for k, v in plan.policy.analysis.to_json().items() if k != "extra_metrics"},
        "judgement": judgement.as_dict(),
    }


def _analysis_policy(plan: Plan, *, min_requests: int | None = None) -> AnalysisPolicy:
    analysis = plan.policy.analysis
    return AnalysisPolicy(
        max_5xx_rate=analysis.max_5xx_rate_percent / 100,
        max_5xx_ratio_vs_stable=analysis.max_5xx_ratio_vs_stable,
        max_p99_seconds=analysis.max_p99_seconds,
        max_p99_ratio_vs_stable=analysis.max_p99_ratio_vs_stable,
        min_requests=analysis.min_requests if min_requests is None else min_requests,
        max_cost_ratio_vs_stable=analysis.max_cost_ratio_vs_stable,
        runtime=_runtime_policy(plan, interval=min_requests is not None),
        extra_metrics=tuple(
            ExtraMetricRule(
                name=m.name,
                threshold=m.threshold,
                direction=m.direction,  # type: ignore[arg-type]  # config checked it against the same literals
                max_ratio_vs_stable=m.max_ratio_vs_stable,
                per_request=m.statistic in PER_REQUEST_STATISTICS,
            )
            for m in analysis.extra_metrics
        ),
    )


def _runtime_policy(plan: Plan, *, interval: bool) -> RuntimePolicy | None:
    """The runtime rules for a plan with runtime metrics, with an interval's or a whole bake's minimum samples."""
    if plan.runtime_metrics is None:
        return None
    analysis = plan.policy.analysis
    return RuntimePolicy(
        max_ttft_p99_seconds=analysis.max_ttft_p99_seconds,
        max_ttft_p50_ratio_vs_stable=analysis.max_ttft_p50_ratio_vs_stable,
        max_ttft_p99_ratio_vs_stable=analysis.max_ttft_p99_ratio_vs_stable,
        max_tpot_p99_ratio_vs_stable=analysis.max_tpot_p99_ratio_vs_stable,
        max_e2e_p99_ratio_vs_stable=analysis.max_e2e_p99_ratio_vs_stable,
        max_error_rate=analysis.max_runtime_error_rate_percent / 100,
        min_samples=analysis.min_runtime_samples_per_interval if interval else analysis.min_runtime_samples,
    )


def _stats_dict(stats: Any) -> dict[str, Any]:
    figures = {
        "requests": stats.requests,
        "errors_5xx": stats.errors_5xx,
        "connection_errors": stats.connection_errors,
        "p99_seconds": stats.p99_seconds,
        "extra": dict(stats.extra),
    }
    if stats.runtime is not None:
        figures["runtime"] = stats.runtime.as_dict()
    return figures
