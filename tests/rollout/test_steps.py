"""The rollout steps one by one, under moto and the Kubernetes API test double."""

from __future__ import annotations

import dataclasses

import pytest

from rollout.contract import Plan, Progress
from rollout.errors import AbortRequestedError, LockLostError, RolloutError, RolloutInProgressError, StartRefusedError
from rollout.handler import dispatch
from rollout.steps import canary, common, promotion, start
from tests.rollout.harness import NAMESPACE, NEW_VERSION, STABLE_VERSION, RolloutWorld

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:m:e1"


def _plan(world: RolloutWorld, **overrides: object) -> Plan:
    request = {"service": "assistant", "version": NEW_VERSION, "overrides": overrides}
    return start.prepare(request, EXECUTION, world.clients)


def _locked(world: RolloutWorld, **overrides: object) -> Plan:
    plan = _plan(world, **overrides)
    start.acquire_lock(plan, world.clients)
    return plan


def _deployed(world: RolloutWorld, plan: Plan) -> Progress:
    return canary.deploy_canary(plan, start.preflight(plan, Progress(), world.clients), world.clients)


def test_prepare_resolves_policy_routing_and_image(world: RolloutWorld) -> None:
    plan = _plan(world, bake_seconds=300, analysis={"min_requests": 500})  # overrides may only tighten
    assert plan.policy.steps == [10]
    assert plan.policy.bake_seconds == 300
    assert plan.policy.analysis.min_requests == 500
    assert plan.policy.analysis.max_p99_seconds == 10.0  # the rest of the analysis policy is kept
    assert plan.rule_arn == world.routing.rule
    assert plan.image.endswith(f"/tessera/dev/assistant@{world.image_digests[NEW_VERSION]}")
    assert plan.model_uri == f"s3://models-bucket/models/assistant/{NEW_VERSION}/"
    assert plan.stable_version == STABLE_VERSION


def test_the_plan_survives_its_json_round_trip(world: RolloutWorld) -> None:
    plan = _plan(world)
    assert Plan.from_json(plan.to_json()) == plan
    newer = {**plan.to_json(), "contract_version": plan.contract_version + 1}
    with pytest.raises(ValueError, match="written by newer rollout code"):
        Plan.from_json(newer)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"service": "assistant"}, "start a rollout with"),
        ({"service": "painter", "version": "v1"}, "service 'painter' not found"),
        ({"service": "assistant", "version": "v1", "overrides": {"bake": 1}}, "bake: not an overridable field"),
        ({"service": "assistant", "version": "v1", "overrides": {"bake_seconds": -5}}, "-5 is out of range"),
        ({"service": "assistant", "version": "v1", "overrides": {"bake_seconds": "600"}}, "expected a whole number"),
        ({"service": "assistant", "version": "v1", "overrides": {"bake_seconds": 1.5}}, "expected a whole number"),
        ({"service": "assistant", "version": "v1", "overrides": {"steps": [50, 10]}}, "steps must rise"),
        (
            {
                "service": "assistant",
                "version": "v1",
                "overrides": {"bake_seconds": 43200, "steps": list(range(1, 60))},
            },
            "worst-case duration",
        ),
    ],
)
def test_prepare_refuses_bad_requests(world: RolloutWorld, request_: dict, message: str) -> None:
    with pytest.raises(StartRefusedError, match=message.replace("[", r"\[").replace("]", r"\]")):
        start.prepare(request_, "e1", world.clients)


def test_lock_refuses_a_second_rollout_and_names_the_first(world: RolloutWorld) -> None:
    plan = _locked(world)
    start.acquire_lock(plan, world.clients)  # the same execution may take it again (a retried task)
    other = dataclasses.replace(plan, execution="arn:aws:states:us-east-1:123456789012:execution:m:e2")
    world.clients.stepfunctions.describe_execution = lambda **_: {"status": "RUNNING"}  # the holder still runs
    with pytest.raises(RolloutInProgressError, match=f"version {NEW_VERSION} by execution {plan.execution}"):
        start.acquire_lock(other, world.clients)


def test_preflight_passes_at_rest_and_snapshots_stable(world: RolloutWorld) -> None:
    progress = start.preflight(_locked(world), Progress(), world.clients)
    assert progress.stable is not None
    assert progress.stable.replicas == 2
    assert progress.stable.model_version == STABLE_VERSION
    assert progress.stable.autoscaler_min == 1


