"""The cost rule of the judge (issue 15): the canary's cost per million requests at most a ratio of stable's,
checked only when the policy sets it, and never passed on a missing figure."""

from __future__ import annotations

from dataclasses import replace

import pytest

from rollout.judge import AnalysisPolicy, TrackStats, judge

POLICY = AnalysisPolicy(
    max_5xx_rate=0.01,
    max_5xx_ratio_vs_stable=2.0,
    max_p99_seconds=2.0,
    max_p99_ratio_vs_stable=1.5,
    min_requests=100,
    max_cost_ratio_vs_stable=1.2,
)
STABLE = TrackStats(requests=1000, errors_5xx=0, p99_seconds=1.0, cost_per_million_requests=50.0)
CANARY = TrackStats(requests=500, errors_5xx=0, p99_seconds=1.0, cost_per_million_requests=55.0)
RULE = "cost_per_million_requests_vs_stable"


def cost_check(canary: TrackStats, stable: TrackStats = STABLE, policy: AnalysisPolicy = POLICY) -> dict:
    judgement = judge(policy, canary, stable).as_dict()
    [check] = [check for check in judgement["checks"] if check["name"] == RULE] or [None]
    return {"verdict": judgement["verdict"], "reasons": judgement["reasons"], "check": check}


def test_a_canary_within_the_ratio_passes_with_the_limit_recorded() -> None:
    result = cost_check(CANARY)
    assert result["verdict"] == "PASS"
    assert result["check"] == {"name": RULE, "value": 55.0, "limit": pytest.approx(60.0), "passed": True}


def test_a_canary_dearer_than_the_ratio_allows_fails() -> None:
    result = cost_check(replace(CANARY, cost_per_million_requests=61.0))
    assert result["verdict"] == "FAIL"
    assert result["reasons"] == ["canary cost $61 per million requests exceeds 1.2 x stable $50 = $60"]


def test_a_ratio_below_one_requires_the_canary_to_be_cheaper() -> None:
    cheaper = replace(POLICY, max_cost_ratio_vs_stable=0.8)
    assert cost_check(replace(CANARY, cost_per_million_requests=39.0), policy=cheaper)["verdict"] == "PASS"
    assert cost_check(replace(CANARY, cost_per_million_requests=41.0), policy=cheaper)["verdict"] == "FAIL"


@pytest.mark.parametrize(
    ("canary", "stable", "reason"),
    [
        (
            replace(CANARY, cost_per_million_requests=None),
            STABLE,
            "canary has no cost per million requests in the window",
        ),
        (
            CANARY,
            replace(STABLE, cost_per_million_requests=None),
            "stable has no cost per million requests in the window: the canary's cost cannot be compared",
        ),
        (
            CANARY,
            replace(STABLE, requests=10),
            "stable served too few requests in the window: the canary's cost cannot be compared",
        ),
    ],
)
def test_a_missing_cost_is_not_enough_data_when_the_rule_is_set(
    canary: TrackStats, stable: TrackStats, reason: str
) -> None:
    result = cost_check(canary, stable)
    assert result["verdict"] == "NOT_ENOUGH_DATA"
    assert result["reasons"] == [reason]
    assert result["check"] == {"name": RULE, "value": None, "limit": None, "passed": None}


def test_a_missing_cost_does_not_hide_a_failure() -> None:
    result = cost_check(replace(CANARY, cost_per_million_requests=None, p99_seconds=5.0))
    assert result["verdict"] == "FAIL"


def test_without_the_rule_cost_is_not_judged_even_when_missing() -> None:
    unset = replace(POLICY, max_cost_ratio_vs_stable=None)
    for canary in (replace(CANARY, cost_per_million_requests=None), replace(CANARY, cost_per_million_requests=1e9)):
        result = cost_check(canary, policy=unset)
        assert (result["verdict"], result["check"]) == ("PASS", None)


@pytest.mark.parametrize("ratio", [0.0, -1.0, float("nan"), float("inf")])
def test_a_ratio_that_is_not_a_positive_number_is_refused(ratio: float) -> None:
    with pytest.raises(ValueError, match="max_cost_ratio_vs_stable must be a positive number"):
        replace(POLICY, max_cost_ratio_vs_stable=ratio)


@pytest.mark.parametrize("cost", [float("nan"), -0.01])
def test_an_impossible_cost_is_refused(cost: float) -> None:
    with pytest.raises(ValueError, match="canary: cost_per_million_requests must be a non-negative number"):
        judge(POLICY, replace(CANARY, cost_per_million_requests=cost), STABLE)
