"""Continuous judgement within a bake: the interval logic on its own (rollout.judge.count_interval) and
the JudgeInterval step polled as the state machine polls it, under moto and the traffic double (whose
load balancer metrics land a minute late, minute by minute)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from rollout.contract import Plan, Progress
from rollout.errors import WatchedAlarmError
from rollout.judge import AnalysisPolicy, TrackStats, count_interval, judge
from rollout.policy import OverrideError, check_overrides, worst_case_seconds
from rollout.steps import analysis, canary, start
from stacks.config.rollout import RolloutPolicy
from tests.rollout.harness import NEW_VERSION, RolloutWorld, TrackTraffic

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:m:e1"
GOOD = TrackTraffic(requests=1000, errors_5xx=5)  # 0.5 %: within 1 % and within 2 x stable's
BAD = TrackTraffic(requests=1000, errors_5xx=30)  # 3 %: over both limits
QUIET_BAD = TrackTraffic(requests=10, errors_5xx=5)  # failing figures, but fewer requests than an interval needs


# -- the run of failing intervals ------------------------------------------------------------------
def run(verdicts: str, needed: int = 2) -> tuple[int, bool]:
    """Feed interval verdicts (F, P, N) through count_interval; the run at the end and whether it rolled back."""
    failing, rolled_back = 0, False
    names = {"F": "FAIL", "P": "PASS", "N": "NOT_ENOUGH_DATA"}
    for letter in verdicts:
        failing = count_interval(failing, names[letter])  # type: ignore[arg-type]
        rolled_back = rolled_back or failing >= needed
    return failing, rolled_back


@pytest.mark.parametrize("needed", [2, 3, 5])
def test_n_minus_one_failing_intervals_then_recovery_do_not_roll_back(needed: int) -> None:
    assert run("F" * (needed - 1) + "P" + "F" * (needed - 1), needed) == (needed - 1, False)


@pytest.mark.parametrize("needed", [1, 2, 3])
def test_n_failing_intervals_in_a_row_roll_back(needed: int) -> None:
    assert run("P" + "F" * needed, needed) == (needed, True)


def test_an_interval_without_enough_data_neither_counts_nor_resets() -> None:
    assert run("FN") == (1, False)  # the quiet interval does not count towards the failure...
    assert run("FNF") == (2, True)  # ...nor does it save a failing canary between two bad intervals
    assert run("NNN") == (0, False)


def test_target_connection_errors_count_as_failed_requests() -> None:
    """A canary that resets connections fails though its targets never answered with a 5xx."""
    policy = AnalysisPolicy(
        max_5xx_rate=0.01, max_5xx_ratio_vs_stable=2.0, max_p99_seconds=2.0, max_p99_ratio_vs_stable=1.5, min_requests=1
    )
    stable = TrackStats(requests=1000, errors_5xx=0, p99_seconds=0.5)
    resetting = TrackStats(requests=1000, errors_5xx=0, p99_seconds=0.5, connection_errors=40)
    judgement = judge(policy, resetting, stable)
    assert judgement.verdict == "FAIL"
    assert "canary 5xx rate 4.00% exceeds 1.00%" in judgement.reasons
    # Never more failed requests than requests, whatever CloudWatch's two counts add up to.
    assert TrackStats(requests=10, errors_5xx=8, p99_seconds=None, connection_errors=8).failed_requests == 10


# -- JudgeInterval, polled as the state machine polls it --------------------------------------------
def baking(world: RolloutWorld, **policy: Any) -> tuple[Plan, Progress]:
    """A locked rollout of a service whose policy sets these fields, whose canary has just been given its first
    step's traffic."""
    world.traffic.canary, world.traffic.stable = GOOD, GOOD
    world.set_policy(**{"poll_seconds": 30, **policy})
    request = {"service": "assistant", "version": NEW_VERSION}
    plan = start.prepare(request, EXECUTION, world.clients)
    start.acquire_lock(plan, world.clients)
    world.register_canary_targets(1)  # the canary's pod, as the load balancer controller registers it
    return plan, canary.shift_traffic(plan, Progress(), world.clients)


