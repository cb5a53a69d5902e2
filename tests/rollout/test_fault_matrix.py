"""The fault-injection suite: every fault class at every task state of the rollout (and an abort at
every one, which covers the waits before them), each a whole rollout under moto with the real handlers.
After each, every invariant of tests/rollout/scenarios.py holds: traffic stable 100 / canary 0, canary at
0 replicas, stable runs the version the pointer names, the lock free or held only by a running execution
(or handed to an operator, with a notification), the record's outcome matches the execution's, and
exactly one announcement per outcome.

The same matrix runs for a change of chip (a version built for Trainium onto a service on its GPU pool): every
fault at every state leaves stable serving on its old chip, or on the new one only once the promotion is
committed.

The whole matrix runs in `make faults` (CI runs it after `make test`); `make test` runs one scenario per
fault class, and a few of a change of chip where placement is written."""

from __future__ import annotations

import itertools

import pytest

from rollout.contract.records import RolloutRecord
from tests.rollout.chip import GPU_POOL, TRAINIUM_POOL, pool_of, target_placement_of
from tests.rollout.faults import ACTIONS, FAULTS, run_scenario
from tests.rollout.harness import NAMESPACE, NEW_VERSION, STABLE_VERSION
from tests.rollout.scenarios import Rollouts

# One state per fault class for `make test`, where that class bites.
SAMPLE = {
    "handler-exception": "shift_traffic",
    "lambda-timeout": "promote_stable",
    "throttling": "judge_interval",
    "kubernetes-503": "deploy_canary",
    "kubernetes-403": "scale_canary",
    "kubernetes-409": "promote_stable",
    "kubernetes-unreachable": "check_canary_ready",
    "modify-rule-failure": "shift_traffic",
    "dynamodb-conditional-failure": "finalize",
    "sns-failure": "rollback",
    "abort": "judge_interval",
    "delivered-twice": "finalize",
}
# Where a change of chip writes placements: the canary's, stable's at promotion, and stable's back at rollback.
CHIP_SAMPLE = {
    "kubernetes-409": "deploy_canary",
    "lambda-timeout": "promote_stable",
    "abort": "check_stable_ready",
    "handler-exception": "rollback",
}


@pytest.mark.parametrize(("fault", "action"), sorted(SAMPLE.items()))
def test_one_scenario_per_fault_class(rollouts: Rollouts, fault: str, action: str) -> None:
    run_scenario(rollouts, action, FAULTS[fault])


@pytest.mark.fault_matrix
@pytest.mark.parametrize(("fault", "action"), list(itertools.product(sorted(FAULTS), ACTIONS)))
def test_every_fault_at_every_state(rollouts: Rollouts, fault: str, action: str) -> None:
    run_scenario(rollouts, action, FAULTS[fault])


@pytest.mark.parametrize(("fault", "action"), sorted(CHIP_SAMPLE.items()))
def test_one_change_of_chip_scenario_where_placement_is_written(chip_move: Rollouts, fault: str, action: str) -> None:
    assert_serving_on_its_chip(chip_move, run_scenario(chip_move, action, FAULTS[fault]))


@pytest.mark.fault_matrix
@pytest.mark.parametrize(("fault", "action"), list(itertools.product(sorted(FAULTS), ACTIONS)))
def test_every_fault_at_every_state_of_a_change_of_chip(chip_move: Rollouts, fault: str, action: str) -> None:
    assert_serving_on_its_chip(chip_move, run_scenario(chip_move, action, FAULTS[fault]))


def assert_serving_on_its_chip(rollouts: Rollouts, record: RolloutRecord | None) -> None:
    """Stable serves (it has pods) on the GPU with the old version, or on Trainium with the new one once the
    promotion is committed; never a mix. A clean-up handed to an operator says what it left, and is not judged."""
    world = rollouts.world
    status = record.status if record else None
    if status == "NEEDS_OPERATOR" and "stable" in (record.left_to_undo or ""):
        return
    stable = world.clients.ledger.pointer("assistant")["stable"]
    pool = TRAINIUM_POOL if stable == NEW_VERSION else GPU_POOL
    assert stable in (STABLE_VERSION, NEW_VERSION)
    assert world.deployed_version("stable") == stable
    assert pool_of(world, "stable") == target_placement_of(world.config, pool), (status, pool)
    assert world.kube.deployment(NAMESPACE, "assistant-stable")["spec"]["replicas"] >= 1
    assert world.canary_replicas() == 0 or status == "NEEDS_OPERATOR"
