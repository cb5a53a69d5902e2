"""A change of chip is a rollout (issue 15): a version built for another allowed target canaries onto that
target's pool while stable keeps serving on its own chip; promotion moves stable; a failed judgement leaves
stable where it was and the canary's pool without pods; a later `cdk deploy` never moves the service back.
Whole rollouts under moto and the Kubernetes API double, from the GPU pool to the Trainium pool."""

from __future__ import annotations

import pytest

from registry.table_keys import partition, version_key
from rollout.contract.records import AuditKind
from rollout.kube.client import DEPLOYMENTS
from tessera_cli.measured import measured_throughput
from tests.rollout.chip import (
    GPU_POOL,
    TRAINIUM_POOL,
    VERSION_POOLS,
    gpu_first_config,
    place_tracks,
    pool_of,
    seat_tracks_for_the_move,
    target_placement_of,
)
from tests.rollout.conftest import whole_rollouts
from tests.rollout.harness import NAMESPACE, NEW_VERSION, STABLE_VERSION, TABLE, TrackTraffic
from tests.rollout.scenarios import Rollouts
from tests.rollout.test_track_owner import deploy, rendered

TRAINIUM = {"tessera.dev/accelerator": "trainium", "tessera.dev/pool": "trainium"}
GPU = {"tessera.dev/accelerator": "gpu", "tessera.dev/pool": "gpu"}


def judgements_with_cost(rollouts: Rollouts) -> list[dict]:
    """Every judgement of the rollout (the whole bakes' audit decisions and each interval's record), each
    checked to carry both tracks' cost per million requests and the target each ran on."""
    ledger, record = rollouts.world.clients.ledger, rollouts.record()
    judged = [{"id": entry.id, **entry.details} for entry in ledger.judgements(record)]
    judged += ledger.intervals("assistant", record.started_at, record.execution)
    for judgement in judged:
        for track in ("canary", "stable"):
            cost = judgement[track]["cost"]
            assert cost.get("cost_per_million_requests") is not None, (judgement.get("id"), track, cost)
            assert cost["requests"] == judgement[track]["requests"]
    return judged


def test_a_version_built_for_trainium_moves_a_gpu_service_to_trainium(chip_move: Rollouts) -> None:
    world = chip_move.world
    seat_tracks_for_the_move(world)
    world.pause_before("promote_stable")
    running = chip_move.begin()
    world.wait_until_paused()
    # Before promotion: the canary's pods carry the Trainium placement, stable still serves on the GPU pool.
    canary, stable = pool_of(world, "canary"), pool_of(world, "stable")
    assert world.canary_replicas() >= 1
    assert canary.node_selector == TRAINIUM
    assert canary.tolerations == [{"key": "aws.amazon.com/neuron", "operator": "Exists", "effect": "NoSchedule"}]
    assert canary.resources == {"aws.amazon.com/neuron": "1"}
    assert stable.node_selector == GPU
    assert stable.resources == {"nvidia.com/gpu": "1"}
    assert world.deployed_version("stable") == STABLE_VERSION
    world.resume()
    ended = chip_move.settle(chip_move.wait(running["executionArn"]))
    assert ended["status"] == "SUCCEEDED", ended
    chip_move.assert_invariants(ended)
    chip_move.assert_at_rest(stable=NEW_VERSION)
    # After promotion stable runs on Trainium, exactly as the target renders it; the canary holds no pods.
    assert pool_of(world, "stable") == target_placement_of(world.config, TRAINIUM_POOL)
    assert world.canary_replicas() == 0
    record = chip_move.record()
    [preflight], [deploy], [promote] = (
        record.entries(kind) for kind in (AuditKind.PREFLIGHT, AuditKind.DEPLOY_CANARY, AuditKind.PROMOTE_STABLE)
    )
    assert preflight.details["pool"] == TRAINIUM_POOL
    assert (deploy.details["canary_pool"], deploy.details["stable_pool"]) == (TRAINIUM_POOL, GPU_POOL)
    assert promote.details["pool"] == TRAINIUM_POOL
    assert any(j.step == 0 and j.verdict == "PASS" for j in chip_move.world.clients.ledger.judgements(record))
    # Cost per million requests for both tracks at every judgement, each on its own chip: the canary's one
    # trn1.2xlarge ($1.34375/h) against stable's two g6.2xlarge ($0.9776/h each), both serving alike.
    judged = judgements_with_cost(chip_move)
    assert len(judged) > len(chip_move.record().plan.policy.steps)  # the whole bakes and their intervals
    for judgement in judged:
        assert (judgement["canary"]["target"], judgement["stable"]["target"]) == (TRAINIUM_POOL, GPU_POOL)
        canary, stable = judgement["canary"]["cost"], judgement["stable"]["cost"]
        assert (canary["dollars_per_hour"], stable["dollars_per_hour"]) == (1.34375, 2 * 0.9776)
    # `tessera cost` reads these records: the canary measured Trainium's throughput (1,000 requests a minute on
    # one pod); stable's figures on the GPU are not a measurement of a move there.
    judgements = world.clients.ledger.every_judgement("assistant")
    assert measured_throughput(judgements, TRAINIUM_POOL) == pytest.approx(60_000)
    assert measured_throughput(judgements, GPU_POOL) is None


