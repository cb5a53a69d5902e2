"""Issue 20's sequences of overlapping actors, each played exactly (tests/rollout/actors.py): a step that lands after
its execution was stopped, a second start, a forced unlock, a deploy during promotion, an abort racing the
approval, an operator's hold outliving the lease, announcements that fail, a deploy that changes the floor,
infrastructure faults, a hand-over after a failed verdict, and crashes between writes. Each ends in a state
every invariant allows (`assert_settled`)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from rollout import track_owner
from rollout.errors import AbortRequestedError, LockLostError, RolloutError, RolloutInProgressError
from tessera_shared.constants import QUIESCENCE_SECONDS, ROLLOUT_FUNCTION_TIMEOUT_SECONDS
from tests.rollout.actors import ExecutionDouble, second_passes
from tests.rollout.harness import NAMESPACE, NEW_VERSION, STABLE_VERSION, RolloutWorld
from tests.rollout.test_track_owner import deploy_tracks, first_deploy, rendered

SERVICE = "assistant"


def assert_settled(world: RolloutWorld, execution: ExecutionDouble, outcome: str, *, version_state: str) -> None:
    """The end every path must reach: traffic on stable, the canary at 0, stable on the pointer's version, the lock
    free, the record final with the outcome, one announcement of it, and the version's state."""
    ledger = world.clients.ledger
    assert world.weights() == {world.routing.stable_target_group: 100, world.routing.canary_target_group: 0}
    assert world.canary_replicas() == 0
    assert world.deployed_version("stable") == ledger.pointer(SERVICE)["stable"]
    assert ledger.locks.holder(SERVICE) is None
    record = ledger.record_for(SERVICE, execution.arn)
    assert record.status == outcome, record
    notices = [
        n["status"] for n in world.notices() if n["execution"] == execution.arn and n["status"] != "APPROVAL_NEEDED"
    ]
    assert notices == [outcome]
    assert ledger.version(SERVICE, execution.version)["state"] == version_state


# -- 1: a step that lands after its execution was stopped -----------------------------------------------
def test_1a_a_late_promotion_is_undone_and_the_stop_settles(world: RolloutWorld) -> None:
    execution = ExecutionDouble(world, "e1").start()
    execution.run_until("promote_stable")
    stopped = execution.stop()
    with execution.late():  # PromoteStable passed its lock check before the stop
        world.invoke_action(stopped)  # the safety net's first pass: lock revoked, service at rest
        with pytest.raises(LockLostError, match="returned to rest"):
            execution.run("promote_stable")  # its write lands afterwards, finds the lock revoked, undoes itself
    assert world.deployed_version("stable") == STABLE_VERSION  # undone at once, not only by the second pass
    second_passes(world)
    assert_settled(world, execution, "ABORTED", version_state="REGISTERED")


def test_1b_a_late_traffic_shift_is_undone(world: RolloutWorld) -> None:
    execution = ExecutionDouble(world, "e1").start()
    execution.run_until("shift_traffic")
    stopped = execution.stop()
    with execution.late():
        world.invoke_action(stopped)
        with pytest.raises(LockLostError):
            execution.run("shift_traffic")
    assert world.weights()[world.routing.canary_target_group] == 0  # no users sent to a canary with no pods
    second_passes(world)
    assert_settled(world, execution, "ABORTED", version_state="REGISTERED")


# -- 2: a second start before the stopped rollout's safety net ran --------------------------------------
def test_2_a_start_waits_for_quiescence_then_cleans_up_after_the_stopped_rollout(world: RolloutWorld) -> None:
    first = ExecutionDouble(world, "e1").start()
    first.run_until("check_stable_ready")  # stable already runs the new version
    stopped = first.stop()
    second = ExecutionDouble(world, "e2").start()
    with pytest.raises(RolloutInProgressError, match="may still land until"):
        second.run("acquire_lock")
    world.clock.advance(QUIESCENCE_SECONDS)
    second.run("acquire_lock")  # cleans up after e1 from its record, then takes over
    assert world.deployed_version("stable") == STABLE_VERSION
    assert world.clients.ledger.record_for(SERVICE, first.arn).status == "FAILED"
    second.run("preflight")  # the service is at rest: the new rollout goes on
    world.invoke_action(stopped)  # e1's safety net arrives late: only announces, once
    assert [n["status"] for n in world.notices() if n["execution"] == first.arn] == ["FAILED"]
    assert world.clients.ledger.locks.holder(SERVICE)["execution"] == second.arn


