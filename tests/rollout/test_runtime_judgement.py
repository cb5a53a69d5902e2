"""Judging an LLM canary on what its users feel (issue 24): whole rollouts under the synthesized state machine, with
moto for AWS and the Prometheus double answering the judge's PromQL from per-track histograms the serving runtime
double generates from the same requests the load balancer counts.

The load balancer's figures are identical on both tracks in every test here: only the runtime's differ.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from rollout.contract.outcomes import Verdict
from rollout.contract.records import AuditEntry
from rollout.errors import StartRefusedError
from rollout.steps import start
from tessera_shared import metrics
from tests.rollout.harness import NEW_VERSION, STABLE_VERSION, RolloutWorld, TrackTraffic
from tests.rollout.scenarios import Rollouts
from tests.rollout.test_continuous_judgement import EXECUTION

INTERVAL, DELAY = 60, 120  # the policy's defaults
STABLE = TrackTraffic(ttft_seconds=0.4, tpot_seconds=0.03)
SLOW_FIRST_TOKEN = TrackTraffic(ttft_seconds=0.4 * 1.3, tpot_seconds=0.03)  # p99 30 % worse, nothing else
FASTER_TOKENS = TrackTraffic(ttft_seconds=0.4, tpot_seconds=0.025)


@pytest.fixture
def llm(rollouts: Rollouts) -> Rollouts:
    rollouts.world.judge_runtime_metrics()
    rollouts.world.traffic.stable = STABLE
    rollouts.world.traffic.canary = STABLE
    return rollouts


def _intervals(rollouts: Rollouts) -> list[dict]:
    record = rollouts.record()
    return rollouts.world.clients.ledger.intervals("assistant", record.started_at, record.execution)


def _judgements(rollouts: Rollouts) -> list[AuditEntry]:
    """The rollout's whole-bake judgements, oldest first."""
    return rollouts.world.clients.ledger.judgements(rollouts.record())


def test_a_canary_with_a_30_percent_worse_first_token_p99_rolls_back_within_two_intervals_and_the_delay(
    llm: Rollouts, record_property: pytest.RecordProperty
) -> None:
    world = llm.world
    original = world.invoke_action
    moments: dict[str, datetime] = {}

    def invoke(event: dict) -> dict:
        result = original(event)
        if event.get("action") == "shift_traffic" and "regression" not in moments:
            moments["regression"] = world.clock().replace(second=0) + timedelta(seconds=2 * INTERVAL)
            world.traffic.change_at(moments["regression"], "canary", SLOW_FIRST_TOKEN)
        at_rest = world.weights() == {world.routing.stable_target_group: 100, world.routing.canary_target_group: 0}
        if "regression" in moments and at_rest and "at_rest" not in moments:
            moments["at_rest"] = world.clock()
        return result

    world.invoke_action = invoke  # type: ignore[method-assign]
    ended = llm.settle(llm.start({"bake_seconds": 900}))

    assert ended["error"] == "RolledBack", ended
    assert "2 analysis intervals in a row failed" in ended["cause"]
    assert "p99 time to first token" in ended["cause"], ended["cause"]
    llm.assert_at_rest(stable=STABLE_VERSION)
    intervals = ((moments["at_rest"] - moments["regression"]).total_seconds() - DELAY) / INTERVAL
    record_property("ttft_rollback_intervals_after_metric_delay", round(intervals, 2))
    assert intervals <= 2
    # The load balancer saw nothing: its checks passed in the failing intervals, the runtime's p99 check did not.
    failing = [figures for figures in _intervals(llm) if figures["judgement"]["verdict"] == Verdict.FAIL]
    assert len(failing) == 2
    for figures in failing:
        checks = {check["name"]: check for check in figures["judgement"]["checks"]}
        assert checks["5xx_rate"]["passed"]
        assert checks["p99_vs_stable"]["passed"]
        assert checks["ttft_p99_seconds_vs_stable"]["passed"] is False
        assert figures["canary"]["runtime"]["ttft_p99_seconds"] > 1.2 * figures["stable"]["runtime"]["ttft_p99_seconds"]
        assert figures["canary"]["p99_seconds"] == figures["stable"]["p99_seconds"]


