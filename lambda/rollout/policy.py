"""Per-rollout overrides of a service's policy, and the policy's worst-case duration.

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
import itertools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from rollout.contract import Analysis, Policy
from tessera_shared.constants import MAX_ROLLOUT_SECONDS

ALARM_NAME = re.compile(r"^[\w .\-/#:()+=@]{1,255}$")


class OverrideError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Move(Enum):
    """Which way an override may move a field from the service's configured value (an equal value always may)."""

    UP = "may only rise"
    DOWN = "may only fall"
    ON = "may only be turned on"
    ADD = "may only be added to"  # a list that must keep every configured entry
    EITHER = "either way"  # not a gate
    NEVER = "config only"


@dataclass(frozen=True)
class Field:
    """One overridable field: what it holds, in which unit, its range, and which way an override may move it."""

    kind: type
    unit: str
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the bound itself is not allowed
    multiple_of: int | None = None
    move: Move = Move.NEVER  # a field nobody has decided about stays with the config


FIELDS: dict[str, Field] = {
    "steps": Field(list, "percent", "canary weights of the steps, rising, each 1-100", 1, 100, move=Move.ADD),
    "warmup_seconds": Field(int, "seconds", "canary at 0 % traffic before the first step", 0, 7200, move=Move.UP),
    "bake_seconds": Field(int, "seconds", "time at each step before its final judgement", 1, 43200, move=Move.UP),
    "poll_seconds": Field(int, "seconds", "how often readiness, warm-up and bake are checked", 1, 300, move=Move.DOWN),
    "manual_approval": Field(bool, "", "wait for `tessera rollout approve` before promotion", move=Move.ON),
    "approval_timeout_seconds": Field(int, "seconds", "how long an approval may take", 60, 604800, move=Move.DOWN),
    "ready_timeout_seconds": Field(
        int, "seconds", "how long a track may take to become ready", 10, 14400, move=Move.DOWN
    ),
    "analysis.max_5xx_rate_percent": Field(
        float, "percent", "ceiling of the canary's 5xx rate", 0, 100, True, move=Move.DOWN
    ),
    "analysis.max_5xx_ratio_vs_stable": Field(
        float, "ratio", "canary 5xx rate at most this x stable's", 1, None, True, move=Move.DOWN
    ),
    "analysis.max_p99_seconds": Field(
        float, "seconds", "ceiling of the canary's p99 response time", 0, 600, True, move=Move.DOWN
    ),
    "analysis.max_p99_ratio_vs_stable": Field(
        float, "ratio", "canary p99 at most this x stable's", 1, None, True, move=Move.DOWN
    ),
    "analysis.min_requests": Field(int, "requests", "canary requests a judgement needs", 1, 10**9, move=Move.UP),
    "analysis.max_bake_extensions": Field(int, "count", "bakes added while data is short", 0, 20, move=Move.EITHER),
    "analysis.alarms": Field(list, "names", "CloudWatch alarms whose ALARM state rolls back", move=Move.ADD),
    "analysis.interval_seconds": Field(
        int, "seconds", "how often the canary is judged within a bake, whole minutes", 60, 3600, multiple_of=60
    ),
    "analysis.metric_delay_seconds": Field(int, "seconds", "how late load balancer metrics arrive", 0, 900),
    "analysis.consecutive_failures": Field(
        int, "count", "failing intervals in a row that roll back", 1, 10, move=Move.DOWN
    ),
    "analysis.min_requests_per_interval": Field(
        int, "requests", "canary requests an interval needs to count", 1, 10**9
    ),
    "analysis.max_cost_ratio_vs_stable": Field(
        float, "ratio", "canary cost per million requests at most this x stable's", 0, 1000, True, move=Move.DOWN
    ),
}


def describe_fields() -> str:
    """The overridable keys with units, ranges and the way an override may move them, for `--help` and
    docs/rollouts.md."""
    lines = []
    for name, spec in FIELDS.items():
        low = "" if spec.low is None else f"{'>' if spec.low_open else '>='}{spec.low:g}"
        high = "" if spec.high is None else f"<={spec.high:g}"
        bounds = ", ".join(part for part in (low, high) if part)
        unit = f" [{spec.unit}]" if spec.unit else ""
        lines.append(f"  {name}{unit} ({'; '.join(part for part in (bounds, spec.move.value) if part)}): {spec.help}")
    return "\n".join(lines)


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
        problems.extend(f"{key}: {problem}" for problem in _check(key, spec, value))
    if problems:
        raise OverrideError(problems)
    return flat


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


def check_duration(policy: Policy) -> None:
    worst = worst_case_seconds(policy)
    if worst > MAX_ROLLOUT_SECONDS:
        raise OverrideError(
            [
                f"policy: worst-case duration {worst} s ({worst / 86400:.1f} days) exceeds the "
                f"{MAX_ROLLOUT_SECONDS} s ({MAX_ROLLOUT_SECONDS // 86400} days) a rollout may run; "
                "shorten bakes, extensions, steps or the approval timeout"
            ]
        )


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


def _check(key: str, spec: Field, value: Any) -> list[str]:
    checks: dict[type, Callable[[], list[str]]] = {
        bool: lambda: [] if isinstance(value, bool) else [f"expected true or false, got {value!r}"],
        int: lambda: _number(spec, value, integer=True),
        float: lambda: _number(spec, value, integer=False),
        list: lambda: _steps(spec, value) if key == "steps" else _alarms(value),
    }
    return checks[spec.kind]()


def _number(spec: Field, value: Any, *, integer: bool) -> list[str]:
    number_types = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, number_types):
        expected = "a whole number" if integer else "a number"
        return [f"expected {expected} of {spec.unit}, got {value!r}"]
    low_ok = spec.low is None or (value > spec.low if spec.low_open else value >= spec.low)
    high_ok = spec.high is None or value <= spec.high
    if low_ok and high_ok:
        if spec.multiple_of and value % spec.multiple_of:
            return [f"{value!r} must be a multiple of {spec.multiple_of} {spec.unit}"]
        return []
    low = "" if spec.low is None else f"{'above' if spec.low_open else 'at least'} {spec.low:g}"
    high = "" if spec.high is None else f"at most {spec.high:g}"
    return [f"{value!r} is out of range: must be {' and '.join(part for part in (low, high) if part)} {spec.unit}"]


def _steps(spec: Field, value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        return [f"expected a non-empty list of percentages, got {value!r}"]
    if any(isinstance(step, bool) or not isinstance(step, int) for step in value):
        return [f"every step is a whole percentage, got {value!r}"]
    problems = []
    if any(not spec.low <= step <= spec.high for step in value):
        problems.append(f"each step is a canary weight from 1 to 100, got {value}")
    if any(later <= earlier for earlier, later in itertools.pairwise(value)):
        problems.append(f"steps must rise, got {value}")
    return problems


def _alarms(value: Any) -> list[str]:
    if not isinstance(value, list) or any(not isinstance(name, str) or not ALARM_NAME.match(name) for name in value):
        return [f"expected a list of CloudWatch alarm names, got {value!r}"]
    return []