def test_a_failed_judgement_leaves_stable_on_its_gpu_and_the_trainium_canary_at_zero(chip_move: Rollouts) -> None:
    world = chip_move.world
    seat_tracks_for_the_move(world)
    world.traffic.canary = TrackTraffic(requests=1000, errors_5xx=80)
    ended = chip_move.settle(chip_move.start())
    assert (ended["status"], ended["error"]) == ("FAILED", "RolledBack")
    chip_move.assert_invariants(ended)
    chip_move.assert_at_rest(stable=STABLE_VERSION)
    assert pool_of(world, "stable") == target_placement_of(world.config, GPU_POOL)
    assert world.canary_replicas() == 0  # no canary pod is left on the Trainium pool
    assert chip_move.version_state() == "ROLLED_BACK"
    failed = [j for j in judgements_with_cost(chip_move) if (j.get("judgement") or j).get("verdict") == "FAIL"]
    assert failed, "the failing judgement carries both tracks' cost too"


def test_a_failure_after_promotion_started_puts_stable_back_on_its_gpu(chip_move: Rollouts) -> None:
    """Stable's move to Trainium never becomes ready: Rollback restores the old version on the old chip."""
    world = chip_move.world
    world.pause_before("promote_stable")
    running = chip_move.begin()
    world.wait_until_paused()
    world.kube.set_ready_after_reads(NAMESPACE, "assistant-stable", 10**6)
    world.resume()
    ended = chip_move.settle(chip_move.wait(running["executionArn"]))
    record = chip_move.assert_invariants(ended)
    assert record.status == "FAILED"
    assert world.deployed_version("stable") == STABLE_VERSION
    assert pool_of(world, "stable") == target_placement_of(world.config, GPU_POOL)


def test_a_deploy_after_the_move_keeps_stable_on_trainium(chip_move: Rollouts) -> None:
    """The running placement, like the running version, is the rollout engine's after the first deploy: config
    still names the GPU as the service's first target, and a `cdk deploy` must not move it back."""
    world = chip_move.world
    for name in ("assistant-stable", "assistant-canary"):  # the first deploy, through the track owner
        world.clients.kube.delete(DEPLOYMENTS, NAMESPACE, name)
    _deploy(chip_move, "Create")
    world.kube.scale_as_autoscaler(NAMESPACE, "assistant-stable", 2)
    assert pool_of(world, "stable") == target_placement_of(world.config, GPU_POOL)
    assert chip_move.start()["status"] == "SUCCEEDED"
    _deploy(chip_move, "Update")
    assert pool_of(world, "stable") == target_placement_of(world.config, TRAINIUM_POOL)
    assert world.deployed_version("stable") == NEW_VERSION


def _deploy(rollouts: Rollouts, request: str) -> None:
    deploy(rollouts, rendered(rollouts.world.config), request)


def test_preflight_checks_capacity_on_the_target_pool(definition_text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Trainium pool may hold 3 pods (one per trn1.2xlarge); 2 stable + 1 canary at its 10 % step + 1 surge
    at promotion need 4. The GPU pool's room does not count: the version runs on Trainium."""
    config = gpu_first_config(trainium_nodes=3)
    with whole_rollouts(config, definition_text, monkeypatch, version_pools=VERSION_POOLS) as rollouts:
        place_tracks(rollouts.world, GPU_POOL)  # where the first deploy put the service (its current target)
        ended = rollouts.settle(rollouts.start())
        record = rollouts.assert_invariants(ended)
        assert record.status == "FAILED"
        assert "pool cannot fit the rollout" in record.reason
        assert "need 8 NeuronCores, the pool has at most 6" in record.reason
        assert rollouts.world.canary_replicas() == 0


def test_a_version_for_a_target_the_service_no_longer_allows_is_refused(chip_move: Rollouts) -> None:
    """The registry recorded the version fits a pool the service's config no longer allows: refused before
    anything is touched."""
    world = chip_move.world
    world.dynamodb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": partition("assistant")}, "sk": {"S": version_key(NEW_VERSION)}},
        UpdateExpression="SET #pool = :pool",
        ExpressionAttributeNames={"#pool": "pool"},
        ExpressionAttributeValues={":pool": {"S": "inferentia"}},
    )
    ended = chip_move.settle(chip_move.start())
    assert ended["error"] == "RolloutNotStarted", ended
    assert (
        "built for pool 'inferentia', which is not among the service's allowed targets (gpu, trainium)"
        in (ended["cause"])
    )
    chip_move.assert_invariants(ended)
    assert pool_of(world, "stable") == target_placement_of(world.config, GPU_POOL)
