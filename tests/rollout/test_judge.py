from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollout.checks import Judgement
from rollout.judge import AnalysisPolicy, ExtraMetricRule, TrackStats, judge

TTFT = ExtraMetricRule("ttft", threshold=0.5, direction="lower_is_better", max_ratio_vs_stable=1.5)
TOKENS = ExtraMetricRule("tokens_per_second", threshold=20.0, direction="higher_is_better", max_ratio_vs_stable=2.0)
POLICY = AnalysisPolicy(
    max_5xx_rate=0.01,
    max_5xx_ratio_vs_stable=2.0,
    max_p99_seconds=2.0,
    max_p99_ratio_vs_stable=1.5,
    min_requests=100,
    extra_metrics=(TTFT, TOKENS),
)
STABLE = TrackStats(requests=1000, errors_5xx=2, p99_seconds=1.0, extra={"ttft": 0.3, "tokens_per_second": 50.0})
CANARY = TrackStats(requests=500, errors_5xx=1, p99_seconds=1.1, extra={"ttft": 0.32, "tokens_per_second": 48.0})
ALL_CHECKS = {
    "5xx_rate",
    "5xx_rate_vs_stable",
    "p99_seconds",
    "p99_vs_stable",
    "ttft",
    "ttft_vs_stable",
    "tokens_per_second",
    "tokens_per_second_vs_stable",
}


def extra(**values: float | None) -> dict[str, float | None]:
    return {**CANARY.extra, **values}


def check(judgement: Judgement, name: str):
    (found,) = [c for c in judgement.checks if c.name == name]
    return found


def test_healthy_canary_passes_every_check() -> None:
    judgement = judge(POLICY, CANARY, STABLE)

    assert judgement.verdict == "PASS"
    assert {c.name for c in judgement.checks} == ALL_CHECKS
    assert all(c.passed for c in judgement.checks)
    assert judgement.reasons == ("canary passed 8 checks over 500 requests",)


@pytest.mark.parametrize(
    ("canary", "stable", "failed", "reason"),
    [
        pytest.param(
            replace(CANARY, errors_5xx=16),
            replace(STABLE, errors_5xx=20),
            "5xx_rate",
            "canary 5xx rate 3.20% exceeds 1.00%",
            id="5xx-rate-over-absolute-limit",
        ),
        pytest.param(
            replace(CANARY, errors_5xx=4),
            replace(STABLE, errors_5xx=0),
            "5xx_rate_vs_stable",
            "canary 5xx rate 0.80% exceeds 2 x stable 0.00% + one error (0.20%) = 0.20%",
            id="5xx-rate-over-stable",
        ),
        pytest.param(
            replace(CANARY, p99_seconds=2.5),
            replace(STABLE, p99_seconds=2.0),
            "p99_seconds",
            "canary p99 response time 2.500s exceeds 2.000s",
            id="p99-over-absolute-limit",
        ),
        pytest.param(
            replace(CANARY, p99_seconds=1.6),
            STABLE,
            "p99_vs_stable",
            "canary p99 response time 1.600s exceeds 1.5 x stable 1.000s = 1.500s",
            id="p99-over-stable",
        ),
        pytest.param(
            replace(CANARY, extra=extra(ttft=0.6)),
            replace(STABLE, extra={**STABLE.extra, "ttft": 0.5}),
            "ttft",
            "canary ttft 0.6 exceeds 0.5",
            id="lower-is-better-over-threshold",
        ),
        pytest.param(
            replace(CANARY, extra=extra(ttft=0.46)),
            STABLE,
            "ttft_vs_stable",
            "canary ttft 0.46 exceeds 1.5 x stable 0.3 = 0.45",
            id="lower-is-better-over-stable",
        ),
        pytest.param(
            replace(CANARY, extra=extra(tokens_per_second=15.0)),
            replace(STABLE, extra={**STABLE.extra, "tokens_per_second": 16.0}),
            "tokens_per_second",
            "canary tokens_per_second 15 is below 20",
            id="higher-is-better-under-threshold",
        ),
        pytest.param(
            replace(CANARY, extra=extra(tokens_per_second=24.0)),
            STABLE,
            "tokens_per_second_vs_stable",
            "canary tokens_per_second 24 is below stable 50 / 2 = 25",
            id="higher-is-better-under-stable",
        ),
    ],
)
def test_each_rule_fails_a_canary_on_its_own(canary: TrackStats, stable: TrackStats, failed: str, reason: str) -> None:
    judgement = judge(POLICY, canary, stable)

    assert judgement.verdict == "FAIL"
    assert judgement.reasons == (reason,)
    assert [c.name for c in judgement.checks if c.passed is False] == [failed]


