"""The fault-injection suite: every fault class at every task state of the rollout (and an abort at
every one, which covers the waits before them), each a whole rollout under moto with the real handlers.
After each, every invariant of tests/rollout/scenarios.py holds: traffic stable 100 / canary 0, canary at
0 replicas, stable runs the version the pointer names, the lock free or held only by a running execution
(or handed to an operator, with a notification), the record's outcome matches the execution's, and
exactly one announcement per outcome.

The whole matrix runs in `make faults` (CI runs it after `make test`); `make test` runs one scenario per
fault class."""

from __future__ import annotations

import itertools

import pytest

from tests.rollout.faults import ACTIONS, FAULTS, run_scenario
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


@pytest.mark.parametrize(("fault", "action"), sorted(SAMPLE.items()))
def test_one_scenario_per_fault_class(rollouts: Rollouts, fault: str, action: str) -> None:
    run_scenario(rollouts, action, FAULTS[fault])


@pytest.mark.fault_matrix
@pytest.mark.parametrize(("fault", "action"), list(itertools.product(sorted(FAULTS), ACTIONS)))
def test_every_fault_at_every_state(rollouts: Rollouts, fault: str, action: str) -> None:
    run_scenario(rollouts, action, FAULTS[fault])
