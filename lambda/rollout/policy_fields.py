"""The one definition of a rollout policy's quantities: what each holds, its unit and bounds, the config field that
sets it (and the factor from the config's unit), and which way a per-rollout override may move it.

Config validation (stacks/config/rollout.py builds its fields from this table), the override checks
(rollout.policy) and Prepare's check of the settings it reads (`policy_problems`) all take their bounds from here,
so a quantity cannot be allowed in one place and refused in another. Config speaks minutes for the long waits;
`config_scale` is the one conversion to the contract's seconds.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

ALARM_NAME_PATTERN = r"^[\w .\-/#:()+=@]{1,255}$"
_ALARM_NAME = re.compile(ALARM_NAME_PATTERN)


class Move(Enum):
    """Which way an override may move a field from the service's configured value (an equal value always may)."""

    UP = "may only rise"
    DOWN = "may only fall"
    ON = "may only be turned on"
    ADD = "may only be added to"  # a list that must keep every configured entry
    EITHER = "either way"  # not a gate
    NEVER = "config only"


@dataclass(frozen=True)
class PolicyField:
    """One quantity of a policy: what it holds, in which unit, its range, the config field that sets it (None: not
    set by a service's `rollout` config), and which way an override may move it."""

    kind: type
    unit: str
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the bound itself is not allowed
    multiple_of: int | None = None
    move: Move = Move.NEVER  # a field nobody has decided about stays with the config
    config_key: str | None = None
    config_scale: int = 1  # config value x this = the contract's value (60: config in minutes, contract in seconds)


def _configured(
    key: str,
    kind: type,
    unit: str,
    help: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    *,
    multiple_of: int | None = None,
    move: Move = Move.NEVER,
) -> PolicyField:
    """A field config sets under the same name (the analysis fields: `analysis.<name>` -> `<name>`)."""
    config_key = key.removeprefix("analysis.")
    return PolicyField(kind, unit, help, low, high, low_open, multiple_of, move, config_key=config_key)


def _in_minutes(key: str, unit_help: str, low: int, high: int, move: Move) -> PolicyField:
    """A wait config sets in whole minutes (`<name>_minutes`) and the contract holds in seconds."""
    return PolicyField(
        int, "seconds", unit_help, low, high, move=move, config_key=key.replace("_seconds", "_minutes"), config_scale=60
    )


def _ratio(key: str, help: str) -> PolicyField:
    """A tolerance against stable's figure on a serving runtime's latency: above 1, may only tighten."""
    return _configured(key, float, "ratio", help, 1, 100, True, move=Move.DOWN)