def poll(world: RolloutWorld, plan: Plan, progress: Progress) -> Progress:
    """BakeWait then JudgeInterval: the clock moves by the wait the last poll asked for."""
    assert 1 <= progress.wait_seconds <= plan.policy.poll_seconds
    world.clock.advance(progress.wait_seconds)
    world.traffic.publish(canary_weight=plan.policy.steps[progress.step])
    return analysis.judge_interval(plan, progress, world.clients)


def bake(world: RolloutWorld, plan: Plan, progress: Progress) -> tuple[Progress, datetime]:
    """Poll until the step has a verdict; returns it and the moment it was reached."""
    for _ in range(500):
        progress = poll(world, plan, progress)
        if progress.verdict in ("PASS", "FAIL"):
            return progress, world.clock()
    raise AssertionError("the bake never ended")


def interval_start(progress: Progress, index: int) -> datetime:
    started = datetime.fromisoformat(progress.step_started_at or "")
    return started.replace(second=0) + timedelta(minutes=index)


def intervals(world: RolloutWorld, plan: Plan) -> list[dict]:
    return world.clients.ledger.intervals("assistant", plan.started_at, plan.execution)


def test_a_failing_interval_then_recovery_passes_at_the_bake_end(world: RolloutWorld) -> None:
    plan, progress = baking(world, bake_seconds=300)
    world.traffic.change_at(interval_start(progress, 1), "canary", BAD)
    world.traffic.change_at(interval_start(progress, 2), "canary", GOOD)
    ended, at = bake(world, plan, progress)
    assert ended.verdict == "PASS", ended.reasons
    verdicts = [i["judgement"]["verdict"] for i in intervals(world, plan)]
    assert verdicts == ["PASS", "FAIL", "PASS", "PASS", "PASS"]
    # The step passes only once the metric delay after the bake's end has passed, on the whole bake.
    bake_until = datetime.fromisoformat(progress.bake_until or "")
    assert at == bake_until + timedelta(seconds=plan.policy.analysis.metric_delay_seconds)
    ledger = world.clients.ledger
    [judgement] = ledger.judgements(ledger.record_for("assistant", EXECUTION))
    assert judgement.details["window"] == [progress.step_started_at, progress.bake_until]
    assert judgement.details["intervals_judged"] == 5


def test_consecutive_failing_intervals_fail_the_step_within_the_bake(world: RolloutWorld) -> None:
    plan, progress = baking(world, bake_seconds=600)
    world.traffic.change_at(interval_start(progress, 2), "canary", BAD)
    ended, at = bake(world, plan, progress)
    assert ended.verdict == "FAIL"
    assert ended.reasons[0].startswith("2 analysis intervals in a row failed")
    assert "canary 5xx rate 3.00% exceeds 1.00%" in ended.reasons
    # Judged as soon as the second bad interval's figures can have arrived: its end plus the metric delay.
    assert at == interval_start(progress, 4) + timedelta(seconds=120)
    assert [i["failing_intervals"] for i in intervals(world, plan)] == [0, 0, 1, 2]


def test_an_interval_short_of_requests_neither_counts_nor_resets(world: RolloutWorld) -> None:
    plan, progress = baking(world, bake_seconds=600)
    for index, traffic in ((1, BAD), (2, QUIET_BAD), (3, BAD)):
        world.traffic.change_at(interval_start(progress, index), "canary", traffic)
    ended, _ = bake(world, plan, progress)
    assert ended.verdict == "FAIL"
    judged = [(i["judgement"]["verdict"], i["failing_intervals"]) for i in intervals(world, plan)]
    assert judged == [("PASS", 0), ("FAIL", 1), ("NOT_ENOUGH_DATA", 1), ("FAIL", 2)]


