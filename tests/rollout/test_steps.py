"""The rollout steps one by one, under moto and the Kubernetes API test double."""

from __future__ import annotations

import pytest

from rollout import steps
from rollout.errors import RolloutError, RolloutInProgressError
from rollout.handler import dispatch
from tests.rollout.harness import NAMESPACE, NEW_VERSION, STABLE_VERSION, RolloutWorld


def _plan(world: RolloutWorld, **overrides: object) -> dict:
    request = {"service": "assistant", "version": NEW_VERSION, "overrides": overrides}
    return steps.prepare(request, "arn:aws:states:us-east-1:123456789012:execution:m:e1", world.clients)


def test_prepare_resolves_policy_routing_and_image(world: RolloutWorld) -> None:
    plan = _plan(world, bake_seconds=30, analysis={"min_requests": 50})
    assert plan["steps"] == [10]
    assert plan["bake_seconds"] == 30
    assert plan["analysis"]["min_requests"] == 50
    assert plan["analysis"]["max_p99_seconds"] == 10.0  # the rest of the analysis policy is kept
    assert plan["rule_arn"] == world.routing.rule
    assert plan["image"].endswith(f"/tessera/dev/assistant:img-{NEW_VERSION}")
    assert plan["model_uri"] == f"s3://models-bucket/models/assistant/{NEW_VERSION}/"
    assert plan["stable_version"] == STABLE_VERSION


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"service": "assistant"}, "start a rollout with"),
        ({"service": "painter", "version": "v1"}, "service 'painter' has no rollout settings"),
        (
            {"service": "assistant", "version": "v1", "overrides": {"bake": 1}},
            "overrides ['bake'] are not rollout policy fields",
        ),
    ],
)
def test_prepare_rejects_bad_requests(world: RolloutWorld, request_: dict, message: str) -> None:
    with pytest.raises(RolloutError, match=message.replace("[", r"\[").replace("]", r"\]")):
        steps.prepare(request_, "e1", world.clients)


def test_lock_refuses_a_second_rollout_and_names_the_first(world: RolloutWorld) -> None:
    plan = _plan(world)
    steps.acquire_lock(plan, world.clients)
    steps.acquire_lock(plan, world.clients)  # the same execution may take it again (a retried task)
    other = {**plan, "execution": "arn:aws:states:us-east-1:123456789012:execution:m:e2"}
    with pytest.raises(RolloutInProgressError, match=f"version {NEW_VERSION} by execution {plan['execution']}"):
        steps.acquire_lock(other, world.clients)


def test_preflight_passes_at_rest(world: RolloutWorld) -> None:
    assert steps.preflight(_plan(world), world.clients) == {"stable_replicas": 2}


def test_preflight_refuses_a_version_that_is_not_registered(world: RolloutWorld) -> None:
    world.clients.ledger.set_version_state("assistant", NEW_VERSION, "ROLLED_BACK")
    with pytest.raises(RolloutError, match="is ROLLED_BACK; only registered versions roll out"):
        steps.preflight(_plan(world), world.clients)


def test_preflight_refuses_a_service_that_is_not_at_rest(world: RolloutWorld) -> None:
    plan = _plan(world)
    steps.shift_traffic(plan, {"step": 0}, world.clients)
    with pytest.raises(RolloutError, match="not at rest: the canary has weight 10"):
        steps.preflight(plan, world.clients)


def test_preflight_refuses_when_the_pool_cannot_fit_the_canary(world: RolloutWorld) -> None:
    world.clients.kube.scale(NAMESPACE, "assistant-stable", 4)
    with pytest.raises(RolloutError, match="4 stable \\+ 1 canary pods need 10 NeuronCores, the pool has at most 8"):
        steps.preflight(_plan(world), world.clients)


def test_canary_replicas_follow_traffic() -> None:
    assert [steps.canary_replicas(10, weight) for weight in (1, 10, 25, 50, 100)] == [1, 1, 3, 5, 10]
    assert steps.canary_replicas(0, 50) == 1


def test_deploy_canary_sets_version_image_and_replicas(world: RolloutWorld) -> None:
    plan = _plan(world)
    progress = steps.deploy_canary(plan, {"stable_replicas": 2}, world.clients)
    assert progress["replicas"] == 1
    assert world.canary_replicas() == 1
    assert world.deployed_version("canary") == NEW_VERSION
    assert world.deployed_version("stable") == STABLE_VERSION


def test_readiness_past_the_deadline_fails(world: RolloutWorld) -> None:
    plan = _plan(world)
    world.kube.set_ready_after_reads(NAMESPACE, "assistant-canary", 100)
    progress = steps.deploy_canary(plan, {"stable_replicas": 2}, world.clients)
    assert steps.check_ready(plan, progress, "canary", world.clients)["ready"] is False
    late = {**progress, "deadline": "2000-01-01T00:00:00+00:00"}
    with pytest.raises(RolloutError, match="assistant-canary not ready after"):
        steps.check_ready(plan, late, "canary", world.clients)


def test_warm_up_needs_every_canary_target_healthy(world: RolloutWorld) -> None:
    plan = _plan(world)
    with pytest.raises(RolloutError, match="canary warm-up failed: 0 of 0 targets healthy, 1 expected"):
        steps.check_warm(plan, {"replicas": 1}, world.clients)


def test_shift_traffic_reads_the_weights_back(world: RolloutWorld) -> None:
    plan = _plan(world)
    progress = steps.shift_traffic(plan, {"step": 0}, world.clients)
    assert world.weights() == {world.routing.stable_target_group: 90, world.routing.canary_target_group: 10}
    assert progress["extensions"] == 0


def test_rule_that_does_not_take_the_weights_is_an_error(world: RolloutWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _plan(world)
    monkeypatch.setattr(world.clients.elbv2, "modify_rule", lambda **_: {})  # a rule that ignores the change
    with pytest.raises(RolloutError, match="load balancer rule reports weights"):
        steps.shift_traffic(plan, {"step": 0}, world.clients)


def test_approval_request_keeps_the_task_token_and_notifies(world: RolloutWorld) -> None:
    plan = _plan(world)
    steps.acquire_lock(plan, world.clients)
    steps.await_approval(plan, "token-123", world.clients)
    [record] = world.clients.ledger.rollouts("assistant")
    assert record["decisions"][-1]["task_token"] == "token-123"  # noqa: S105 - a Step Functions task token


def test_unknown_action_is_refused(world: RolloutWorld) -> None:
    with pytest.raises(ValueError, match="unknown action 'jump'"):
        dispatch({"action": "jump"}, world.clients)
