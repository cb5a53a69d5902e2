"""Judges a canary track against the stable track at one traffic step. Pure: the caller reads the
metrics (rollout.metrics) and records the judgement.

Missing data is never healthy: a canary without enough traffic, or without a value a rule needs,
is NOT_ENOUGH_DATA, never PASS. FAIL wins over NOT_ENOUGH_DATA, which wins over PASS, so one bad
number is enough to roll back even when other numbers are missing.

The "5xx rate" counts every request the track's clients saw fail: its targets' 5xx responses plus the
connections the load balancer could not open to its targets (each answered with a load balancer 5xx).

Within a bake the same judgement runs on each analysis interval; `count_interval` keeps the run of
consecutive failing intervals that rolls back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from rollout.checks import Check, Collector, Judgement
from rollout.contract.outcomes import Verdict
from rollout.runtime_judge import RuntimePolicy, RuntimeStats, judge_runtime

Direction = Literal["lower_is_better", "higher_is_better"]


@dataclass(frozen=True)
class ExtraMetricRule:
    """A limit on a metric beyond 5xx and latency, e.g. time to first token."""

    name: str
    threshold: float
    direction: Direction
    # The canary may be at most this many times worse than stable; None compares only to threshold.
    max_ratio_vs_stable: float | None = None
    # A total (Sum, SampleCount) grows with the traffic a track gets: compared with stable's it is
    # taken per request, or a canary at 10 % of the traffic would look ten times better than stable.
    per_request: bool = False

    def __post_init__(self) -> None:
        if self.direction not in ("lower_is_better", "higher_is_better"):
            raise ValueError(f"extra metric {self.name!r}: unknown direction {self.direction!r}")
        if math.isnan(self.threshold):
            raise ValueError(f"extra metric {self.name!r}: threshold is NaN")
        _check_ratio(f"extra metric {self.name!r} max_ratio_vs_stable", self.max_ratio_vs_stable)


@dataclass(frozen=True)
class AnalysisPolicy:
    """The judge's view of the plan's `contract.Analysis` for one window: the 5xx ceiling as a fraction, and the
    minimum requests of the window judged (a whole bake's or an interval's). Built only by
    rollout.steps.analysis from a plan; the bounds are the policy's (rollout.policy_fields), checked when config
    is parsed and again by Prepare. The checks below only keep this pure function's arithmetic defined."""

    max_5xx_rate: float
    max_5xx_ratio_vs_stable: float
    max_p99_seconds: float
    max_p99_ratio_vs_stable: float
    min_requests: int
    extra_metrics: tuple[ExtraMetricRule, ...] = ()
    # The canary's cost per million requests at most this times stable's; None: cost is not judged. Below 1
    # is allowed: a move to another chip may be required to be cheaper.
    max_cost_ratio_vs_stable: float | None = None
    # The serving runtime's rules (rollout.runtime_judge); None: the service has no metrics endpoint.
    runtime: RuntimePolicy | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.max_5xx_rate <= 1:
            raise ValueError(f"max_5xx_rate must be a fraction in [0, 1], got {self.max_5xx_rate}")
        if not self.max_p99_seconds > 0:
            raise ValueError(f"max_p99_seconds must be positive, got {self.max_p99_seconds}")
        if self.min_requests < 0:
            raise ValueError(f"min_requests must not be negative, got {self.min_requests}")
        _check_ratio("max_5xx_ratio_vs_stable", self.max_5xx_ratio_vs_stable)
        _check_ratio("max_p99_ratio_vs_stable", self.max_p99_ratio_vs_stable)
        cost_ratio = self.max_cost_ratio_vs_stable
        if cost_ratio is not None and not (math.isfinite(cost_ratio) and cost_ratio > 0):
            raise ValueError(f"max_cost_ratio_vs_stable must be a positive number, got {cost_ratio}")
        names = [rule.name for rule in self.extra_metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"extra metric names must be unique, got {names}")


@dataclass(frozen=True)
class TrackStats:
    """One track's numbers over the analysis window; None means CloudWatch had no datapoint."""

    requests: int
    errors_5xx: int  # responses with a 5xx status from the track's targets
    p99_seconds: float | None
    extra: Mapping[str, float | None] = field(default_factory=dict)
    # Connections the load balancer could not open to a target (refused, reset, timed out): each is a request
    # the client saw fail with a load balancer 5xx, which CloudWatch counts only for the whole load balancer.
    connection_errors: int = 0
    # USD per million requests over the window (rollout.cost); None when it could not be measured.
    cost_per_million_requests: float | None = None
    # The serving runtime's figures over the window (rollout.runtime_figures); None: not read.
    runtime: RuntimeStats | None = None

    @property
    def failed_requests(self) -> int:
        """Target 5xx plus connection errors: what the 5xx rules judge (at most every request)."""
        return min(self.requests, self.errors_5xx + self.connection_errors)


