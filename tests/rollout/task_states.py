"""The rollout state machine's task states as synthesized: each one's action, what it retries, and where a
failure there leads (its Catch), which decides what a fault at that state may end the rollout in.

The fault matrix is parametrized from these at collection time, so a state added to the state machine is
in the matrix without editing a list; the synthesis (about 3 s) runs once per test process that collects it."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path

from stacks.config.environment import config_path_for, load_config
from tests.rollout.definition import state_machine_definition
from tests.synth import synthesize

PLACEHOLDER_FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:tessera-dev-rollout"


class Phase(StrEnum):
    """Where a task state is in a rollout, read from where its failure goes."""

    NOT_STARTED = "not started"  # a failure ends the execution in a Fail state: nothing was locked or changed
    ROLLING_OUT = "rolling out"  # a failure goes to the clean-up (Rollback)
    ROLLING_BACK = "rolling back"  # the clean-up: a failure goes on to the hand-over
    HANDING_OVER = "handing over"  # the last resort (no Catch): what it cannot finish goes to a person


@dataclass(frozen=True)
class TaskState:
    name: str
    action: str
    retried: frozenset[str]  # error names its Retry covers ("States.ALL": every error)
    phase: Phase


def task_states(definition: dict) -> list[TaskState]:
    """Every Task state of an ASL document that runs an action of the rollout function, in definition order."""
    states = definition["States"]
    found = []
    for name, state in states.items():
        action = _action(state)
        if action is None:
            continue
        retried = frozenset(error for retry in state.get("Retry", []) for error in retry["ErrorEquals"])
        found.append(TaskState(name=name, action=action, retried=retried, phase=_phase(name, states)))
    return found


def action_phases(states: list[TaskState]) -> dict[str, Phase]:
    """Action -> its phase, in definition order. An action run by several states (the readiness checks) must be
    in one phase: a fault armed for the action strikes at whichever of them runs first."""
    phases: dict[str, Phase] = {}
    for state in states:
        if phases.setdefault(state.action, state.phase) != state.phase:
            raise ValueError(f"action {state.action} runs in states of different phases: {states}")
    return phases


@cache
def synthesized_task_states() -> tuple[TaskState, ...]:
    """The task states of the dev environment's synthesized Rollout stack."""
    with tempfile.TemporaryDirectory(prefix="cdk.out.task-states.") as outdir:
        env = synthesize(load_config(config_path_for("dev")), Path(outdir))
        definition = state_machine_definition(env, function_arn=PLACEHOLDER_FUNCTION_ARN)
    return tuple(task_states(definition))


def _action(state: dict) -> str | None:
    if state.get("Type") != "Task":
        return None
    parameters = state.get("Parameters") or {}
    # A plain invocation passes the payload as the parameters; a wait-for-token one nests it under Payload.
    payload = parameters.get("Payload") if isinstance(parameters.get("Payload"), dict) else parameters
    action = payload.get("action")
    return action if isinstance(action, str) else None


def _phase(name: str, states: dict) -> Phase:
    """The clean-up tasks a failure at `name` passes through decide its phase: none (a Fail state) before the
    lock; Rollback then the hand-over while rolling out; the hand-over alone from Rollback; no Catch at all for
    the hand-over itself."""
    chain = _clean_up_chain(name, states)
    if chain is None:
        return Phase.HANDING_OVER
    if not chain:
        return Phase.NOT_STARTED
    return Phase.ROLLING_BACK if len(chain) == 1 else Phase.ROLLING_OUT


def _clean_up_chain(name: str, states: dict) -> list[str] | None:
    """The task states a failure at `name` goes through, following each one's Catch (None: `name` has no Catch)."""
    catches = states[name].get("Catch") or []
    if not catches:
        return None
    catch = next((catch for catch in catches if "States.ALL" in catch["ErrorEquals"]), catches[0])
    target = _through_passes(catch["Next"], states)
    if states[target]["Type"] != "Task":
        return []
    return [target, *(_clean_up_chain(target, states) or [])]


def _through_passes(name: str, states: dict) -> str:
    """A Catch may go through Pass states (which shape the error) before the state that handles it."""
    while states[name]["Type"] == "Pass":
        name = states[name]["Next"]
    return name
