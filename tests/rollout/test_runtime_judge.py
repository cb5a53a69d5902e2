"""The serving runtime's rules (rollout.runtime_judge) inside the judge: what fails, what passes, and that too few
measured requests is never a pass."""

from __future__ import annotations

import dataclasses

import pytest

from rollout.judge import AnalysisPolicy, TrackStats, judge
from rollout.runtime_judge import RuntimePolicy, RuntimeStats

RUNTIME = RuntimePolicy(
    max_ttft_p99_seconds=30.0,
    max_ttft_p50_ratio_vs_stable=1.2,
    max_ttft_p99_ratio_vs_stable=1.2,
    max_tpot_p99_ratio_vs_stable=1.2,
    max_e2e_p99_ratio_vs_stable=1.2,
    max_error_rate=0.01,
    min_samples=100,
)
POLICY = AnalysisPolicy(
    max_5xx_rate=0.01,
    max_5xx_ratio_vs_stable=2.0,
    max_p99_seconds=10.0,
    max_p99_ratio_vs_stable=1.5,
    min_requests=100,
    runtime=RUNTIME,
)
MEASURED = RuntimeStats(
    samples=1000,
    ttft_p50_seconds=0.4,
    ttft_p99_seconds=0.9,
    tpot_p99_seconds=0.05,
    e2e_p99_seconds=8.0,
    finished=1000,
    errors=0,
    output_tokens=200_000,
    pods=1,
    window_seconds=60,
)


def track(**runtime: object) -> TrackStats:
    """The same load balancer figures for every track: only the runtime's differ."""
    return TrackStats(requests=1000, errors_5xx=0, p99_seconds=0.5, runtime=dataclasses.replace(MEASURED, **runtime))


def checks(judgement: object) -> dict[str, object]:
    return {check.name: check.passed for check in judgement.checks}  # type: ignore[attr-defined]


def test_a_30_percent_worse_first_token_p99_fails_though_the_load_balancer_sees_nothing() -> None:
    judgement = judge(POLICY, track(ttft_p99_seconds=0.9 * 1.3), track())
    assert judgement.verdict == "FAIL"
    assert judgement.reasons == ("canary p99 time to first token 1.17s exceeds 1.2 x stable 0.9s = 1.08s",)
    assert checks(judgement)["p99_vs_stable"] is True


@pytest.mark.parametrize(
    ("figure", "reason"),
    [
        ("ttft_p50_seconds", "p50 time to first token"),
        ("tpot_p99_seconds", "p99 time per output token"),
        ("e2e_p99_seconds", "p99 end-to-end latency"),
    ],
)
def test_each_latency_is_compared_with_stables(figure: str, reason: str) -> None:
    judgement = judge(POLICY, track(**{figure: getattr(MEASURED, figure) * 1.5}), track())
    assert judgement.verdict == "FAIL"
    assert reason in judgement.reasons[0]


def test_better_per_token_latency_passes() -> None:
    judgement = judge(POLICY, track(tpot_p99_seconds=0.03), track())
    assert judgement.verdict == "PASS"
    assert checks(judgement)["tpot_p99_seconds_vs_stable"] is True


def test_too_few_measured_requests_is_not_enough_data_never_a_pass() -> None:
    judgement = judge(POLICY, track(samples=99), track())
    assert judgement.verdict == "NOT_ENOUGH_DATA"
    assert judgement.reasons == ("the canary's runtime measured 99 requests, fewer than the 100 its figures need",)


def test_a_failing_load_balancer_rule_still_fails_when_the_runtime_has_too_few_samples() -> None:
    failing = dataclasses.replace(track(samples=3), errors_5xx=50)
    assert judge(POLICY, failing, track()).verdict == "FAIL"


def test_the_runtimes_errors_have_a_ceiling_of_their_own() -> None:
    judgement = judge(POLICY, track(errors=20), track())
    assert judgement.verdict == "FAIL"
    assert judgement.reasons == ("canary runtime error rate 2.00% (20 of 1000) exceeds 1.00%",)


def test_a_window_in_which_the_runtime_finished_nothing_has_no_error_rate_to_pass_on() -> None:
    judgement = judge(POLICY, track(finished=0), track())
    assert judgement.verdict == "NOT_ENOUGH_DATA"
    assert "finished no request" in judgement.reasons[0]


def test_the_absolute_first_token_ceiling_applies_without_stable() -> None:
    quiet_stable = track(samples=10)
    assert judge(POLICY, track(), quiet_stable).verdict == "PASS"
    slow = judge(POLICY, track(ttft_p99_seconds=31.0, ttft_p50_seconds=5.0), quiet_stable)
    assert slow.verdict == "FAIL"
    assert slow.reasons == ("canary p99 time to first token 31s exceeds 30s",)
    assert checks(slow)["ttft_p99_seconds_vs_stable"] is None  # not compared: stable measured too little


def test_a_missing_canary_quantile_is_not_enough_data() -> None:
    judgement = judge(POLICY, track(tpot_p99_seconds=None), track())
    assert judgement.verdict == "NOT_ENOUGH_DATA"


def test_a_policy_without_runtime_rules_judges_as_before() -> None:
    """A service without a metrics endpoint: the load balancer's judgement only, whatever runtime figures exist."""
    load_balancer_only = dataclasses.replace(POLICY, runtime=None)
    judgement = judge(load_balancer_only, track(ttft_p99_seconds=100.0), track())
    assert judgement.verdict == "PASS"
    assert not any(name.startswith(("ttft", "tpot", "e2e", "runtime")) for name in checks(judgement))


@pytest.mark.parametrize(
    "bad",
    [
        {"samples": -1},
        {"errors": -1},
        {"ttft_p99_seconds": float("nan")},
        {"tpot_p99_seconds": -0.1},
        {"window_seconds": 0},
    ],
)
def test_figures_no_runtime_can_produce_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message names the field; any of them
        dataclasses.replace(MEASURED, **bad)
