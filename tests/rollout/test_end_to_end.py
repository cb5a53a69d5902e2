"""Rollouts end to end: the synthesized state machine runs under moto's Step Functions, each task
dispatched to the real rollout handler, against moto AWS and the Kubernetes API test double.

After every rollout, by any path: weights are stable 100 / canary 0, the canary has 0 replicas,
the lock is free, and the stable pointer names a version that passed.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from rollout.contract.records import AuditKind
from rollout.handler import dispatch
from rollout.steps import start
from tessera_cli.main import main as tessera
from tests.rollout.harness import NEW_VERSION, STABLE_VERSION, TrackTraffic
from tests.rollout.scenarios import DASHBOARD_URL, Rollouts
from tests.rollout.test_cost_evidence_in_judgements import seat_both_tracks


def test_healthy_canary_is_promoted(rollouts: Rollouts) -> None:
    execution = rollouts.start()
    assert execution["status"] == "SUCCEEDED", execution
    rollouts.assert_at_rest(stable=NEW_VERSION)
    assert rollouts.version_state() == "PROMOTED"
    record = rollouts.record()
    assert record.status == "PROMOTED"
    [judgement] = rollouts.world.clients.ledger.judgements(record)
    assert (judgement.step, judgement.extension, judgement.verdict) == (0, 0, "PASS")
    # The whole bake: the minute the step started in and its two minutes, 1000 canary requests each.
    assert judgement.details["canary"]["requests"] == 3000
    assert judgement.details["intervals_judged"] == 2
    intervals = rollouts.world.clients.ledger.intervals("assistant", record.started_at, record.execution)
    assert [(i["step"], i["interval"], i["judgement"]["verdict"]) for i in intervals] == [
        (0, 0, "PASS"),
        (0, 1, "PASS"),
    ]
    assert intervals[0]["canary"]["requests"] == 1000
    assert judgement.details["canary_weight"] == 10
    assert judgement.details["thresholds"]["max_5xx_rate_percent"] == 1.0
    # Capacity followed traffic: 10 % of 2 stable pods rounds up to one canary pod.
    [deploy] = record.entries(AuditKind.DEPLOY_CANARY)
    assert deploy.details["replicas"] == 1
    # The version's own history says what ran, and the image it ran is kept by the registry's lifecycle rule.
    history = [e["kind"] for e in rollouts.world.clients.store.history("assistant", NEW_VERSION)]
    assert history[-2:] == ["deployed-canary", "promoted"]
    tags = rollouts.world.clients.ecr.describe_images(
        repositoryName="tessera/dev/assistant", imageIds=[{"imageDigest": rollouts.world.image_digests[NEW_VERSION]}]
    )["imageDetails"][0]["imageTags"]
    assert f"tessera-live-{NEW_VERSION}" in tags
    assert rollouts.world.deployed_image("stable").endswith(f"@{rollouts.world.image_digests[NEW_VERSION]}")


def test_canary_with_5xx_is_rolled_back_at_the_first_step(rollouts: Rollouts) -> None:
    rollouts.world.traffic.canary = TrackTraffic(requests=1000, errors_5xx=80)
    execution = rollouts.start()
    assert execution["status"] == "FAILED"
    assert execution["error"] == "RolledBack"
    assert "5xx rate" in execution["cause"]
    rollouts.assert_at_rest(stable=STABLE_VERSION)
    assert rollouts.version_state() == "ROLLED_BACK"
    # Two failing intervals in a row rolled it back before the bake's end: no whole-bake judgement.
    record = rollouts.record()
    assert [entry.step for entry in record.entries(AuditKind.INTERVALS_FAILED)] == [0]
    assert not rollouts.world.clients.ledger.judgements(record)
    history = [e["kind"] for e in rollouts.world.clients.store.history("assistant", NEW_VERSION)]
    assert history[-2:] == ["deployed-canary", "rolled-back"]


def test_slow_canary_is_rolled_back(rollouts: Rollouts) -> None:
    rollouts.world.traffic.canary = TrackTraffic(requests=1000, p99_seconds=14.0)
    execution = rollouts.start()
    assert execution["status"] == "FAILED"
    assert "p99" in execution["cause"]
    rollouts.assert_at_rest(stable=STABLE_VERSION)
    assert rollouts.version_state() == "ROLLED_BACK"


def test_canary_without_traffic_never_passes(rollouts: Rollouts) -> None:
    """Sequence 9: a bake short of data after every extension is no verdict on the version: FAILED, and the
    version stays startable."""
    rollouts.world.traffic.silent = True
    execution = rollouts.start({"analysis": {"max_bake_extensions": 2}})
    assert execution["status"] == "FAILED"
    assert execution["error"] == "RolloutFailed"
    assert "not enough data after 2 bake extension(s)" in execution["cause"]
    rollouts.assert_at_rest(stable=STABLE_VERSION)
    ledger, record = rollouts.world.clients.ledger, rollouts.record()
    judgements = ledger.judgements(record)
    assert [j.verdict for j in judgements] == ["NOT_ENOUGH_DATA", "NOT_ENOUGH_DATA", "INCONCLUSIVE"]
    assert [j.extension for j in judgements] == [0, 1, 2]
    assert ledger.judgements(record, last=1) == judgements[-1:]  # one query, newest first
    assert record.status == "FAILED"
    assert rollouts.version_state() == "REGISTERED"


def test_alarm_in_alarm_rolls_back(rollouts: Rollouts) -> None:
    cloudwatch = rollouts.world.clients.cloudwatch
    cloudwatch.put_metric_alarm(
        AlarmName="assistant-ttft",
        MetricName="TimeToFirstToken",
        Namespace="Tessera",
        Statistic="Average",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName="assistant-ttft", StateValue="ALARM", StateReason="test")
    execution = rollouts.start({"analysis": {"alarms": ["assistant-ttft"]}})
    assert execution["status"] == "FAILED"
    assert "assistant-ttft" in execution["cause"]
    rollouts.assert_at_rest(stable=STABLE_VERSION)
    # An alarm is no verdict on the canary's own figures (sequence 9): the version stays startable.
    assert (rollouts.record().status, rollouts.version_state()) == ("FAILED", "REGISTERED")


def test_the_services_own_alarm_rolls_back_even_when_overrides_name_other_alarms(rollouts: Rollouts) -> None:
    """The composite alarm of the service (5xx rate, p99, no healthy targets, pods pending) is watched by default,
    and an override of `analysis.alarms` adds to it rather than dropping it."""
    world = rollouts.world
    world.clients.cloudwatch.set_alarm_state(AlarmName=world.service_alarm, StateValue="ALARM", StateReason="test")
    execution = rollouts.start({"analysis": {"alarms": []}})
    assert execution["status"] == "FAILED"
    assert world.service_alarm in execution["cause"]
    rollouts.assert_at_rest(stable=STABLE_VERSION)
    # The floor the rollout set on stable (KEDA's ScaledObject for the assistant) is back to its own minimum.
    assert world.kube.autoscaler_floor("inference", "assistant-stable") == 1


def test_second_rollout_of_the_same_service_is_refused(rollouts: Rollouts) -> None:
    world = rollouts.world
    first = rollouts.start({"manual_approval": True}, until=lambda _: "await_approval" in world.completed)
    assert first["status"] == "RUNNING"
    second = rollouts.start()
    assert second["status"] == "FAILED"
    assert second["error"] == "RolloutRefused"
    assert f"already being rolled out: version {NEW_VERSION}" in second["cause"]
    assert world.clients.ledger.locks.holder("assistant")["execution"] == first["executionArn"]
    rollouts.sfn.stop_execution(executionArn=first["executionArn"])


def test_every_step_is_safe_to_run_twice(rollouts: Rollouts, monkeypatch: pytest.MonkeyPatch) -> None:
    world = rollouts.world
    original = world.invoke_action

    def twice(event: dict) -> dict:
        original(event)  # a duplicated delivery of the same task
        return original(event)

    monkeypatch.setattr(world, "invoke_action", twice)
    execution = rollouts.start()
    assert execution["status"] == "SUCCEEDED", execution
    rollouts.assert_at_rest(stable=NEW_VERSION)
    ids = [entry.id for entry in rollouts.world.clients.ledger.audit_trail(rollouts.record())]
    assert len(ids) == len(set(ids))
    assert {"step-0-weights", "step-0-judgement-0", "promote-stable"} <= set(ids)


def test_kubernetes_conflict_then_success(rollouts: Rollouts) -> None:
    rollouts.world.kube.fail_next("PUT", 409)
    execution = rollouts.start()
    assert execution["status"] == "SUCCEEDED", execution
    rollouts.assert_at_rest(stable=NEW_VERSION)


def test_throttled_modify_rule_is_retried(rollouts: Rollouts) -> None:
    elbv2 = rollouts.world.clients.elbv2
    real_modify = elbv2.modify_rule
    calls = {"count": 0}

    def throttled(**kwargs: Any) -> dict:
        calls["count"] += 1
        if calls["count"] == 1:
            raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "ModifyRule")
        return real_modify(**kwargs)

    elbv2.modify_rule = throttled
    execution = rollouts.start()
    assert execution["status"] == "SUCCEEDED", execution
    assert rollouts.world.dispatched.count("shift_traffic") == 2  # the throttled attempt, then the retry
    rollouts.assert_at_rest(stable=NEW_VERSION)


def test_abort_mid_way_rolls_back_inside_the_state_machine(
    rollouts: Rollouts, capsys: pytest.CaptureFixture[str]
) -> None:
    world = rollouts.world
    rollouts.prepare_cli()
    world.pause_before("judge_interval")
    running = rollouts.start(until=lambda _: world.paused_at is None and "shift_traffic" in world.completed)
    world.wait_until_paused()
    assert world.weights()[world.routing.canary_target_group] == 10
    assert tessera(["--env", "dev", "rollout", "abort", "assistant", "--no-wait"]) == 0
    world.resume()
    finished = rollouts.wait(running["executionArn"])
    assert finished["status"] == "FAILED"
    assert finished["error"] == "Aborted"
    rollouts.assert_at_rest(stable=STABLE_VERSION)
    assert rollouts.version_state() == "REGISTERED"  # an abort says nothing about the version
    assert rollouts.record().status == "ABORTED"
    assert [n["status"] for n in world.notices()] == ["ABORTED"]
    capsys.readouterr()


def test_rollback_handler_run_twice_gives_the_same_outcome(rollouts: Rollouts) -> None:
    world = rollouts.world
    plan = dispatch(
        {"action": "prepare", "input": {"service": "assistant", "version": NEW_VERSION}, "execution": "e1"},
        world.clients,
    )
    dispatch({"action": "acquire_lock", "plan": plan}, world.clients)
    error = {"Error": "TransientError", "Cause": "Kubernetes API answered 503"}
    results = [
        dispatch({"action": "rollback", "plan": plan, "progress": {}, "error": error}, world.clients) for _ in range(2)
    ]
    assert [r["outcome"] for r in results] == ["FAILED", "FAILED"]
    assert rollouts.version_state() == "REGISTERED"
    assert world.clients.ledger.locks.holder("assistant") is None
    assert len(world.notices()) == 1


@pytest.mark.parametrize(
    ("decision", "status", "stable"),
    [([], "SUCCEEDED", NEW_VERSION), (["--reject", "eval regressed"], "FAILED", STABLE_VERSION)],
)
def test_manual_approval_from_the_cli(
    rollouts: Rollouts, capsys: pytest.CaptureFixture[str], decision: list[str], status: str, stable: str
) -> None:
    world = rollouts.world
    rollouts.prepare_cli()
    waiting = rollouts.start({"manual_approval": True}, until=lambda _: "await_approval" in world.completed)
    assert waiting["status"] == "RUNNING"
    assert tessera(["--env", "dev", "rollout", "approve", "assistant", *decision]) == 0
    finished = rollouts.wait(waiting["executionArn"])
    assert finished["status"] == status
    rollouts.assert_at_rest(stable=stable)
    capsys.readouterr()


def test_cli_start_status_and_history(rollouts: Rollouts, capsys: pytest.CaptureFixture[str]) -> None:
    rollouts.prepare_cli()
    seat_both_tracks(rollouts.world)  # stable on two trn1.2xlarge, the canary on one
    overrides = ["--override", "poll_seconds=5", "--override", "warmup_seconds=90", "--override", "bake_seconds=120"]
    assert tessera(["--json", "--env", "dev", "rollout", "start", "assistant", NEW_VERSION, *overrides]) == 0
    started = json.loads(capsys.readouterr().out)
    assert started["overrides"] == {"poll_seconds": 5, "warmup_seconds": 90, "bake_seconds": 120}
    finished = rollouts.wait(started["execution"])
    assert finished["status"] == "SUCCEEDED"
    assert tessera(["--json", "--env", "dev", "rollout", "status", "assistant", "--watch", "--interval", "0.1"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["execution_status"] == "SUCCEEDED"
    # The bake's last analysis interval, canary and stable side by side.
    figures = {"requests": 1000, "errors_5xx": 0, "connection_errors": 0, "p99_seconds": 0.8, "target": "trainium"}
    last = status["last_interval"]
    assert {key: last[key] for key in ("step", "interval", "verdict", "failing_intervals")} == {
        "step": 0,
        "interval": 1,
        "verdict": "PASS",
        "failing_intervals": 0,
    }
    # Each track's cost per million requests over the minute: its pods' share of trn1.2xlarge's $1.34375/h.
    no_runtime = {"cost_per_million_output_tokens": None}  # a service without runtime metrics
    assert last["canary"] == {**figures, "cost_per_million_requests": 22.395833, **no_runtime}
    assert last["stable"] == {**figures, "cost_per_million_requests": 44.791667, **no_runtime}
    judged = status["last_judgement"]
    assert judged["canary"]["cost_per_million_requests"] < judged["stable"]["cost_per_million_requests"]
    assert "cost" not in judged["canary"]  # lifted out of the recorded cost, not shown twice
    assert tessera(["--env", "dev", "rollout", "status", "assistant"]) == 0
    block = capsys.readouterr().out
    lines = block.splitlines()
    assert lines[0] == f"assistant {NEW_VERSION}: PROMOTED"
    assert lines[1].startswith("  judged:    PASS: stable / canary requests 3000 / 3000, 5xx 0 / 0")
    assert "PASS (0 failing)" in block
    assert "stable / canary requests 1000 / 1000, 5xx 0 / 0, connection errors 0 / 0" in block
    assert "per million requests stable $44.79 (trainium) / canary $22.40 (trainium)" in block
    assert lines[-1] == f"  dashboard: {DASHBOARD_URL}"
    # Before the Observability stack is deployed there is no link, and status still works.
    rollouts.world.clients.ssm.delete_parameter(Name="/tessera/dev/observability/services/assistant/dashboard")
    assert tessera(["--json", "--env", "dev", "rollout", "status", "assistant"]) == 0
    assert json.loads(capsys.readouterr().out)["dashboard"] is None
    assert tessera(["--json", "--env", "dev", "rollout", "history", "assistant"]) == 0
    history = json.loads(capsys.readouterr().out)
    assert history["rollouts"][0]["status"] == "PROMOTED"
    # The whole audit trail, in the order recorded: the record's entries, the step's weights and its judgement.
    trail = [(d["kind"], d.get("verdict")) for d in history["rollouts"][0]["decisions"]]
    assert trail == [
        ("preflight", "PASS"),
        ("deploy-canary", None),
        ("warm-up", "PASS"),
        ("step-weights", None),
        ("judgement", "PASS"),
        ("promote-stable", None),
    ]
    costs = history["rollouts"][0]["cost_per_million_requests"]
    assert costs == {
        "canary": {"target": "trainium", "cost_per_million_requests": judged["canary"]["cost_per_million_requests"]},
        "stable": {"target": "trainium", "cost_per_million_requests": judged["stable"]["cost_per_million_requests"]},
    }
    assert tessera(["--env", "dev", "rollout", "history", "assistant"]) == 0
    assert "(last judgement: cost per million requests stable $" in capsys.readouterr().out


def test_cli_refuses_what_cannot_be_done(rollouts: Rollouts, capsys: pytest.CaptureFixture[str]) -> None:
    world = rollouts.world
    rollouts.prepare_cli()
    assert tessera(["--env", "dev", "rollout", "status", "assistant"]) == 3
    assert tessera(["--env", "dev", "rollout", "approve", "assistant"]) == 3
    assert tessera(["--env", "dev", "rollout", "abort", "assistant"]) == 3
    assert tessera(["--env", "dev", "rollout", "start", "assistant", "v", "--override", "bake"]) == 2
    other = start.prepare({"service": "assistant", "version": NEW_VERSION}, "arn:other", world.clients)
    world.clients.ledger.locks.take(dataclasses.replace(other, version="7"), seen=None)
    assert tessera(["--env", "dev", "rollout", "start", "assistant", NEW_VERSION]) == 1
    assert "already being rolled out: version 7" in capsys.readouterr().err