# -- 3: a forced unlock while the holder runs --------------------------------------------------------------
def test_3_a_rollout_whose_lock_was_freed_takes_it_back_and_cleans_up(world: RolloutWorld) -> None:
    execution = ExecutionDouble(world, "e1").start()
    execution.run_until("judge_interval")  # 10 % on the canary, one canary pod, floor raised
    world.clients.ledger.locks.force_unlock(SERVICE)  # an older CLI, or a person with table access
    with pytest.raises(LockLostError):
        execution.run("judge_interval")
    result = execution.rollback("LockLostError", "the lock was freed")
    assert result["outcome"] == "FAILED"
    assert world.kube.autoscaler_floor(NAMESPACE, "assistant-stable") == 1  # the floor is back too
    assert_settled(world, execution, "FAILED", version_state="REGISTERED")


# -- 4: a deploy overlapping the promotion ---------------------------------------------------------------
def test_4_a_deploy_during_promotion_merges_with_what_it_overwrites(world: RolloutWorld, monkeypatch: Any) -> None:
    first_deploy(world)
    execution = ExecutionDouble(world, "e1").start()
    execution.run_until("promote_stable")
    original = track_owner.merged
    calls = {"n": 0}

    def merged_while_promotion_lands(rendered_obj: dict, live: dict | None, **kwargs: Any) -> dict | None:
        if rendered_obj["metadata"]["name"] == "assistant-stable" and rendered_obj["kind"] == "Deployment":
            calls["n"] += 1
            if calls["n"] == 1:  # PromoteStable writes between the deploy's read and its write
                execution.run("promote_stable")
        return original(rendered_obj, live, **kwargs)

    monkeypatch.setattr(track_owner, "merged", merged_while_promotion_lands)
    deploy_tracks(world, rendered(world.config, env={"LOG_LEVEL": "debug"}), "Update")  # a change it must write
    assert calls["n"] >= 2  # the conflict made it merge again, with the promoted object
    assert world.deployed_version("stable") == NEW_VERSION
    execution.run("check_stable_ready")
    execution.run("finalize")
    assert_settled(world, execution, "PROMOTED", version_state="PROMOTED")


def test_4_finalize_refuses_to_commit_what_stable_does_not_run(world: RolloutWorld) -> None:
    execution = ExecutionDouble(world, "e1").start()
    execution.run_until("finalize")
    image = world.deployed_image("stable")
    world.kube.update(NAMESPACE, "assistant-stable", _runs_version(STABLE_VERSION, image))  # a revert behind its back
    with pytest.raises(RolloutError, match="no longer runs what was promoted"):
        execution.run("finalize")
    assert world.clients.ledger.pointer(SERVICE)["stable"] == STABLE_VERSION  # nothing committed
    execution.rollback()
    assert_settled(world, execution, "FAILED", version_state="REGISTERED")


def _runs_version(version: str, image: str) -> Any:
    def change(deployment: dict) -> None:
        [server] = deployment["spec"]["template"]["spec"]["containers"]
        for entry in server["env"]:
            if entry["name"] == "MODEL_VERSION":
                entry["value"] = version
        server["image"] = image

    return change