FIELDS: dict[str, PolicyField] = {
    "steps": _configured(
        "steps", list, "percent", "canary weights of the steps, rising, each 1-100", 1, 100, move=Move.ADD
    ),
    "warmup_seconds": _in_minutes("warmup_seconds", "canary at 0 % traffic before the first step", 0, 7200, Move.UP),
    "bake_seconds": _in_minutes("bake_seconds", "time at each step before its final judgement", 60, 43200, Move.UP),
    "poll_seconds": PolicyField(
        int, "seconds", "how often readiness, warm-up and bake are checked", 1, 300, move=Move.DOWN
    ),
    "manual_approval": _configured(
        "manual_approval", bool, "", "wait for `tessera rollout approve` before promotion", move=Move.ON
    ),
    "approval_timeout_seconds": _in_minutes(
        "approval_timeout_seconds", "how long an approval may take", 60, 604800, Move.DOWN
    ),
    "ready_timeout_seconds": PolicyField(
        int, "seconds", "how long a track may take to become ready", 10, 14400, move=Move.DOWN
    ),
    "analysis.max_5xx_rate_percent": _configured(
        "analysis.max_5xx_rate_percent",
        float,
        "percent",
        "ceiling of the canary's 5xx rate",
        0,
        100,
        True,
        move=Move.DOWN,
    ),
    "analysis.max_5xx_ratio_vs_stable": _configured(
        "analysis.max_5xx_ratio_vs_stable",
        float,
        "ratio",
        "canary 5xx rate at most this x stable's",
        1,
        None,
        True,
        move=Move.DOWN,
    ),
    "analysis.max_p99_seconds": _configured(
        "analysis.max_p99_seconds",
        float,
        "seconds",
        "ceiling of the canary's p99 response time",
        0,
        600,
        True,
        move=Move.DOWN,
    ),
    "analysis.max_p99_ratio_vs_stable": _configured(
        "analysis.max_p99_ratio_vs_stable",
        float,
        "ratio",
        "canary p99 at most this x stable's",
        1,
        None,
        True,
        move=Move.DOWN,
    ),
    "analysis.min_requests": _configured(
        "analysis.min_requests",
        int,
        "requests",
        "canary requests a whole bake's judgement needs",
        1,
        10**9,
        move=Move.UP,
    ),
    "analysis.max_bake_extensions": _configured(
        "analysis.max_bake_extensions",
        int,
        "count",
        "bakes added while data is short, before the rollout fails",
        0,
        20,
        move=Move.EITHER,
    ),
    "analysis.alarms": _configured(
        "analysis.alarms", list, "names", "CloudWatch alarms whose ALARM state rolls back", move=Move.ADD
    ),
    "analysis.interval_seconds": _configured(
        "analysis.interval_seconds",
        int,
        "seconds",
        "how often the canary is judged within a bake, whole minutes (load balancer metrics come per minute)",
        60,
        3600,
        multiple_of=60,
    ),
    "analysis.metric_delay_seconds": _configured(
        "analysis.metric_delay_seconds",
        int,
        "seconds",
        "how late load balancer metrics arrive: a judged window ends this long before now",
        0,
        900,
    ),
    "analysis.consecutive_failures": _configured(
        "analysis.consecutive_failures",
        int,
        "count",
        "failing intervals in a row that roll back (a watched alarm rolls back at once)",
        1,
        10,
        move=Move.DOWN,
    ),
    "analysis.min_requests_per_interval": _configured(
        "analysis.min_requests_per_interval",
        int,
        "requests",
        "canary requests an interval needs to count (fewer neither adds to a failing run nor resets it)",
        1,
        10**9,
    ),
    "analysis.max_cost_ratio_vs_stable": _configured(
        "analysis.max_cost_ratio_vs_stable",
        float,
        "ratio",
        "canary cost per million requests at most this x stable's (below 1: the canary must be cheaper)",
        0,
        1000,
        True,
        move=Move.DOWN,
    ),
    # The serving runtime's figures (rollout.runtime_judge), judged only for a service with `metrics`.
    "analysis.max_ttft_p99_seconds": _configured(
        "analysis.max_ttft_p99_seconds",
        float,
        "seconds",
        "ceiling of the canary's p99 time to first token (serving runtime)",
        0,
        600,
        True,
        move=Move.DOWN,
    ),
    "analysis.max_ttft_p50_ratio_vs_stable": _ratio(
        "analysis.max_ttft_p50_ratio_vs_stable", "canary p50 time to first token at most this x stable's"
    ),
    "analysis.max_ttft_p99_ratio_vs_stable": _ratio(
        "analysis.max_ttft_p99_ratio_vs_stable", "canary p99 time to first token at most this x stable's"
    ),
    "analysis.max_tpot_p99_ratio_vs_stable": _ratio(
        "analysis.max_tpot_p99_ratio_vs_stable", "canary p99 time per output token at most this x stable's"
    ),
    "analysis.max_e2e_p99_ratio_vs_stable": _ratio(
        "analysis.max_e2e_p99_ratio_vs_stable", "canary p99 end-to-end request latency at most this x stable's"
    ),
    "analysis.max_runtime_error_rate_percent": _configured(
        "analysis.max_runtime_error_rate_percent",
        float,
        "percent",
        "ceiling of the share of requests the serving runtime ended in error",
        0,
        100,
        True,
        move=Move.DOWN,
    ),
    "analysis.min_runtime_samples": _configured(
        "analysis.min_runtime_samples",
        int,
        "requests",
        "canary requests with a first token the runtime figures of a whole bake need",
        1,
        10**9,
        move=Move.UP,
    ),
    "analysis.min_runtime_samples_per_interval": _configured(
        "analysis.min_runtime_samples_per_interval",
        int,
        "requests",
        "canary requests with a first token an interval's runtime figures need",
        1,
        10**9,
    ),
}


def describe_fields() -> str:
    """The overridable keys with units, ranges and the way an override may move them, for `--help` and
    docs/rollouts.md."""
    lines = []
    for name, spec in FIELDS.items():
        low = "" if spec.low is None else f"{'>' if spec.low_open else '>='}{_shown(spec.low)}"
        high = "" if spec.high is None else f"<={_shown(spec.high)}"
        bounds = ", ".join(part for part in (low, high) if part)
        unit = f" [{spec.unit}]" if spec.unit else ""
        lines.append(f"  {name}{unit} ({'; '.join(part for part in (bounds, spec.move.value) if part)}): {spec.help}")
    return "\n".join(lines)


def _shown(bound: float) -> str:
    """A bound as written in the table (10**9 in full, not 1e+09)."""
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def value_problems(key: str, value: Any) -> list[str]:
    """Why `value` does not fit the quantity `key` (in the contract's unit); empty when it does."""
    spec = FIELDS[key]
    checks: dict[type, Callable[[], list[str]]] = {
        bool: lambda: [] if isinstance(value, bool) else [f"expected true or false, got {value!r}"],
        int: lambda: _number(spec, value, integer=True),
        float: lambda: _number(spec, value, integer=False),
        list: lambda: _steps(spec, value) if key == "steps" else _alarms(value),
    }
    return checks[spec.kind]()


def _number(spec: PolicyField, value: Any, *, integer: bool) -> list[str]:
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
    low = "" if spec.low is None else f"{'above' if spec.low_open else 'at least'} {_shown(spec.low)}"
    high = "" if spec.high is None else f"at most {_shown(spec.high)}"
    return [f"{value!r} is out of range: must be {' and '.join(part for part in (low, high) if part)} {spec.unit}"]


def _steps(spec: PolicyField, value: Any) -> list[str]:
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
    if not isinstance(value, list) or any(not isinstance(name, str) or not _ALARM_NAME.match(name) for name in value):
        return [f"expected a list of CloudWatch alarm names, got {value!r}"]
    return []