def test_a_watched_alarm_fails_the_step_at_once(world: RolloutWorld) -> None:
    cloudwatch = world.clients.cloudwatch
    cloudwatch.put_metric_alarm(
        AlarmName="assistant-5xx",
        MetricName="HTTPCode_Target_5XX_Count",
        Namespace="AWS/ApplicationELB",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    plan, progress = baking(world, bake_seconds=600, analysis={"alarms": ["assistant-5xx"]})
    progress = poll(world, plan, progress)
    assert progress.verdict is None
    assert progress.waiting
    cloudwatch.set_alarm_state(AlarmName="assistant-5xx", StateValue="ALARM", StateReason="test")
    # No verdict on the canary's own figures (the service's alarms cover both tracks): the step stops, FAILED.
    with pytest.raises(WatchedAlarmError, match=r"1 alarm\(s\) in ALARM: assistant-5xx"):
        poll(world, plan, progress)
    saved = world.clients.ledger.record_for("assistant", plan.execution).progress
    assert saved.verdict == "FAIL"
    assert saved.interval == 0  # no interval had fallen due: the alarm did not wait for one


def test_a_window_is_judged_only_once_its_metrics_can_have_arrived(world: RolloutWorld) -> None:
    plan, progress = baking(world, bake_seconds=600)
    first_end = interval_start(progress, 1)
    polls = 0
    while progress.interval == 0:
        progress = poll(world, plan, progress)
        polls += 1
    # Judged at the first poll at or after its end plus the metric delay, which the waits land on exactly.
    assert world.clock() == first_end + timedelta(seconds=120)
    assert polls > 1
    [first] = intervals(world, plan)
    assert first["window"] == [interval_start(progress, 0).isoformat(), first_end.isoformat()]
    assert first["canary"]["requests"] == 1000  # the whole minute had landed (published a minute late)


def test_every_interval_of_a_long_bake_is_kept_outside_the_record(world: RolloutWorld) -> None:
    plan, progress = baking(world, bake_seconds=3600, poll_seconds=60)
    ended, _ = bake(world, plan, progress)
    assert ended.verdict == "PASS"
    assert len(intervals(world, plan)) == 60
    assert world.clients.ledger.intervals("assistant", plan.started_at, plan.execution, last=1)[0]["interval"] == 59
    record = world.clients.ledger.record_for("assistant", EXECUTION)
    assert len(json.dumps(record.to_json())) < 20_000  # the record does not grow with the bake's length


# -- the policy's fields --------------------------------------------------------------------------
def test_interval_overrides_are_checked_like_the_config() -> None:
    with pytest.raises(OverrideError, match="90 must be a multiple of 60 seconds"):
        check_overrides({"analysis": {"interval_seconds": 90}})
    with pytest.raises(OverrideError, match="0 is out of range"):
        check_overrides({"analysis.consecutive_failures": 0})
    assert check_overrides({"analysis": {"interval_seconds": 120, "metric_delay_seconds": 0}}) == {
        "analysis.interval_seconds": 120,
        "analysis.metric_delay_seconds": 0,
    }


def test_the_worst_case_waits_out_the_metric_delay_after_every_step() -> None:
    policy = RolloutPolicy(strategy="linear", linear_step_percent=25).as_contract(ready_timeout_seconds=600)
    without_delay = dataclasses.replace(policy, analysis=dataclasses.replace(policy.analysis, metric_delay_seconds=0))
    assert worst_case_seconds(policy) - worst_case_seconds(without_delay) == 4 * 120  # four steps


def test_after_a_stall_every_interval_is_judged_before_the_whole_bake(world: RolloutWorld) -> None:
    """A poll judges at most MAX_INTERVALS_PER_POLL intervals; the rest come at the next polls, one second
    apart, and the whole bake only after them."""
    plan, progress = baking(world, bake_seconds=1500)
    world.clock.advance(2000)
    world.traffic.publish(canary_weight=10)
    progress = analysis.judge_interval(plan, progress, world.clients)
    assert (progress.interval, progress.verdict, progress.wait_seconds) == (analysis.MAX_INTERVALS_PER_POLL, None, 1)
    ended, _ = bake(world, plan, progress)
    assert ended.verdict == "PASS"
    assert len(intervals(world, plan)) == 25
