"""Cost per request as evidence (issue 15): at every judgement within a bake (each interval's record and the
whole bake's audit decision) the JudgeInterval step records each track's cost per million requests beside
its latency and errors, measured from the pods and nodes the Kubernetes double serves; the policy's
`max_cost_ratio_vs_stable` judges it; a cluster that cannot be read leaves a reason, not a failed step."""

from __future__ import annotations

import pytest

from rollout.errors import CanaryInconclusiveError
from rollout.policy import OverrideError, check_overrides
from stacks.config.errors import ConfigError
from stacks.config.rollout import AnalysisSpec
from tests.rollout.chip import TRN1_2XLARGE, run_track_pods
from tests.rollout.harness import STABLE_REPLICAS, RolloutWorld, TrackTraffic
from tests.rollout.test_continuous_judgement import EXECUTION, bake, baking, intervals

NEURONCORES = {"aws.amazon.com/neuroncore": "2"}  # the dev assistant's pods: one trn1.2xlarge each
TRN1_HOURLY = 1.34375  # us-east-1 on-demand, from the vendored table


def seat_both_tracks(world: RolloutWorld) -> None:
    run_track_pods(
        world,
        "stable",
        instance_type="trn1.2xlarge",
        allocatable=TRN1_2XLARGE,
        pods=STABLE_REPLICAS,
        accelerators=NEURONCORES,
    )
    run_track_pods(
        world, "canary", instance_type="trn1.2xlarge", allocatable=TRN1_2XLARGE, pods=1, accelerators=NEURONCORES
    )


def judgement_decision(world: RolloutWorld) -> dict:
    """The evidence of the rollout's one whole-bake judgement."""
    ledger = world.clients.ledger
    [judgement] = ledger.judgements(ledger.record_for("assistant", EXECUTION))
    return judgement.details


def per_million(hourly: float, seconds: float, requests: int) -> float:
    return round(hourly * seconds / 3600 / requests * 1e6, 6)


def test_every_judgement_records_each_tracks_cost_per_million_requests(world: RolloutWorld) -> None:
    seat_both_tracks(world)
    plan, progress = baking(world, bake_seconds=180)
    ended, _ = bake(world, plan, progress)
    assert ended.verdict == "PASS", ended.reasons
    records = intervals(world, plan)
    assert len(records) == 3
    for record in records:  # 1000 requests a minute on each track (the traffic double's default)
        canary, stable = record["canary"], record["stable"]
        assert (canary["target"], stable["target"]) == ("trainium", "trainium")
        assert canary["cost"]["cost_per_million_requests"] == per_million(TRN1_HOURLY, 60, 1000)
        assert stable["cost"]["cost_per_million_requests"] == per_million(2 * TRN1_HOURLY, 60, 1000)
        assert (canary["cost"]["pods"], stable["cost"]["pods"]) == (1, STABLE_REPLICAS)
        assert canary["cost"]["requests"] == canary["requests"] == 1000
    # The whole bake: three minutes from a step started within a minute, so four minutes of requests are counted.
    decision = judgement_decision(world)
    assert decision["canary"]["cost"]["cost_per_million_requests"] == per_million(TRN1_HOURLY, 240, 4000)
    assert decision["stable"]["cost"]["cost_per_million_requests"] == per_million(2 * TRN1_HOURLY, 240, 4000)
    assert decision["canary"]["target"] == "trainium"
    assert decision["canary"]["p99_seconds"] is not None  # beside latency and errors, not instead of them


def test_a_canary_dearer_per_request_than_the_policy_allows_fails_the_step(world: RolloutWorld) -> None:
    """Same chip, same pod price, but the canary serves 300 requests a minute to stable's 500 per pod:
    $74.65 against $44.79 per million, over the 1.5 x ratio."""
    seat_both_tracks(world)
    plan, progress = baking(world, bake_seconds=300, analysis={"max_cost_ratio_vs_stable": 1.5})
    world.traffic.canary = TrackTraffic(requests=300)
    ended, _ = bake(world, plan, progress)
    assert ended.verdict == "FAIL"
    assert ended.reasons[0].startswith("2 analysis intervals in a row failed")
    assert "canary cost $74.65 per million requests exceeds 1.5 x stable $44.79 = $67.19" in ended.reasons


def test_with_the_rule_set_a_canary_without_cost_data_never_passes(world: RolloutWorld) -> None:
    """No pods to price (here: none scheduled): every interval lacks data, the bake extends, then ends
    inconclusive (no verdict on the version)."""
    plan, progress = baking(world, bake_seconds=120, analysis={"max_cost_ratio_vs_stable": 2})
    with pytest.raises(CanaryInconclusiveError, match="still not enough data after 2 bake extension"):
        bake(world, plan, progress)
    ended = world.clients.ledger.record_for("assistant", plan.execution).progress
    assert ended.verdict == "INCONCLUSIVE"
    assert {r["judgement"]["verdict"] for r in intervals(world, plan)} == {"NOT_ENOUGH_DATA"}
    assert "canary has no cost per million requests in the window" in ended.reasons


def test_a_cluster_that_cannot_be_read_records_the_reason_and_the_judgement_stands(world: RolloutWorld) -> None:
    seat_both_tracks(world)
    plan, progress = baking(world, bake_seconds=120)
    world.kube.fail_next("GET", 403, times=2, message='pods is forbidden: User "tessera-rollout" cannot list pods')
    ended, _ = bake(world, plan, progress)
    assert ended.verdict == "PASS", ended.reasons
    first, second = intervals(world, plan)
    assert first["judgement"]["verdict"] == "PASS"
    for track in ("canary", "stable"):
        cost = first[track]["cost"]
        assert cost.get("cost_per_million_requests") is None  # the ledger stores no nulls
        assert cost["reason"].startswith("could not read the cluster:")
        assert "403" in cost["reason"] or "forbidden" in cost["reason"]
    assert second["canary"]["cost"]["cost_per_million_requests"] == per_million(TRN1_HOURLY, 60, 1000)


def test_the_ratio_is_checked_in_overrides_and_config() -> None:
    assert check_overrides({"analysis": {"max_cost_ratio_vs_stable": 0.8}}) == {
        "analysis.max_cost_ratio_vs_stable": 0.8
    }
    with pytest.raises(OverrideError, match=r"analysis\.max_cost_ratio_vs_stable: 0 is out of range"):
        check_overrides({"analysis.max_cost_ratio_vs_stable": 0})
    assert AnalysisSpec().max_cost_ratio_vs_stable is None
    with pytest.raises((ConfigError, ValueError), match="max_cost_ratio_vs_stable"):
        AnalysisSpec(max_cost_ratio_vs_stable=-1)