def test_a_canary_with_better_per_token_latency_passes_is_promoted_and_its_figures_published(llm: Rollouts) -> None:
    llm.world.traffic.canary = FASTER_TOKENS
    ended = llm.settle(llm.start())

    assert ended["status"] == "SUCCEEDED", ended
    llm.assert_at_rest(stable=NEW_VERSION)
    judged = _judgements(llm)
    assert judged
    assert all(entry.verdict == Verdict.PASS for entry in judged)
    checks = {check["name"]: check for check in judged[-1].details["judgement"]["checks"]}
    assert checks["tpot_p99_seconds_vs_stable"]["passed"] is True
    canary, stable = judged[-1].details["canary"]["runtime"], judged[-1].details["stable"]["runtime"]
    assert canary["tpot_p99_seconds"] < stable["tpot_p99_seconds"]
    assert canary["samples"] >= llm.world.settings.policy.analysis.min_runtime_samples
    # Each interval's runtime figures went to CloudWatch for the service's dashboard, per track.
    published = llm.world.clients.cloudwatch.list_metrics(Namespace=metrics.JUDGED_NAMESPACE)["Metrics"]
    found = {(m["MetricName"], {d["Name"]: d["Value"] for d in m["Dimensions"]}["Track"]) for m in published}
    for judged_metric in (metrics.JUDGED_TTFT_P99, metrics.JUDGED_TPOT_P99, metrics.JUDGED_E2E_P99):
        assert {(judged_metric.name, "canary"), (judged_metric.name, "stable")} <= found
    # Every query was signed for the workspace's region and the aps service, with the role's session token.
    assert llm.world.prometheus.requests
    for request in llm.world.prometheus.requests:
        assert "/us-east-1/aps/aws4_request" in request.get_header("Authorization")
        assert request.get_header("X-amz-security-token") == "double-token"
        assert request.full_url == f"{llm.world.prometheus.endpoint}api/v1/query"


def test_too_few_runtime_samples_is_not_enough_data_never_a_pass(llm: Rollouts) -> None:
    """The load balancer counts 1,000 canary requests a minute, but the runtime measured only 5 a minute (its
    endpoint mostly unscraped): fewer than an interval's 10 and a bake's 100 figures need."""
    llm.world.traffic.canary = TrackTraffic(runtime_requests=5)
    ended = llm.settle(llm.start({"analysis": {"max_bake_extensions": 1}}))

    assert ended["error"] == "RolloutFailed", ended
    assert ended["cause"].startswith("CanaryInconclusiveError: the canary's runtime measured"), ended["cause"]
    assert llm.version_state() == "REGISTERED"  # no verdict on the version: it may roll out again
    llm.assert_at_rest(stable=STABLE_VERSION)
    intervals = _intervals(llm)
    assert intervals
    assert all(figures["judgement"]["verdict"] == Verdict.NOT_ENOUGH_DATA for figures in intervals)
    judged = _judgements(llm)
    assert [entry.verdict for entry in judged] == [Verdict.NOT_ENOUGH_DATA, Verdict.INCONCLUSIVE]
    assert any("the canary's runtime measured" in reason for reason in judged[0].reasons), judged[0].reasons


@pytest.mark.long_scenario  # a whole rollout (2-3 s) in `make faults`; make test explores workspace faults
def test_a_service_without_a_metrics_endpoint_keeps_the_load_balancer_judgement(rollouts: Rollouts) -> None:
    rollouts.world.judge_runtime_metrics(declared=False)
    rollouts.world.traffic.canary = SLOW_FIRST_TOKEN  # invisible without the runtime's figures
    ended = rollouts.settle(rollouts.start())

    assert ended["status"] == "SUCCEEDED", ended
    assert rollouts.world.prometheus.requests == []
    judged = _judgements(rollouts)[-1].details
    assert "runtime" not in judged["canary"]
    assert not any(
        check["name"].startswith(("ttft", "tpot", "e2e", "runtime")) for check in judged["judgement"]["checks"]
    )


def test_settings_whose_query_url_is_not_a_workspaces_are_refused_before_anything_is_signed(
    world: RolloutWorld,
) -> None:
    world.judge_runtime_metrics("https://collector.example/workspaces/ws-1/api/v1/query")
    with pytest.raises(
        StartRefusedError, match=r"settings\.runtime_metrics\.query_url: expected https://aps-workspaces"
    ):
        start.prepare({"service": "assistant", "version": NEW_VERSION}, EXECUTION, world.clients)
    assert world.prometheus.requests == []


@pytest.mark.long_scenario  # a whole rollout (2-3 s) in `make faults`; make test explores workspace faults
def test_a_throttled_or_unavailable_workspace_is_retried_and_the_rollout_goes_on(llm: Rollouts) -> None:
    llm.world.prometheus.faults = [429, 503]  # the first two queries of the first interval's judgement
    ended = llm.settle(llm.start())

    assert llm.world.prometheus.struck == [429, 503]  # both faults fired
    assert ended["status"] == "SUCCEEDED", ended
    llm.assert_invariants(ended)
    llm.assert_at_rest(stable=NEW_VERSION)


@pytest.mark.long_scenario  # a whole rollout (2-3 s) in `make faults`; make test explores workspace faults
def test_a_workspace_that_denies_the_query_rolls_back_with_the_reason_and_notifies(llm: Rollouts) -> None:
    """A role without aps:QueryMetrics (or a workspace gone): the canary cannot be judged, so it must not stay."""
    llm.world.prometheus.faults = [403] * 1000
    ended = llm.settle(llm.start())

    assert llm.world.prometheus.struck, "the denial never fired"
    assert ended["status"] == "FAILED", ended
    record = llm.assert_invariants(ended)
    assert record is not None
    assert "Prometheus refused" in (record.reason or ""), record.reason
    llm.assert_at_rest(stable=STABLE_VERSION)
    assert llm.version_state() == "REGISTERED"  # no verdict on the version's figures
