"""Config models of a service's rollout policy: how traffic moves to a new model version and how
the canary is judged against stable on the way. `as_contract` turns it into the rollout engine's typed
Policy (in seconds); the fields listed by rollout.policy.FIELDS can be overridden for one rollout."""

from __future__ import annotations

import itertools
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from rollout.contract import Analysis, Policy
from stacks.config.base import StrictModel, raise_if_any

DEFAULT_POLL_SECONDS = 30

ALARM_NAME_PATTERN = r"^[\w .\-/#:()+=@]{1,255}$"


class ExtraMetric(StrictModel):
    """A CloudWatch metric the canary is judged on, e.g. time to first token published by the server."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,40}$", description="Label in reports and overrides.")
    namespace: str = Field(min_length=1, max_length=255)
    metric_name: str = Field(min_length=1, max_length=255)
    statistic: str = Field("Average", pattern=r"^(Average|Sum|Minimum|Maximum|SampleCount|p99)$")
    dimensions: dict[str, str] = Field(
        default_factory=dict,
        description="Dimension values may use {service}, {track} and {target_group}; both tracks are read.",
    )
    threshold: float = Field(description="Absolute limit of the canary's value.")
    direction: Literal["lower_is_better", "higher_is_better"] = "lower_is_better"
    max_ratio_vs_stable: float | None = Field(None, gt=1.0, description="How much worse than stable is tolerated.")


class AnalysisSpec(StrictModel):
    max_5xx_rate_percent: float = Field(1.0, gt=0, le=100, description="Absolute ceiling of the canary's 5xx rate.")
    max_5xx_ratio_vs_stable: float = Field(2.0, gt=1.0, description="Canary 5xx rate at most this times stable's.")
    max_p99_seconds: float = Field(10.0, gt=0, description="Absolute ceiling of the canary's p99 response time.")
    max_p99_ratio_vs_stable: float = Field(1.5, gt=1.0, description="Canary p99 at most this times stable's.")
    extra_metrics: list[ExtraMetric] = Field(default_factory=list)
    min_requests: int = Field(200, ge=1, description="A judgement needs at least this many canary requests.")
    max_bake_extensions: int = Field(
        2, ge=0, le=20, description="Bakes added when there is not enough data, before the rollout fails."
    )
    alarms: list[str] = Field(default_factory=list, description="CloudWatch alarms whose ALARM state rolls back.")
    interval_seconds: int = Field(
        60,
        ge=60,
        le=3600,
        multiple_of=60,
        description="How often the canary is judged within a bake (load balancer metrics come per minute).",
    )
    metric_delay_seconds: int = Field(
        120,
        ge=0,
        le=900,
        description="How late CloudWatch's load balancer metrics arrive: a judged window ends this long before now.",
    )
    consecutive_failures: int = Field(
        2, ge=1, le=10, description="Failing intervals in a row that roll back (a watched alarm rolls back at once)."
    )
    min_requests_per_interval: int = Field(
        20, ge=1, description="An interval with fewer canary requests neither counts towards a failure nor resets one."
    )
    max_cost_ratio_vs_stable: float | None = Field(
        None,
        gt=0,
        le=1000,
        description="Canary cost per million requests at most this times stable's (below 1: the canary must be "
        "cheaper); unset, cost is recorded but not judged. Set, a judgement without both tracks' cost has not "
        "enough data.",
    )

    @field_validator("alarms")
    @classmethod
    def _alarm_names(cls, names: list[str]) -> list[str]:
        raise_if_any(
            [
                f"[{index}] {name!r} is not a CloudWatch alarm name"
                for index, name in enumerate(names)
                if not re.match(ALARM_NAME_PATTERN, name)
            ]
        )
        return names


class RolloutPolicy(StrictModel):
    """`canary`: one small step, then all. `linear`: equal steps. `all_at_once`: cut over, then bake."""

    strategy: Literal["canary", "linear", "all_at_once"] = "canary"
    canary_percent: int = Field(10, ge=1, le=50, description="Traffic to the canary in its single step.")
    linear_step_percent: int = Field(25, ge=5, le=50, description="Traffic added per linear step.")
    steps: list[int] | None = Field(
        None, description="Explicit canary weights in percent, rising; overrides the strategy's."
    )
    warmup_minutes: int = Field(5, ge=0, le=120, description="Canary serves no traffic but must stay healthy.")
    bake_minutes: int = Field(10, ge=1, le=720, description="Time at each step before it is judged.")
    analysis: AnalysisSpec = AnalysisSpec()
    manual_approval: bool = Field(False, description="Wait for `tessera rollout approve` before promotion.")
    approval_timeout_minutes: int = Field(240, ge=1, le=10080)
    auto_start: bool = Field(False, description="Start a rollout when a version of this service is registered.")
    watch_service_alarms: bool = Field(
        True,
        description="Roll back when the service's composite alarm (`tessera-<env>-<service>`: 5xx rate, p99 latency, "
        "no healthy targets, pods pending) is in ALARM, besides `analysis.alarms`; overrides cannot drop it.",
    )

    @field_validator("steps")
    @classmethod
    def _rising(cls, steps: list[int] | None) -> list[int] | None:
        if steps is None:
            return None
        problems = []
        if not steps:
            problems.append("give at least one step")
        if any(not 1 <= step <= 100 for step in steps):
            problems.append("each step is a canary weight from 1 to 100")
        if any(later <= earlier for earlier, later in itertools.pairwise(steps)):
            problems.append(f"steps must rise, got {steps}")
        raise_if_any(problems)
        return steps

    @model_validator(mode="after")
    def _explicit_steps_match_strategy(self) -> RolloutPolicy:
        if self.steps is not None and self.strategy == "all_at_once" and self.steps != [100]:
            raise ValueError("steps: all_at_once has the single step [100]")
        return self

    def as_contract(self, *, ready_timeout_seconds: int) -> Policy:
        return Policy(
            steps=self.weights,
            warmup_seconds=self.warmup_minutes * 60,
            bake_seconds=self.bake_minutes * 60,
            poll_seconds=DEFAULT_POLL_SECONDS,
            manual_approval=self.manual_approval,
            approval_timeout_seconds=self.approval_timeout_minutes * 60,
            ready_timeout_seconds=ready_timeout_seconds,
            # The config's analysis fields are the contract's: the contract's own parser checks the copy.
            analysis=Analysis.from_json(self.analysis.model_dump(), where="analysis"),
        )

    @property
    def weights(self) -> list[int]:
        """The canary weight of every step; after the last one passes, stable takes the version."""
        if self.steps is not None:
            return list(self.steps)
        if self.strategy == "all_at_once":
            return [100]
        if self.strategy == "canary":
            return [self.canary_percent]
        return [*list(range(self.linear_step_percent, 100, self.linear_step_percent)), 100]