@pytest.mark.parametrize(
    ("canary", "stable", "skipped"),
    [
        pytest.param(
            replace(CANARY, errors_5xx=4, p99_seconds=1.9, extra=extra(ttft=0.49, tokens_per_second=21.0)),
            replace(STABLE, requests=99, errors_5xx=0),
            {"5xx_rate_vs_stable", "p99_vs_stable", "ttft_vs_stable", "tokens_per_second_vs_stable"},
            id="stable-below-min-requests",
        ),
        pytest.param(
            replace(CANARY, p99_seconds=1.9),
            replace(STABLE, p99_seconds=None),
            {"p99_vs_stable"},
            id="stable-without-p99",
        ),
        pytest.param(
            replace(CANARY, extra=extra(ttft=0.49)),
            replace(STABLE, extra={"tokens_per_second": 50.0}),
            {"ttft_vs_stable"},
            id="stable-without-extra-metric",
        ),
    ],
)
def test_comparisons_with_stable_need_stable_data(canary: TrackStats, stable: TrackStats, skipped: set[str]) -> None:
    """Each canary here would fail the skipped comparisons, but stays within the absolute limits."""
    judgement = judge(POLICY, canary, stable)

    assert judgement.verdict == "PASS"
    assert {c.name for c in judgement.checks if c.passed is None} == skipped
    assert {c.name for c in judgement.checks} == ALL_CHECKS


def test_one_error_against_an_error_free_stable_is_tolerated() -> None:
    judgement = judge(POLICY, replace(CANARY, errors_5xx=1), replace(STABLE, errors_5xx=0))

    assert judgement.verdict == "PASS"
    relative = check(judgement, "5xx_rate_vs_stable")
    assert relative.value == pytest.approx(0.002)
    assert relative.limit == pytest.approx(0.002)


def test_one_error_fails_when_it_exceeds_the_absolute_limit() -> None:
    strict = replace(POLICY, max_5xx_rate=0.001)

    judgement = judge(strict, replace(CANARY, errors_5xx=1), replace(STABLE, errors_5xx=0))

    assert judgement.verdict == "FAIL"
    assert judgement.reasons == ("canary 5xx rate 0.20% exceeds 0.10%",)


@pytest.mark.parametrize(
    ("policy", "canary", "reason", "missing"),
    [
        pytest.param(
            POLICY,
            replace(CANARY, requests=99, errors_5xx=0),
            "canary served 99 requests, fewer than the 100 a judgement needs",
            "requests",
            id="canary-below-min-requests",
        ),
        pytest.param(
            replace(POLICY, min_requests=0),
            replace(CANARY, requests=0, errors_5xx=0),
            "canary served 0 requests, fewer than the 1 a judgement needs",
            "requests",
            id="canary-without-traffic-even-with-min-requests-0",
        ),
        pytest.param(
            POLICY,
            replace(CANARY, p99_seconds=None),
            "canary has no p99 response time in the window",
            "p99_seconds",
            id="canary-without-p99",
        ),
        pytest.param(
            POLICY,
            replace(CANARY, extra=extra(ttft=None)),
            "canary has no ttft value in the window",
            "ttft",
            id="extra-metric-none",
        ),
        pytest.param(
            POLICY,
            replace(CANARY, extra={"ttft": 0.3}),
            "canary has no tokens_per_second value in the window",
            "tokens_per_second",
            id="extra-metric-absent",
        ),
    ],
)
def test_missing_data_is_not_enough_data(policy: AnalysisPolicy, canary: TrackStats, reason: str, missing: str) -> None:
    judgement = judge(policy, canary, STABLE)

    assert judgement.verdict == "NOT_ENOUGH_DATA"
    assert judgement.reasons == (reason,)
    assert check(judgement, missing).passed is None
    assert not [c for c in judgement.checks if c.passed is False]


def test_fail_wins_over_not_enough_data() -> None:
    canary = replace(CANARY, errors_5xx=16, p99_seconds=None)

    judgement = judge(POLICY, canary, replace(STABLE, errors_5xx=20))

    assert judgement.verdict == "FAIL"
    assert judgement.reasons == ("canary 5xx rate 3.20% exceeds 1.00%",)
    assert check(judgement, "p99_seconds").passed is None