# -- 5: an abort racing the approval -------------------------------------------------------------------------
def test_5_an_abort_between_the_approval_check_and_the_token_is_honoured(world: RolloutWorld, monkeypatch: Any) -> None:
    execution = ExecutionDouble(world, "e1", overrides={"manual_approval": True}).start()
    execution.run_until("promote_stable")
    ledger = world.clients.ledger
    recorded = ledger.set_approval_token

    def abort_arrives_first(plan: Any, token: str) -> None:
        ledger.locks.request_abort(SERVICE, execution=execution.arn, reason="stop it", by="oncall")  # found no token
        recorded(plan, token)

    monkeypatch.setattr(ledger, "set_approval_token", abort_arrives_first)
    with pytest.raises(AbortRequestedError):
        execution.run("await_approval", token="token-1")  # noqa: S106 - a Step Functions task token
    execution.rollback("AbortRequestedError", "stop it")
    assert_settled(world, execution, "ABORTED", version_state="REGISTERED")


# -- 6: an operator's hold outliving the lease -------------------------------------------------------------
def test_6_an_operator_hold_never_expires_and_is_never_taken_over(world: RolloutWorld) -> None:
    execution = ExecutionDouble(world, "e1").start()
    execution.run_until("judge_interval")
    world.kube.fail_next("PUT", 403, times=1000)
    result = execution.run(
        "hand_to_operator",
        error={"Error": "RolloutError", "Cause": "x"},
        cleanup_error={"Error": "CleanupIncompleteError", "Cause": "y"},
    )
    assert result["outcome"] == "NEEDS_OPERATOR"
    world.kube.clear_faults()
    lock = world.clients.ledger.locks.holder(SERVICE)
    assert lock["operator"]
    assert "lease_until" not in lock
    assert "expires_at" not in lock  # nor does DynamoDB's TTL delete it
    world.clock.advance(60 * 86400)  # far past any lease
    world.traffic.go_quiet_until(world.clock())
    later = ExecutionDouble(world, "e2").start()
    with pytest.raises(RolloutInProgressError, match="held by an operator"):
        later.run("acquire_lock")


# -- 7: announcements that fail --------------------------------------------------------------------------------
def test_7a_a_failed_announcement_of_the_safety_net_is_retried(world: RolloutWorld, monkeypatch: Any) -> None:
    execution = ExecutionDouble(world, "e1").start()
    execution.run_until("shift_traffic")
    world.invoke_action(execution.stop())
    world.clock.advance(QUIESCENCE_SECONDS)
    [message] = world.settle.due(world.clock())
    sns = world.clients.sns
    publish = sns.publish
    monkeypatch.setattr(sns, "publish", _failing("publish"))
    with pytest.raises(Exception, match=r"announcement .* failed"):  # Lambda retries it, then its on-failure queue
        world.invoke_action({"Records": [{"body": json.dumps(message)}]})
    monkeypatch.setattr(sns, "publish", publish)
    world.invoke_action({"Records": [{"body": json.dumps(message)}]})
    assert_settled(world, execution, "ABORTED", version_state="REGISTERED")


def test_7b_a_promotion_nobody_announced_is_announced_by_the_safety_net(world: RolloutWorld, monkeypatch: Any) -> None:
    execution = ExecutionDouble(world, "e1").start()
    execution.run_until("finalize")
    sns = world.clients.sns
    publish = sns.publish
    monkeypatch.setattr(sns, "publish", _failing("publish"))
    for _ in range(3):  # Finalize's retries run out after its commit; Rollback then finds it PROMOTED
        with pytest.raises(Exception, match="announcement failed"):
            execution.run("finalize")
    assert execution.rollback()["outcome"] == "PROMOTED"
    monkeypatch.setattr(sns, "publish", publish)
    world.invoke_action(execution.status_change("SUCCEEDED"))
    assert_settled(world, execution, "PROMOTED", version_state="PROMOTED")