def judge(
    policy: AnalysisPolicy,
    canary: TrackStats,
    stable: TrackStats,
    alarms_in_alarm: Sequence[str] = (),
) -> Judgement:
    """Judges the canary. Relative rules compare to stable only when stable carried at least
    min_requests: a near-idle stable's numbers are noise, so only the absolute limits apply then."""
    _validate("canary", canary)
    _validate("stable", stable)
    judgement = _judge_metrics(policy, canary, stable)
    if not alarms_in_alarm:
        return judgement
    # An alarm sees more than this window does (other metrics, other sources): it fails the canary
    # whatever the numbers say. The checks are kept so the audit record still shows them.
    reason = f"{len(alarms_in_alarm)} alarm(s) in ALARM: {', '.join(alarms_in_alarm)}"
    failures = judgement.reasons if judgement.verdict == Verdict.FAIL else ()
    return Judgement(Verdict.FAIL, (reason, *failures), judgement.checks)


def count_interval(failing: int, verdict: Verdict) -> int:
    """The run of consecutive failing intervals after one more interval: a FAIL extends it, a PASS ends it.
    An interval without enough data (too few requests, a missing value) leaves it as it was: it is no
    evidence either way, and resetting on it would let a failing canary escape by a quiet minute between
    two bad ones. The caller rolls back once the run reaches the policy's consecutive failures."""
    if verdict == Verdict.FAIL:
        return failing + 1
    if verdict == Verdict.PASS:
        return 0
    return failing


def _judge_metrics(policy: AnalysisPolicy, canary: TrackStats, stable: TrackStats) -> Judgement:
    # A canary that got no traffic has shown nothing, whatever min_requests says.
    min_requests = max(policy.min_requests, 1)
    if canary.requests < min_requests:
        return Judgement(
            Verdict.NOT_ENOUGH_DATA,
            (f"canary served {canary.requests} requests, fewer than the {min_requests} a judgement needs",),
            (Check("requests", canary.requests, min_requests, None),),
        )
    result = Collector()
    stable_has_traffic = stable.requests >= min_requests
    if not stable_has_traffic:
        result.notes.append(f"stable served only {stable.requests} requests: comparisons with stable were skipped")
    _judge_5xx(policy, canary, stable, stable_has_traffic, result)
    _judge_p99(policy, canary, stable, stable_has_traffic, result)
    for rule in policy.extra_metrics:
        _judge_extra(rule, canary, stable, stable_has_traffic, result)
    if policy.max_cost_ratio_vs_stable is not None:
        _judge_cost(policy.max_cost_ratio_vs_stable, canary, stable, stable_has_traffic, result)
    if policy.runtime is not None:
        judge_runtime(policy.runtime, canary.runtime, stable.runtime, result)
    return result.judgement(canary.requests)


def _judge_5xx(
    policy: AnalysisPolicy, canary: TrackStats, stable: TrackStats, stable_has_traffic: bool, result: Collector
) -> None:
    rate = canary.failed_requests / canary.requests
    limit = policy.max_5xx_rate
    result.add(
        Check("5xx_rate", rate, limit, rate <= limit),
        f"canary 5xx rate {_percent(rate)} exceeds {_percent(limit)}",
    )
    if not stable_has_traffic:
        result.checks.append(Check("5xx_rate_vs_stable", rate, None, None))
        return
    stable_rate = stable.failed_requests / stable.requests
    # One error's worth of slack: against a zero-error stable, a lone canary error is chance, not a trend.
    tolerance = 1 / canary.requests
    relative_limit = stable_rate * policy.max_5xx_ratio_vs_stable + tolerance
    result.add(
        Check("5xx_rate_vs_stable", rate, relative_limit, rate <= relative_limit),
        f"canary 5xx rate {_percent(rate)} exceeds {policy.max_5xx_ratio_vs_stable:g} x stable "
        f"{_percent(stable_rate)} + one error ({_percent(tolerance)}) = {_percent(relative_limit)}",
    )