def test_preflight_refuses_a_version_that_is_not_registered(world: RolloutWorld) -> None:
    plan = _locked(world)
    world.clients.ledger.set_version_state("assistant", NEW_VERSION, "ROLLED_BACK")
    with pytest.raises(RolloutError, match="is ROLLED_BACK; only registered versions roll out"):
        start.preflight(plan, Progress(), world.clients)


def test_preflight_refuses_a_service_that_is_not_at_rest(world: RolloutWorld) -> None:
    plan = _locked(world)
    canary.shift_traffic(plan, Progress(), world.clients)
    with pytest.raises(RolloutError, match="not at rest: the canary has weight 10"):
        start.preflight(plan, Progress(), world.clients)


def test_preflight_counts_the_surge_pod_of_the_promotion(world: RolloutWorld) -> None:
    """Case 1: 3 stable + 1 canary pods fit the 8 cores, but promotion's surge pod does not."""
    world.clients.kube.scale(NAMESPACE, "assistant-stable", 3)
    with pytest.raises(RolloutError, match=r"3 stable \+ 1 canary pods \+ 1 surge pod at promotion need 10"):
        start.preflight(_locked(world), Progress(), world.clients)


def test_preflight_refuses_watched_alarms_that_do_not_exist(world: RolloutWorld) -> None:
    """Case 8: a missing alarm is found before anything moves, not at the first judgement."""
    with pytest.raises(RolloutError, match="watched alarm\\(s\\) do not exist: no-such-alarm"):
        start.preflight(_locked(world, analysis={"alarms": ["no-such-alarm"]}), Progress(), world.clients)


def test_canary_replicas_follow_traffic() -> None:
    assert [common.canary_replicas(10, weight) for weight in (1, 10, 25, 50, 100)] == [1, 1, 3, 5, 10]
    assert common.canary_replicas(0, 50) == 1


def test_deploy_canary_sets_version_image_replicas_and_the_stable_floor(world: RolloutWorld) -> None:
    plan = _locked(world)
    progress = _deployed(world, plan)
    assert progress.replicas == 1
    assert world.canary_replicas() == 1
    assert world.deployed_version("canary") == NEW_VERSION
    assert world.deployed_version("stable") == STABLE_VERSION
    # The assistant scales with KEDA in dev: the floor is the ScaledObject's (KEDA would undo one on its HPA).
    scaler = world.kube.autoscaler(NAMESPACE, "assistant-stable")
    assert (scaler["kind"], scaler["spec"]["minReplicaCount"]) == ("ScaledObject", 2)


def test_scale_canary_follows_stable_as_it_is_now(world: RolloutWorld) -> None:
    """Case 10: the stable autoscaler doubled stable since preflight; the canary's share follows."""
    world.set_policy(steps=[50, 100])
    plan = dataclasses.replace(_plan(world), pool=None)  # capacity is not the point here
    start.acquire_lock(plan, world.clients)
    progress = _deployed(world, plan)
    world.kube.scale_as_autoscaler(NAMESPACE, "assistant-stable", 4)
    scaled = canary.scale_canary(plan, progress, world.clients)
    assert (scaled.stable_replicas, scaled.replicas) == (4, 2)


def test_the_floor_holds_stable_while_it_gets_no_traffic(world: RolloutWorld) -> None:
    """Case 10: at a 100 % canary step stable idles; its autoscaler cannot take it below its start size."""
    world.set_policy(steps=[100])
    plan = dataclasses.replace(_plan(world), pool=None)
    start.acquire_lock(plan, world.clients)
    _deployed(world, plan)
    assert world.kube.scale_as_autoscaler(NAMESPACE, "assistant-stable", 1) == 2


def test_readiness_past_the_deadline_fails(world: RolloutWorld) -> None:
    plan = _locked(world)
    world.kube.set_ready_after_reads(NAMESPACE, "assistant-canary", 100)
    progress = _deployed(world, plan)
    assert canary.check_ready(plan, progress, "canary", world.clients)["ready"] is False
    late = progress.replace(deadline="2000-01-01T00:00:00+00:00")
    with pytest.raises(RolloutError, match="assistant-canary not ready after"):
        canary.check_ready(plan, late, "canary", world.clients)


def test_warm_up_waits_then_needs_every_canary_target_healthy(world: RolloutWorld) -> None:
    plan = _locked(world, warmup_seconds=60)
    progress = canary.check_warm(plan, Progress(replicas=1), world.clients)
    assert progress.waiting is True
    world.clock.advance(61)
    with pytest.raises(RolloutError, match="canary warm-up failed: 0 of 0 targets healthy, 1 expected"):
        canary.check_warm(plan, progress, world.clients)


