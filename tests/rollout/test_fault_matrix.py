"""The fault-injection suite: every fault class at every task state of the synthesized rollout state machine (and
an abort at every one, which covers the waits before them), each a whole rollout under moto with the real
handlers. In each, the fault is seen to strike (its own count), every invariant of tests/rollout/scenarios.py
holds (traffic stable 100 / canary 0, canary at 0 replicas, stable runs the version the pointer names, the lock
free or held only by a running execution or handed to an operator with a notification, the record's outcome
matches the execution's, exactly one announcement per outcome), and the outcome is one the fault class may end
in at that state (tests/rollout/faults.py).

The same matrix runs for a change of chip (a version built for Trainium onto a service on its GPU pool): every
fault at every state leaves stable serving on its old chip, or on the new one only once the promotion is
committed.

A pair where the fault has nothing to strike (a PUT fault at a state that makes no PUT, an abort before the lock
exists) is skipped with the reason, read from a rollout without faults under the same set-up.

The whole matrix runs in `make faults` (CI runs it after `make test`); `make test` runs one scenario per
fault class, a few of a change of chip where placement is written, and the same samples with injection
disabled, which must fail."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
from collections.abc import Callable, Iterator

import pytest

from rollout.contract.records import RolloutRecord
from tests.rollout.chip import (
    GPU_POOL,
    TRAINIUM_POOL,
    VERSION_POOLS,
    gpu_first_config,
    place_tracks,
    pool_of,
    target_placement_of,
)
from tests.rollout.conftest import whole_rollouts
from tests.rollout.faults import (
    ACTIONS,
    FAULTS,
    PHASES,
    Injection,
    baseline_invocations,
    cannot_strike,
    run_scenario,
)
from tests.rollout.harness import NAMESPACE, NEW_VERSION, STABLE_VERSION
from tests.rollout.invocations import Invocation
from tests.rollout.scenarios import Rollouts
from tests.rollout.task_states import Phase, task_states
from tests.synth import SynthesizedEnvironment

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
# Samples run with every fault's injection disabled: one per way of injecting (the Lambda invocation, the
# Kubernetes API, an AWS client, the lock), each ending as a fault-free rollout would, which must not pass.
DISABLED_SAMPLE = ("lambda-timeout", "kubernetes-409", "sns-failure", "abort")
KNOWN_ACTIONS = {
    "prepare",
    "acquire_lock",
    "preflight",
    "deploy_canary",
    "check_canary_ready",
    "check_warm",
    "scale_canary",
    "shift_traffic",
    "judge_interval",
    "advance",
    "await_approval",
    "promote_stable",
    "check_stable_ready",
    "finalize",
    "rollback",
    "hand_to_operator",
}


def matrix() -> list:
    return [pytest.param(fault, action) for fault, action in itertools.product(sorted(FAULTS), ACTIONS)]


# -- the states and where faults can strike --------------------------------------------------------------
def test_the_matrix_states_are_the_synthesized_state_machine_task_actions(definition_text: str) -> None:
    """ACTIONS is read from the synthesized definition at collection; the state machine the scenarios run (the
    conftest's definition) has the same task actions, and every action of the rollout is among them."""
    running = {state.action for state in task_states(json.loads(definition_text))}
    assert ACTIONS
    assert set(ACTIONS) == running
    assert set(ACTIONS) >= KNOWN_ACTIONS, KNOWN_ACTIONS - set(ACTIONS)
    assert PHASES["prepare"] is Phase.NOT_STARTED
    assert PHASES["shift_traffic"] is Phase.ROLLING_OUT
    assert PHASES["rollback"] is Phase.ROLLING_BACK
    assert PHASES["hand_to_operator"] is Phase.HANDING_OVER


def test_passing_faults_are_retried_where_the_outcome_rules_say(definition_text: str) -> None:
    """The outcome rules' premises, read from the definition: every task retries throttling, Lambda timeouts and
    TransientError (so the passing faults pass); only the clean-up states retry any error (so a bug's exception
    fails a rolling-out state and passes in the clean-up)."""
    for state in task_states(json.loads(definition_text)):
        assert state.retried >= {"Lambda.TooManyRequestsException", "Lambda.Unknown", "TransientError"}, state
        cleaning_up = state.phase in (Phase.ROLLING_BACK, Phase.HANDING_OVER)
        assert ("States.ALL" in state.retried) == cleaning_up, state


@contextlib.contextmanager
def _fresh(build: Callable[[pytest.MonkeyPatch], contextlib.AbstractContextManager[Rollouts]]) -> Iterator[Rollouts]:
    with pytest.MonkeyPatch.context() as monkeypatch, build(monkeypatch) as rollouts:
        yield rollouts


def _baselines(build: Callable[[pytest.MonkeyPatch], contextlib.AbstractContextManager[Rollouts]]) -> dict:
    """Phase -> the invocations of a rollout without faults under that phase's set-up (one rollout per set-up)."""
    by_phase: dict[Phase, list[Invocation]] = {}
    for phase in Phase:
        shared = Phase.ROLLING_OUT if phase is Phase.NOT_STARTED else phase  # the same set-up: a plain rollout
        if shared not in by_phase:
            with _fresh(build) as rollouts:
                by_phase[shared] = baseline_invocations(rollouts, shared)
        by_phase[phase] = by_phase[shared]
    return by_phase


@pytest.fixture(scope="session")
def reach(dev: SynthesizedEnvironment, definition_text: str) -> dict[Phase, list[Invocation]]:
    """Where each fault can strike in the dev world. Session-scoped: it runs before (never inside) a test's moto."""
    return _baselines(lambda monkeypatch: whole_rollouts(dev.config, definition_text, monkeypatch))


@pytest.fixture(scope="session")
def chip_reach(definition_text: str) -> dict[Phase, list[Invocation]]:
    """Where each fault can strike in a change of chip (the world of the `chip_move` fixture)."""

    @contextlib.contextmanager
    def chip_world(monkeypatch: pytest.MonkeyPatch) -> Iterator[Rollouts]:
        with whole_rollouts(gpu_first_config(), definition_text, monkeypatch, version_pools=VERSION_POOLS) as built:
            place_tracks(built.world, GPU_POOL)
            yield built

    return _baselines(chip_world)


def skip_where_it_cannot_strike(reach: dict[Phase, list[Invocation]], fault: str, action: str) -> None:
    reason = cannot_strike(FAULTS[fault], action, reach[PHASES[action]])
    if reason is not None:
        assert "never invoked" not in reason, reason  # a state the set-ups never reach is a gap, not an exclusion
        pytest.skip(reason)


# -- the scenarios ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fault", "action"), sorted(SAMPLE.items()))
def test_one_scenario_per_fault_class(rollouts: Rollouts, fault: str, action: str) -> None:
    run_scenario(rollouts, action, FAULTS[fault])


@pytest.mark.parametrize("fault", DISABLED_SAMPLE)
def test_the_matrix_fails_when_injection_is_disabled(
    rollouts: Rollouts, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    for name, each in FAULTS.items():
        monkeypatch.setitem(FAULTS, name, dataclasses.replace(each, arm=lambda *_: Injection()))
    with pytest.raises(AssertionError, match=rf"^{fault} armed at {SAMPLE[fault]} struck 0 time\(s\)"):
        run_scenario(rollouts, SAMPLE[fault], FAULTS[fault])


@pytest.mark.fault_matrix
@pytest.mark.parametrize(("fault", "action"), matrix())
def test_every_fault_at_every_state(
    reach: dict[Phase, list[Invocation]], rollouts: Rollouts, fault: str, action: str
) -> None:
    skip_where_it_cannot_strike(reach, fault, action)
    run_scenario(rollouts, action, FAULTS[fault])


@pytest.mark.parametrize(("fault", "action"), sorted(CHIP_SAMPLE.items()))
def test_one_change_of_chip_scenario_where_placement_is_written(chip_move: Rollouts, fault: str, action: str) -> None:
    assert_serving_on_its_chip(chip_move, run_scenario(chip_move, action, FAULTS[fault]))


@pytest.mark.fault_matrix
@pytest.mark.parametrize(("fault", "action"), matrix())
def test_every_fault_at_every_state_of_a_change_of_chip(
    chip_reach: dict[Phase, list[Invocation]], chip_move: Rollouts, fault: str, action: str
) -> None:
    skip_where_it_cannot_strike(chip_reach, fault, action)
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