def _judge_p99(
    policy: AnalysisPolicy, canary: TrackStats, stable: TrackStats, stable_has_traffic: bool, result: Collector
) -> None:
    p99 = canary.p99_seconds
    if p99 is None:
        result.missing_value("p99_seconds", "canary has no p99 response time in the window")
        return
    limit = policy.max_p99_seconds
    result.add(
        Check("p99_seconds", p99, limit, p99 <= limit),
        f"canary p99 response time {p99:.3f}s exceeds {limit:.3f}s",
    )
    if not stable_has_traffic or stable.p99_seconds is None:
        result.checks.append(Check("p99_vs_stable", p99, None, None))
        return
    ratio = policy.max_p99_ratio_vs_stable
    relative_limit = stable.p99_seconds * ratio
    result.add(
        Check("p99_vs_stable", p99, relative_limit, p99 <= relative_limit),
        f"canary p99 response time {p99:.3f}s exceeds {ratio:g} x stable {stable.p99_seconds:.3f}s "
        f"= {relative_limit:.3f}s",
    )


def _judge_extra(
    rule: ExtraMetricRule, canary: TrackStats, stable: TrackStats, stable_has_traffic: bool, result: Collector
) -> None:
    value = canary.extra.get(rule.name)
    if value is None:
        result.missing_value(rule.name, f"canary has no {rule.name} value in the window")
        return
    lower_is_better = rule.direction == "lower_is_better"
    worse = "exceeds" if lower_is_better else "is below"
    passed = value <= rule.threshold if lower_is_better else value >= rule.threshold
    result.add(
        Check(rule.name, value, rule.threshold, passed),
        f"canary {rule.name} {value:.4g} {worse} {rule.threshold:.4g}",
    )
    if rule.max_ratio_vs_stable is None:
        return
    stable_value = stable.extra.get(rule.name)
    name = f"{rule.name}_vs_stable"
    if not stable_has_traffic or stable_value is None:
        result.checks.append(Check(name, value, None, None))
        return
    ratio = rule.max_ratio_vs_stable
    if rule.per_request:
        value, stable_value, name = value / canary.requests, stable_value / stable.requests, f"{name}_per_request"
    if lower_is_better:
        limit = stable_value * ratio
        passed = value <= limit
        how = f"{ratio:g} x stable {stable_value:.4g}"
    else:
        limit = stable_value / ratio
        passed = value >= limit
        how = f"stable {stable_value:.4g} / {ratio:g}"
    result.add(Check(name, value, limit, passed), f"canary {rule.name} {value:.4g} {worse} {how} = {limit:.4g}")


def _judge_cost(
    ratio: float, canary: TrackStats, stable: TrackStats, stable_has_traffic: bool, result: Collector
) -> None:
    """Cost has no absolute limit, only stable's: without both figures the rule has no data, never a pass."""
    name = "cost_per_million_requests_vs_stable"
    value, stable_value = canary.cost_per_million_requests, stable.cost_per_million_requests
    if value is None:
        result.missing_value(name, "canary has no cost per million requests in the window")
        return
    if not stable_has_traffic or stable_value is None:
        why = "served too few requests" if not stable_has_traffic else "has no cost per million requests"
        result.missing_value(name, f"stable {why} in the window: the canary's cost cannot be compared")
        return
    limit = stable_value * ratio
    result.add(
        Check(name, value, limit, value <= limit),
        f"canary cost ${value:.4g} per million requests exceeds {ratio:g} x stable ${stable_value:.4g} = ${limit:.4g}",
    )


def _validate(track: str, stats: TrackStats) -> None:
    """Rejects numbers no metric source can produce, rather than judging on them."""
    if min(stats.requests, stats.errors_5xx, stats.connection_errors) < 0:
        raise ValueError(
            f"{track}: negative counts (requests={stats.requests}, errors_5xx={stats.errors_5xx}, "
            f"connection_errors={stats.connection_errors})"
        )
    if stats.errors_5xx > stats.requests:
        raise ValueError(f"{track}: {stats.errors_5xx} 5xx errors out of only {stats.requests} requests")
    # NaN compares False with everything, so it would slip through every limit as healthy.
    if stats.p99_seconds is not None and (math.isnan(stats.p99_seconds) or stats.p99_seconds < 0):
        raise ValueError(f"{track}: p99_seconds must be a non-negative number, got {stats.p99_seconds}")
    cost = stats.cost_per_million_requests
    if cost is not None and (math.isnan(cost) or cost < 0):
        raise ValueError(f"{track}: cost_per_million_requests must be a non-negative number, got {cost}")
    for name, value in stats.extra.items():
        if value is not None and math.isnan(value):
            raise ValueError(f"{track}: extra metric {name!r} is NaN")


def _check_ratio(name: str, ratio: float | None) -> None:
    # Below 1 the canary would have to beat stable, so an identical canary could never pass.
    if ratio is not None and not ratio >= 1:
        raise ValueError(f"{name} must be at least 1, got {ratio}")


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.2f}%"