def test_shift_traffic_reads_the_weights_back(world: RolloutWorld) -> None:
    plan = _locked(world)
    progress = canary.shift_traffic(plan, Progress(), world.clients)
    assert world.weights() == {world.routing.stable_target_group: 90, world.routing.canary_target_group: 10}
    assert progress.extensions == 0
    assert progress.waiting is True


def test_rule_that_does_not_take_the_weights_is_an_error(world: RolloutWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _locked(world)
    monkeypatch.setattr(world.clients.elbv2, "modify_rule", lambda **_: {})  # a rule that ignores the change
    with pytest.raises(RolloutError, match="load balancer rule reports weights"):
        canary.shift_traffic(plan, Progress(), world.clients)


def test_every_token_of_a_retried_approval_task_replaces_the_last(world: RolloutWorld) -> None:
    """Case 6: a retried AwaitApproval gets a new token; `approve` must use the newest."""
    plan = _locked(world)
    for token in ("token-1", "token-2"):
        promotion.await_approval(plan, token, world.clients)
    [record] = world.clients.ledger.rollouts("assistant")
    assert record.approval_token == "token-2"  # noqa: S105 - a Step Functions task token


def test_a_step_of_an_execution_that_lost_the_lock_touches_nothing(world: RolloutWorld) -> None:
    """Case 3: once another execution holds the lock, the old one's steps refuse to act."""
    plan = _locked(world)
    world.clients.ledger.locks.force_unlock("assistant")
    other = dataclasses.replace(plan, execution="arn:aws:states:us-east-1:123456789012:execution:m:e2")
    start.acquire_lock(other, world.clients)
    with pytest.raises(LockLostError):
        canary.shift_traffic(plan, Progress(), world.clients)
    assert world.weights()[world.routing.canary_target_group] == 0


def test_a_requested_abort_stops_the_next_step(world: RolloutWorld) -> None:
    plan = _locked(world)
    assert world.clients.ledger.locks.request_abort("assistant", execution=plan.execution, reason="r", by="me")
    with pytest.raises(AbortRequestedError):
        canary.shift_traffic(plan, Progress(), world.clients)
    assert world.weights()[world.routing.canary_target_group] == 0


def test_an_expired_lock_is_taken_over_in_the_condition(world: RolloutWorld) -> None:
    """Case 3: a lock past its lease blocks no one, even before TTL deletes it."""
    plan = _locked(world)
    world.clock.advance(60 * 86400)
    other = dataclasses.replace(plan, execution="arn:aws:states:us-east-1:123456789012:execution:m:e2")
    world.clients.stepfunctions.describe_execution = lambda **_: {"status": "RUNNING"}
    start.acquire_lock(other, world.clients)
    assert world.clients.ledger.locks.holder("assistant")["execution"] == other.execution


def test_unknown_action_is_refused(world: RolloutWorld) -> None:
    with pytest.raises(ValueError, match="unknown action 'jump'"):
        dispatch({"action": "jump"}, world.clients)


def test_a_malformed_plan_is_refused_naming_the_field(world: RolloutWorld) -> None:
    plan = _plan(world).to_json()
    plan["policy"]["bake_seconds"] = "600"
    with pytest.raises(ValueError, match=r"plan.policy.bake_seconds: expected int, got '600'"):
        dispatch({"action": "shift_traffic", "plan": plan, "progress": {}}, world.clients)


def test_a_plan_written_by_contract_version_1_is_read_with_its_pool(world: RolloutWorld) -> None:
    """A rollout running across the deploy that renamed the pool's counts (contract version 2) keeps its pool."""
    plan = _plan(world)
    assert plan.pool is not None
    current = plan.to_json()
    pool = current["pool"]
    legacy_pool = {
        "name": pool["name"],
        "max_nodes": pool["max_nodes"],
        "max_neuron_cores": pool["accelerator_limit"],
        "cores_per_pod": pool["per_pod"],
        "instance_types": [
            {"name": item["name"], "cores": item["accelerators"], "devices": 1} for item in pool["instance_types"]
        ],
        "unit": pool["unit"],
    }
    written_by_version_1 = {**current, "pool": legacy_pool, "contract_version": 1}
    assert Plan.from_json(written_by_version_1) == dataclasses.replace(plan, contract_version=1)