def test_every_failure_is_reported() -> None:
    canary = replace(CANARY, errors_5xx=16, p99_seconds=2.5, extra=extra(ttft=0.9))

    judgement = judge(POLICY, canary, STABLE)

    assert judgement.verdict == "FAIL"
    assert {c.name for c in judgement.checks if c.passed is False} == {
        "5xx_rate",
        "5xx_rate_vs_stable",
        "p99_seconds",
        "p99_vs_stable",
        "ttft",
        "ttft_vs_stable",
    }
    assert len(judgement.reasons) == 6


@pytest.mark.parametrize(
    "canary",
    [
        pytest.param(CANARY, id="healthy"),
        pytest.param(replace(CANARY, requests=0, errors_5xx=0, p99_seconds=None, extra={}), id="no-data"),
        pytest.param(replace(CANARY, p99_seconds=None), id="missing-p99"),
    ],
)
def test_an_alarm_in_alarm_fails_whatever_the_data(canary: TrackStats) -> None:
    judgement = judge(POLICY, canary, STABLE, ["tessera-5xx", "tessera-latency"])

    assert judgement.verdict == "FAIL"
    assert judgement.reasons == ("2 alarm(s) in ALARM: tessera-5xx, tessera-latency",)


def test_alarm_reason_comes_before_metric_failures() -> None:
    judgement = judge(POLICY, replace(CANARY, errors_5xx=16), STABLE, ("tessera-5xx",))

    assert judgement.reasons == (
        "1 alarm(s) in ALARM: tessera-5xx",
        "canary 5xx rate 3.20% exceeds 1.00%",
        "canary 5xx rate 3.20% exceeds 2 x stable 0.20% + one error (0.20%) = 0.60%",
    )


def test_as_dict_is_json_friendly() -> None:
    judgement = judge(POLICY, replace(CANARY, p99_seconds=None), STABLE)

    record = json.loads(json.dumps(judgement.as_dict()))

    assert record["verdict"] == "NOT_ENOUGH_DATA"
    assert record["reasons"] == ["canary has no p99 response time in the window"]
    assert {"name": "p99_seconds", "value": None, "limit": None, "passed": None} in record["checks"]
    assert {"name": "5xx_rate", "value": 0.002, "limit": 0.01, "passed": True} in record["checks"]


