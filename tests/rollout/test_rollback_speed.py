"""P6, rollback speed: a regression injected at a known moment of a bake (from then on the metric double
returns failing figures for the canary), a whole rollout under the synthesized state machine, and the
time from the regression until traffic is back at stable 100 / canary 0, in analysis intervals.

Target: at most 2 intervals plus the metric delay. The figure is printed (`pytest -s`) for the report:

    .venv/bin/python -m pytest -q -s tests/rollout/test_rollback_speed.py
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.rollout.harness import STABLE_VERSION, TrackTraffic
from tests.rollout.scenarios import Rollouts

BAD = TrackTraffic(requests=1000, errors_5xx=80)
INTERVAL, DELAY = 60, 120  # the policy's defaults


@pytest.mark.parametrize("offset", [0, 30], ids=["at-an-interval-start", "mid-interval"])
def test_p6_a_regression_mid_bake_is_rolled_back_within_two_intervals_and_the_metric_delay(
    rollouts: Rollouts, offset: int, record_property: pytest.RecordProperty
) -> None:
    world = rollouts.world
    original = world.invoke_action
    moments: dict[str, datetime] = {}

    def invoke(event: dict) -> dict:
        result = original(event)
        if event.get("action") == "shift_traffic" and "regression" not in moments:
            # Interval 2 of the first step's bake (intervals count whole minutes from the minute the step began in).
            moments["regression"] = world.clock().replace(second=0) + timedelta(seconds=2 * INTERVAL + offset)
            world.traffic.change_at(moments["regression"], "canary", BAD)
        at_rest = world.weights() == {world.routing.stable_target_group: 100, world.routing.canary_target_group: 0}
        if "regression" in moments and at_rest and "at_rest" not in moments:
            moments["at_rest"] = world.clock()
        return result

    world.invoke_action = invoke  # type: ignore[method-assign]
    ended = rollouts.settle(rollouts.start({"bake_seconds": 900}))

    assert ended["error"] == "RolledBack", ended
    assert "2 analysis intervals in a row failed" in ended["cause"]
    rollouts.assert_at_rest(stable=STABLE_VERSION)
    seconds = (moments["at_rest"] - moments["regression"]).total_seconds()
    intervals = (seconds - DELAY) / INTERVAL
    print(
        f"\nP6 ({offset} s into an interval): back at stable 100 / canary 0 after {seconds:.0f} s = "
        f"{intervals:.2f} analysis intervals of {INTERVAL} s + the {DELAY} s metric delay"
    )
    record_property("p6_intervals_after_metric_delay", round(intervals, 2))
    assert intervals <= 2
