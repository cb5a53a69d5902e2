"""Per-rollout overrides of a service's policy, and the policy's worst-case duration (each quantity's unit and
bounds: rollout.policy_fields).

The CLI checks overrides with these functions before it starts anything, and Prepare checks them again
(an execution can be started without the CLI), so both refuse the same input with the same words.
A policy whose worst case exceeds MAX_ROLLOUT_SECONDS is refused with the figure: the execution
timeout and the lock's lease are derived from that bound, so a valid rollout always outlives neither.

Whoever may start a rollout must not be able to loosen its gates, so an override may only move a field the way
that tightens it (`Move`); loosening one is a config change, reviewed and deployed like any other:
- steps may only be added (every configured weight stays, so the canary is judged at each of them at least);
- warm-up and bakes only lengthen; thresholds only get stricter (max rates, ratios, p99 and cost lower, the
  whole bake's minimum requests higher); approval only turns on; alarms are only added;
- consecutive failures, poll, ready and approval timeouts only shorten: each bounds how long the canary keeps
  traffic that nothing judges (a watched alarm or an abort is seen one poll late; while a track becomes ready or
  an approval waits, no judgement runs);
- the bake extensions may move either way: they decide only how long to wait for the minimum requests, which a
  pass needs anyway, and the bake is judged throughout;
- interval length, metric delay and an interval's minimum requests are config only: moved either way they can
  blind the judgement within a bake or slow it (shorter intervals or a higher minimum leave intervals uncounted,
  a lower minimum lets a quiet passing interval reset a failing run, a shorter delay judges figures not yet in).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from rollout.contract import Analysis, Policy
from rollout.policy_fields import FIELDS, Move, value_problems
from tessera_shared.constants import MAX_ROLLOUT_SECONDS


class OverrideError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def flatten(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`{"analysis": {"min_requests": 50}}` and `{"analysis.min_requests": 50}` mean the same."""
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        if key == "analysis" and isinstance(value, Mapping):
            flat |= {f"analysis.{inner}": inner_value for inner, inner_value in value.items()}
        else:
            flat[key] = value
    return flat


def check_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The overrides, flattened, when every key is overridable and every value fits its field."""
    flat = flatten(overrides)
    problems = []
    for key, value in flat.items():
        spec = FIELDS.get(key)
        if spec is None:
            problems.append(f"{key}: not an overridable field; allowed: {', '.join(FIELDS)}")
            continue
        problems.extend(f"{key}: {problem}" for problem in value_problems(key, value))
    if problems:
        raise OverrideError(problems)
    return flat


def policy_problems(policy: Policy) -> list[str]:
    """Where a policy (as settings hold it) falls outside the bounds every quantity has (rollout.policy_fields):
    config cannot produce one, but whoever can write the settings parameter could."""
    values = {**policy.to_json(), **{f"analysis.{key}": value for key, value in policy.analysis.to_json().items()}}
    return [
        f"policy.{key}: {problem}"
        for key in FIELDS
        if values.get(key) is not None
        for problem in value_problems(key, values[key])
    ]


def apply_overrides(policy: Policy, overrides: Mapping[str, Any]) -> Policy:
    """The policy with the overrides applied; refused when an override is invalid, loosens the policy, or the
    result's worst-case duration exceeds MAX_ROLLOUT_SECONDS."""
    flat = check_overrides(overrides)
    loosening = [problem for key, value in flat.items() if (problem := _loosening(key, value, policy))]
    if loosening:
        raise OverrideError(loosening)
    analysis_changes = {key.removeprefix("analysis."): v for key, v in flat.items() if key.startswith("analysis.")}
    changes = {key: value for key, value in flat.items() if not key.startswith("analysis.")}
    analysis: Analysis = dataclasses.replace(policy.analysis, **analysis_changes)
    result = dataclasses.replace(policy, **changes, analysis=analysis)
    check_duration(result)
    return result


def worst_case_seconds(policy: Policy) -> int:
    """The longest a rollout under this policy can run when every wait runs to its limit: the canary's
    readiness and warm-up, per step a resize's readiness and every bake with all its extensions and the
    metric delay waited out after it, the approval, and stable's readiness after promotion (one poll of
    slack per loop)."""
    ready = policy.ready_timeout_seconds + policy.poll_seconds
    analysis = policy.analysis
    bakes = (
        policy.bake_seconds * (1 + analysis.max_bake_extensions) + analysis.metric_delay_seconds + policy.poll_seconds
    )
    approval = policy.approval_timeout_seconds if policy.manual_approval else 0
    return ready + policy.warmup_seconds + len(policy.steps) * (ready + bakes) + approval + ready


def duration_problem(policy: Policy) -> str | None:
    """Why the policy's worst case is longer than a rollout may run, or None."""
    worst = worst_case_seconds(policy)
    if worst <= MAX_ROLLOUT_SECONDS:
        return None
    return (
        f"worst-case duration {worst} s ({worst / 86400:.1f} days) exceeds the {MAX_ROLLOUT_SECONDS} s "
        f"({MAX_ROLLOUT_SECONDS // 86400} days) a rollout may run; shorten bakes, extensions, steps or the approval "
        "timeout"
    )


def check_duration(policy: Policy) -> None:
    problem = duration_problem(policy)
    if problem:
        raise OverrideError([f"policy: {problem}"])


def _loosening(key: str, value: Any, policy: Policy) -> str | None:
    """Why the override moves the field against its Move, or None when it may."""
    move = FIELDS[key].move
    field = key.removeprefix("analysis.")
    configured = getattr(policy.analysis, field) if key.startswith("analysis.") else getattr(policy, key)
    if value == configured or configured is None:  # None: a gate the config leaves off, which any value turns on
        return None
    shown, was = _shown(value), _shown(configured)
    match move:
        case Move.UP if value < configured:
            why = f"{shown} is below the configured {was}: an override may only raise it"
        case Move.DOWN if value > configured:
            why = f"{shown} is above the configured {was}: an override may only lower it"
        case Move.ON if value is False:
            why = f"{shown}, but the service's policy has it on: an override may only turn it on"
        case Move.ADD if left_out := [entry for entry in configured if entry not in value]:
            noun = key.rsplit(".", 1)[-1].removesuffix("s")
            why = (
                f"{shown} leaves out the configured {noun}(s) {', '.join(map(str, left_out))}: "
                f"an override may only add {noun}s"
            )
        case Move.NEVER:
            why = f"{shown} differs from the configured {was}: an override may not change it"
        case _:
            return None
    return f"{key}: {why} ({'changing' if move is Move.NEVER else 'loosening'} it is a config change)"


def _shown(value: Any) -> str:
    if isinstance(value, bool | list):
        return json.dumps(value)
    return f"{value:g}" if isinstance(value, float) else str(value)