@pytest.mark.parametrize(
    ("canary", "stable", "message"),
    [
        pytest.param(replace(CANARY, requests=-1, errors_5xx=0), STABLE, "canary: negative counts", id="neg-requests"),
        pytest.param(replace(CANARY, errors_5xx=-1), STABLE, "canary: negative counts", id="neg-errors"),
        pytest.param(
            replace(CANARY, errors_5xx=501), STABLE, "canary: 501 5xx errors out of only 500", id="errors>req"
        ),
        pytest.param(CANARY, replace(STABLE, errors_5xx=1001), "stable: 1001 5xx errors", id="stable-errors>req"),
        pytest.param(replace(CANARY, p99_seconds=math.nan), STABLE, "p99_seconds", id="nan-p99"),
        pytest.param(replace(CANARY, p99_seconds=-0.1), STABLE, "p99_seconds", id="negative-p99"),
        pytest.param(CANARY, replace(STABLE, extra={"ttft": math.nan}), "'ttft' is NaN", id="nan-extra"),
    ],
)
def test_impossible_stats_are_rejected(canary: TrackStats, stable: TrackStats, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        judge(POLICY, canary, stable)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"max_5xx_rate": 1.5}, "max_5xx_rate", id="rate-over-1"),
        pytest.param({"max_5xx_rate": -0.1}, "max_5xx_rate", id="negative-rate"),
        pytest.param({"max_p99_seconds": 0.0}, "max_p99_seconds", id="zero-p99"),
        pytest.param({"max_5xx_ratio_vs_stable": 0.5}, "max_5xx_ratio_vs_stable", id="5xx-ratio-under-1"),
        pytest.param({"max_p99_ratio_vs_stable": math.nan}, "max_p99_ratio_vs_stable", id="nan-ratio"),
        pytest.param({"min_requests": -1}, "min_requests", id="negative-min-requests"),
        pytest.param({"extra_metrics": (TTFT, TTFT)}, "unique", id="duplicate-extra-metric"),
    ],
)
def test_impossible_policies_are_rejected(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(POLICY, **changes)


def test_extra_metric_rule_rejects_a_ratio_under_one() -> None:
    with pytest.raises(ValueError, match="max_ratio_vs_stable"):
        ExtraMetricRule("ttft", threshold=0.5, direction="lower_is_better", max_ratio_vs_stable=0.9)


# Property tests. Extra metrics are named m0 and m1; the strategies draw their rules and values.

EXTRA_NAMES = ("m0", "m1")
finite = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
ratios = st.floats(min_value=1, max_value=10, allow_nan=False)
directions = st.sampled_from(["lower_is_better", "higher_is_better"])


@st.composite
def policies(draw: st.DrawFn, min_requests: st.SearchStrategy[int] | None = None) -> AnalysisPolicy:
    return AnalysisPolicy(
        max_5xx_rate=draw(st.floats(min_value=0, max_value=1, allow_nan=False)),
        max_5xx_ratio_vs_stable=draw(ratios),
        max_p99_seconds=draw(st.floats(min_value=0.001, max_value=100, allow_nan=False)),
        max_p99_ratio_vs_stable=draw(ratios),
        min_requests=draw(min_requests if min_requests is not None else st.integers(0, 10_000)),
        extra_metrics=tuple(
            ExtraMetricRule(name, draw(finite), draw(directions), draw(st.none() | ratios)) for name in EXTRA_NAMES
        ),
    )


@st.composite
def tracks(draw: st.DrawFn, requests: st.SearchStrategy[int] | None = None) -> TrackStats:
    count = draw(requests if requests is not None else st.integers(0, 100_000))
    return TrackStats(
        requests=count,
        errors_5xx=draw(st.integers(0, count)),
        p99_seconds=draw(st.none() | st.floats(min_value=0, max_value=100, allow_nan=False)),
        extra={name: draw(st.none() | finite) for name in EXTRA_NAMES},
    )


@st.composite
def starved(draw: st.DrawFn) -> tuple[AnalysisPolicy, TrackStats]:
    """A policy and a canary that served fewer requests than it asks for (or none at all)."""
    policy = draw(policies())
    return policy, draw(tracks(st.integers(0, max(policy.min_requests - 1, 0))))


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # a loaded CI machine is slow
@given(starved(), tracks())
def test_a_canary_short_of_traffic_never_passes(starved: tuple[AnalysisPolicy, TrackStats], stable: TrackStats) -> None:
    policy, canary = starved

    assert judge(policy, canary, stable).verdict != "PASS"


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), tracks(), tracks(), st.data())
def test_a_worse_canary_than_a_failed_one_never_passes(
    policy: AnalysisPolicy, canary: TrackStats, stable: TrackStats, data: st.DataObject
) -> None:
    if judge(policy, canary, stable).verdict != "FAIL":
        return
    worse_extra = {}
    for rule in policy.extra_metrics:
        value = canary.extra[rule.name]
        step = data.draw(finite)
        if value is not None:
            value = value + step if rule.direction == "lower_is_better" else value - step
        worse_extra[rule.name] = value
    worse = replace(
        canary,
        errors_5xx=canary.errors_5xx + data.draw(st.integers(0, canary.requests - canary.errors_5xx)),
        p99_seconds=None if canary.p99_seconds is None else canary.p99_seconds + data.draw(finite),
        extra=worse_extra,
    )

    # In fact every rule that failed still fails, so the verdict stays FAIL.
    assert judge(policy, worse, stable).verdict == "FAIL"


@st.composite
def healthy(draw: st.DrawFn) -> tuple[AnalysisPolicy, TrackStats]:
    """A stable track with every value present, and a policy whose limits it is within."""
    requests = draw(st.integers(1, 100_000))
    errors = draw(st.integers(0, requests))
    p99 = draw(st.floats(min_value=0, max_value=100, allow_nan=False))
    values = {name: draw(finite) for name in EXTRA_NAMES}
    rules = []
    for name in EXTRA_NAMES:
        direction = draw(directions)
        slack = draw(finite)
        threshold = values[name] + slack if direction == "lower_is_better" else values[name] - slack
        rules.append(ExtraMetricRule(name, threshold, direction, draw(st.none() | ratios)))
    policy = AnalysisPolicy(
        max_5xx_rate=draw(st.floats(min_value=errors / requests, max_value=1, allow_nan=False)),
        max_5xx_ratio_vs_stable=draw(ratios),
        max_p99_seconds=draw(st.floats(min_value=max(p99, 0.001), max_value=200, allow_nan=False)),
        max_p99_ratio_vs_stable=draw(ratios),
        min_requests=draw(st.integers(0, requests)),
        extra_metrics=tuple(rules),
    )
    return policy, TrackStats(requests=requests, errors_5xx=errors, p99_seconds=p99, extra=values)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(healthy())
def test_a_canary_identical_to_a_healthy_stable_passes(healthy: tuple[AnalysisPolicy, TrackStats]) -> None:
    policy, stable = healthy
    canary = replace(stable, extra=dict(stable.extra))

    judgement = judge(policy, canary, stable)

    assert judgement.verdict == "PASS", judgement.reasons
