"""The rollout-safety cases found by review, each as an end-to-end rollout that ended in a broken state
before the fix: the synthesized state machine under moto, the real handlers, the Kubernetes API double.
Cases 6, 9 and 10 are also shown step by step in test_steps.py and test_judge.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tessera_cli.main import main as tessera
from tests.rollout.harness import NAMESPACE, NEW_VERSION, STABLE_VERSION, LambdaTimeoutDouble, TrackTraffic
from tests.rollout.scenarios import Rollouts


def test_case_1_a_failure_after_promotion_started_restores_stable(rollouts: Rollouts) -> None:
    """Stable's rollout to the new version never becomes ready: Rollback puts stable back on the old
    version, and the version stays startable (an infrastructure failure, not a verdict)."""
    world = rollouts.world
    world.pause_before("promote_stable")
    running = rollouts.begin()
    world.wait_until_paused()
    world.kube.set_ready_after_reads(NAMESPACE, "assistant-stable", 10**6)
    world.resume()
    ended = rollouts.settle(rollouts.wait(running["executionArn"]))
    record = rollouts.assert_invariants(ended)
    assert record.status == "FAILED"
    assert "assistant-stable not ready" in record.reason
    assert world.deployed_version("stable") == STABLE_VERSION
    assert rollouts.version_state() == "REGISTERED"


def test_case_2_a_rollback_that_cannot_finish_is_handed_to_an_operator(rollouts: Rollouts) -> None:
    """The canary fails its judgement and then the Kubernetes API forbids every write: traffic is back on
    stable, the canary cannot be scaled down, and the rollout says so instead of failing silently."""
    world = rollouts.world
    world.traffic.canary = TrackTraffic(requests=1000, errors_5xx=80)
    world.pause_before("rollback")
    running = rollouts.begin()
    world.wait_until_paused()
    world.kube.fail_next("PUT", 403, times=1000)
    world.resume()
    ended = rollouts.settle(rollouts.wait(running["executionArn"]))
    assert ended["error"] == "NeedsOperator"
    record = rollouts.world.clients.ledger.record_for("assistant", running["executionArn"])
    assert record.status == "NEEDS_OPERATOR"
    assert "canary: RolloutError: Kubernetes API forbids update" in record.left_to_undo
    lock = world.clients.ledger.locks.holder("assistant")
    assert lock["operator"] is True
    assert world.weights()[world.routing.canary_target_group] == 0  # traffic went back first
    [notice] = [n for n in world.notices() if n["status"] != "APPROVAL_NEEDED"]
    assert notice["status"] == "NEEDS_OPERATOR"
    assert "left to undo" in notice["detail"]
    # The operator cleans up by hand, then frees the service; a new rollout can start.
    world.kube.clear_faults()
    world.kube.update(NAMESPACE, "assistant-canary", lambda d: d["spec"].__setitem__("replicas", 0))
    world.clients.ledger.locks.force_unlock("assistant")
    assert world.clients.ledger.locks.holder("assistant") is None


def test_case_2_a_lambda_timeout_is_retried_not_fatal(rollouts: Rollouts) -> None:
    world = rollouts.world
    world.faults["shift_traffic"] = [LambdaTimeoutDouble("Task timed out after 120.00 seconds")]
    ended = rollouts.settle(rollouts.start())
    assert ended["status"] == "SUCCEEDED", ended
    assert world.dispatched.count("shift_traffic") == 2
    rollouts.assert_invariants(ended)


def test_case_3_a_live_rollout_keeps_its_lock_past_the_old_two_day_lifetime(rollouts: Rollouts) -> None:
    world = rollouts.world
    world.pause_before("judge_interval")
    first = rollouts.begin()
    world.wait_until_paused()
    world.clock.advance(3 * 86400)  # the old lock lived 2 days; TTL could then delete it
    second = rollouts.start()
    assert second["status"] == "FAILED"
    assert second["error"] == "RolloutRefused"
    assert world.weights()[world.routing.canary_target_group] == 10  # the first rollout's traffic untouched
    world.resume()
    assert rollouts.wait(first["executionArn"])["status"] == "SUCCEEDED"


def test_case_3_an_execution_that_timed_out_is_cleaned_up_by_the_safety_net(rollouts: Rollouts) -> None:
    """moto cannot time an execution out: stop it mid-bake and deliver the TIMED_OUT event it would send."""
    world = rollouts.world
    world.pause_before("judge_interval")
    running = rollouts.begin()
    world.wait_until_paused()
    rollouts.sfn.stop_execution(executionArn=running["executionArn"])
    world.resume()
    stopped = rollouts.sfn.describe_execution(executionArn=running["executionArn"])
    rollouts.settle({**stopped, "status": "TIMED_OUT"})
    record = world.clients.ledger.record_for("assistant", running["executionArn"])
    assert record.status == "TIMED_OUT"
    rollouts.assert_at_rest(stable=STABLE_VERSION)
    assert [n["status"] for n in world.notices()] == ["TIMED_OUT"]


@pytest.mark.parametrize("bake", [-5, "600", 1.5])
def test_case_4_an_invalid_override_starts_nothing(rollouts: Rollouts, bake: object) -> None:
    ended = rollouts.start({"bake_seconds": bake})
    assert ended["status"] == "FAILED"
    assert ended["error"] == "RolloutNotStarted"
    assert "bake_seconds" in ended["cause"]
    assert rollouts.world.clients.ledger.locks.holder("assistant") is None
    assert rollouts.world.dispatched == ["prepare"]
    rollouts.assert_invariants(rollouts.settle(ended))


def test_case_4_the_cli_refuses_an_invalid_override_before_any_aws_call(
    rollouts: Rollouts, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rollouts.prepare_cli()
    import boto3

    def no_aws(*_: Any, **__: Any) -> Any:
        raise AssertionError("an AWS client was made")

    monkeypatch.setattr(boto3.session.Session, "client", no_aws)
    for override in ("bake_seconds=-5", 'bake_seconds="600"', "bake_seconds=1.5", "bake=3", "steps=[50,10]"):
        assert tessera(["rollout", "start", "assistant", NEW_VERSION, "--override", override]) == 2, override
    assert "bake_seconds: -5 is out of range" in capsys.readouterr().err


def test_case_4_the_cli_refuses_unknown_services_and_versions_that_cannot_start(
    rollouts: Rollouts, capsys: pytest.CaptureFixture[str]
) -> None:
    rollouts.prepare_cli()
    world = rollouts.world
    assert tessera(["rollout", "start", "painter", NEW_VERSION]) == 3
    assert "is not in environment dev" in capsys.readouterr().err
    assert tessera(["rollout", "start", "assistant", "2099-01-01"]) == 3
    world.clients.ledger.set_version_state("assistant", NEW_VERSION, "REJECTED")
    assert tessera(["rollout", "start", "assistant", NEW_VERSION]) == 1
    assert "is REJECTED" in capsys.readouterr().err
    assert rollouts.sfn.list_executions(stateMachineArn=rollouts.machine)["executions"] == []


def test_case_5_a_step_in_flight_when_abort_arrives_does_not_land(
    rollouts: Rollouts, capsys: pytest.CaptureFixture[str]
) -> None:
    """ShiftTraffic is running when the operator aborts: it must not leave traffic on a canary that the
    rollback scales to zero."""
    world = rollouts.world
    rollouts.prepare_cli()
    world.pause_before("shift_traffic")
    running = rollouts.begin()
    world.wait_until_paused()
    assert tessera(["rollout", "abort", "assistant", "--no-wait", "--reason", "on-call"]) == 0
    world.resume()
    ended = rollouts.settle(rollouts.wait(running["executionArn"]))
    record = rollouts.assert_invariants(ended)
    assert record.status == "ABORTED"
    assert "on-call" in record.reason
    capsys.readouterr()


def test_case_6_approval_works_after_the_approval_task_was_retried(
    rollouts: Rollouts, capsys: pytest.CaptureFixture[str]
) -> None:
    world = rollouts.world
    rollouts.prepare_cli()
    world.faults["await_approval"] = [LambdaTimeoutDouble("timed out")]  # first attempt lost, token dead
    waiting = rollouts.start({"manual_approval": True}, until=lambda _: "await_approval" in world.completed)
    assert tessera(["rollout", "approve", "assistant"]) == 0
    ended = rollouts.wait(waiting["executionArn"])
    assert ended["status"] == "SUCCEEDED", ended
    rollouts.assert_invariants(ended)
    capsys.readouterr()


def test_case_7_a_failed_announcement_never_changes_a_promotion(rollouts: Rollouts, monkeypatch: Any) -> None:
    sns = rollouts.world.clients.sns
    real_publish = sns.publish

    def publish(**kwargs: Any) -> dict:
        if "PROMOTED" in kwargs.get("Subject", ""):
            raise ClientError({"Error": {"Code": "InternalError", "Message": "SNS is down"}}, "Publish")
        return real_publish(**kwargs)

    monkeypatch.setattr(sns, "publish", publish)
    ended = rollouts.start()
    assert ended["status"] == "SUCCEEDED", ended
    rollouts.assert_at_rest(stable=NEW_VERSION)
    assert rollouts.record().status == "PROMOTED"
    assert rollouts.version_state() == "PROMOTED"


def test_case_8_an_infrastructure_failure_leaves_the_version_startable(rollouts: Rollouts) -> None:
    """The Kubernetes API answers 503 until the retries run out: the record says FAILED with the cause,
    and the same version rolls out once the API is back."""
    world = rollouts.world
    world.kube.set_ready_after_reads(NAMESPACE, "assistant-canary", 1)
    world.pause_before("check_canary_ready")
    running = rollouts.begin()
    world.wait_until_paused()
    world.kube.fail_next("GET", 503, times=7)  # the first try and all six retries
    world.resume()
    ended = rollouts.settle(rollouts.wait(running["executionArn"]))
    record = rollouts.assert_invariants(ended)
    assert record.status == "FAILED"
    assert "503" in record.reason
    assert rollouts.version_state() == "REGISTERED"
    again = rollouts.start()
    assert again["status"] == "SUCCEEDED", again
    rollouts.assert_invariants(again)


def test_case_9_extra_totals_are_compared_per_request(rollouts: Rollouts) -> None:
    """An identical canary at 10 % of the traffic has 10 % of stable's total: as a total it would fail a
    higher-is-better rule, per request it passes."""
    world = rollouts.world
    world.traffic.extra = {"TokensGenerated": {"canary": 100.0, "stable": 900.0}}
    world.traffic.canary = TrackTraffic(requests=100)
    world.traffic.stable = TrackTraffic(requests=900)
    metric = {
        "name": "tokens",
        "namespace": "Tessera",
        "metric_name": "TokensGenerated",
        "statistic": "Sum",
        "dimensions": {"Track": "{track}"},
        "threshold": 1.0,
        "direction": "higher_is_better",
        "max_ratio_vs_stable": 1.2,
    }
    plan = json.loads(
        world.clients.ssm.get_parameter(Name="/tessera/dev/rollout/services/assistant")["Parameter"]["Value"]
    )
    plan["policy"]["analysis"]["extra_metrics"] = [metric]
    plan["policy"]["analysis"]["min_requests"] = 50
    world.clients.ssm.put_parameter(
        Name="/tessera/dev/rollout/services/assistant", Value=json.dumps(plan), Type="String", Overwrite=True
    )
    ended = rollouts.start()
    assert ended["status"] == "SUCCEEDED", ended