def _failing(operation: str) -> Any:
    def call(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": "InternalError", "Message": "injected"}}, operation)

    return call


# -- 8: a deploy that changes the floor during a rollout ------------------------------------------------------
def test_8_a_floor_a_deploy_sets_during_a_rollout_is_the_floor_at_rest(world: RolloutWorld) -> None:
    first_deploy(world)
    execution = ExecutionDouble(world, "e1").start()
    execution.run_until("judge_interval")  # stable's floor held at its size (2) by the rollout
    objects = rendered(world.config)
    [scaler] = [obj for obj in objects if obj["kind"] in track_owner.FLOOR_FIELDS]
    scaler["spec"][track_owner.FLOOR_FIELDS[scaler["kind"]]] = 3  # config now wants 3 (of at most 4)
    scaler["spec"]["maxReplicaCount" if scaler["kind"] == "ScaledObject" else "maxReplicas"] = 4
    deploy_tracks(world, objects, "Update")
    assert world.kube.autoscaler_floor(NAMESPACE, "assistant-stable") == 2  # the rollout's, while it runs
    execution.rollback()
    assert world.kube.autoscaler_floor(NAMESPACE, "assistant-stable") == 3  # config's new floor, not the snapshot
    assert_settled(world, execution, "FAILED", version_state="REGISTERED")


# -- 9: infrastructure faults do not burn a version ------------------------------------------------------------
def test_9a_a_canary_whose_pods_are_gone_stops_the_step_and_the_version_stays_startable(world: RolloutWorld) -> None:
    execution = ExecutionDouble(world, "e1").start()
    execution.run_until("judge_interval")
    world.register_canary_targets(0)  # evicted: the pool is full
    with pytest.raises(RolloutError, match="no healthy target"):
        execution.run("judge_interval")
    execution.rollback("CanaryUnavailableError", "no healthy target")
    assert_settled(world, execution, "FAILED", version_state="REGISTERED")


def test_9b_a_stable_side_alarm_stops_the_step_and_the_version_stays_startable(world: RolloutWorld) -> None:
    execution = ExecutionDouble(world, "e1").start()
    execution.run_until("judge_interval")
    world.clients.cloudwatch.set_alarm_state(
        AlarmName=world.service_alarm, StateValue="ALARM", StateReason="pods Pending"
    )
    with pytest.raises(RolloutError, match="in ALARM"):
        execution.run("judge_interval")
    execution.rollback("WatchedAlarmError", "alarm")
    assert_settled(world, execution, "FAILED", version_state="REGISTERED")


# -- 10: the hand-over keeps the verdict ---------------------------------------------------------------------
def test_10_the_hand_over_keeps_the_canarys_failed_verdict(world: RolloutWorld) -> None:
    execution = ExecutionDouble(world, "e1").start()
    execution.run_until("judge_interval")
    verdict = {"Error": "CanaryFailed", "Cause": json.dumps(["canary 5xx rate 8.0 % above 1.0 %"])}
    result = execution.run(
        "hand_to_operator", error=verdict, cleanup_error={"Error": "CleanupIncompleteError", "Cause": "403"}
    )
    assert result["outcome"] == "ROLLED_BACK"  # the clean-up worked this time: the outcome Rollback would give
    assert_settled(world, execution, "ROLLED_BACK", version_state="ROLLED_BACK")
    assert "canary 5xx rate" in world.clients.ledger.record_for(SERVICE, execution.arn).reason


# -- 11: a crash between two writes leaves no lock without its record, and no final record with its lock ---------
@pytest.mark.parametrize("crash_after", [1])
def test_11b_acquire_lock_dying_after_a_write_leaves_no_lock_without_its_record(
    world: RolloutWorld, monkeypatch: Any, crash_after: int
) -> None:
    execution = ExecutionDouble(world, "e1").start()
    with _dying_after_write(world, monkeypatch, crash_after), pytest.raises(TimeoutError):
        execution.run("acquire_lock")
    _assert_lock_and_record_agree(world, execution)
    world.clock.advance(ROLLOUT_FUNCTION_TIMEOUT_SECONDS)
    execution.run("acquire_lock")  # Step Functions retries a Lambda timeout
    _assert_lock_and_record_agree(world, execution)
    assert world.clients.ledger.locks.holder(SERVICE)["execution"] == execution.arn


@pytest.mark.parametrize("crash_after", range(1, 7))
def test_11a_rollback_dying_after_a_write_never_leaves_the_lock_behind_a_final_record(
    world: RolloutWorld, monkeypatch: Any, crash_after: int
) -> None:
    execution = ExecutionDouble(world, "e1").start()
    execution.run_until("judge_interval")
    with _dying_after_write(world, monkeypatch, crash_after), contextlib.suppress(TimeoutError):
        execution.rollback()  # some crash points are after Rollback's last write
    _assert_lock_and_record_agree(world, execution)
    world.clock.advance(ROLLOUT_FUNCTION_TIMEOUT_SECONDS)  # the dead invocation ran out its timeout
    execution.rollback()  # retried
    assert_settled(world, execution, "FAILED", version_state="REGISTERED")


@contextlib.contextmanager
def _dying_after_write(world: RolloutWorld, monkeypatch: Any, crash_after: int) -> Iterator[None]:
    """The invocation dies (a Lambda timeout) right after its n-th DynamoDB write succeeded."""
    dynamodb = world.clients.ledger._client
    writes = {"n": 0}
    with monkeypatch.context() as patch:
        for operation in ("put_item", "update_item", "delete_item", "transact_write_items"):
            patch.setattr(dynamodb, operation, _crashing_after(getattr(dynamodb, operation), writes, crash_after))
        yield


def _crashing_after(call: Any, writes: dict, crash_after: int) -> Any:
    def wrapped(**kwargs: Any) -> Any:
        answer = call(**kwargs)
        writes["n"] += 1
        if writes["n"] == crash_after:
            raise TimeoutError("the function timed out right after this write")
        return answer

    return wrapped


def _assert_lock_and_record_agree(world: RolloutWorld, execution: ExecutionDouble) -> None:
    ledger = world.clients.ledger
    lock = ledger.locks.holder(SERVICE)
    record = ledger.record_for(SERVICE, execution.arn)
    if lock is not None:
        assert record is not None, "a lock without its record"
        assert record.status == "RUNNING" or lock.get("operator"), (lock, record)
    if record is not None and record.status != "RUNNING":
        assert lock is None or lock.get("operator"), "a final record with its lock left held"


def test_the_sequences_leave_a_stopped_executions_lock_held_until_quiescent(world: RolloutWorld) -> None:
    """The first pass keeps the lock (revoked) so that no start takes the service while a late write may land."""
    execution = ExecutionDouble(world, "e1").start()
    execution.run_until("shift_traffic")
    world.invoke_action(execution.stop())
    lock = world.clients.ledger.locks.holder(SERVICE)
    assert lock["revoked"]
    assert lock["quiescent_after"]
    assert world.clients.ledger.record_for(SERVICE, execution.arn).status == "RUNNING"
    assert world.settle.pending


# -- 14: an event is a claim: what a step or a clean-up acts on is what the rollout recorded ------------------
def test_14_a_forged_stable_snapshot_or_plan_is_refused_before_anything_is_written(world: RolloutWorld) -> None:
    execution = ExecutionDouble(world, "e1").start()
    execution.run_until("promote_stable")
    forged = json.loads(json.dumps(execution.progress))
    forged["stable"]["image"] = "123456789012.dkr.ecr.us-east-1.amazonaws.com/elsewhere@sha256:" + "0" * 64
    with pytest.raises(RolloutError, match="stable snapshot sent differs"):
        world.invoke_action({**_task(execution, "promote_stable"), "progress": forged})
    with pytest.raises(RolloutError, match=r"plan sent is not the one this rollout recorded \(plan.rule_arn\)"):
        world.invoke_action({**_task(execution, "promote_stable"), "plan": {**execution.plan, "rule_arn": "arn:x"}})
    with pytest.raises(RolloutError, match="plan sent"):  # a clean-up puts back only what the rollout recorded
        world.invoke_action(
            {**_task(execution, "rollback"), "plan": {**execution.plan, "rule_arn": "arn:elsewhere"}, "error": {}}
        )
    assert world.deployed_version("stable") == STABLE_VERSION
    execution.rollback()
    assert_settled(world, execution, "FAILED", version_state="REGISTERED")


def _task(execution: ExecutionDouble, action: str) -> dict:
    return {"action": action, "execution": execution.arn, "plan": execution.plan, "progress": execution.progress}
