"""Config models of a service's rollout policy: how traffic moves to a new model version and how
the canary is judged against stable on the way. `as_contract` turns it into the rollout engine's typed
Policy (in seconds). Each quantity's unit, bounds and meaning come from rollout.policy_fields.FIELDS, which also
says which can be overridden for one rollout and which way."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from rollout.contract import Analysis, Policy
from rollout.policy_fields import FIELDS, value_problems
from stacks.config.base import StrictModel, raise_if_any

DEFAULT_POLL_SECONDS = 30


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


def policy_field(key: str, default: Any, *, note: str = "") -> Any:
    """A config field whose bounds and meaning are the policy quantity `key`'s, in the config's unit."""
    spec = FIELDS[key]
    scale = spec.config_scale
    bounded = spec.kind is not list  # a list's bounds apply to its items: checked by value_problems

    def bound(value: float | None) -> float | None:
        return _in_config_unit(value, scale) if bounded and value is not None else None

    unit = "minutes" if scale == 60 else spec.unit
    description = spec.help[0].upper() + spec.help[1:] + (f" [{unit}]" if unit else "") + (f". {note}" if note else "")
    return Field(
        default,
        description=description,
        gt=bound(spec.low) if spec.low_open else None,
        ge=None if spec.low_open else bound(spec.low),
        le=bound(spec.high),
        multiple_of=bound(spec.multiple_of),
    )


def _in_config_unit(value: float, scale: int) -> float:
    converted = value / scale
    return int(converted) if converted.is_integer() else converted


def contract_value(key: str, value: Any) -> Any:
    """A config value in the contract's unit: the one conversion (minutes to seconds)."""
    return value * FIELDS[key].config_scale


class AnalysisSpec(StrictModel):
    max_5xx_rate_percent: float = policy_field("analysis.max_5xx_rate_percent", 1.0)
    max_5xx_ratio_vs_stable: float = policy_field("analysis.max_5xx_ratio_vs_stable", 2.0)
    max_p99_seconds: float = policy_field("analysis.max_p99_seconds", 10.0)
    max_p99_ratio_vs_stable: float = policy_field("analysis.max_p99_ratio_vs_stable", 1.5)
    extra_metrics: list[ExtraMetric] = Field(default_factory=list)
    min_requests: int = policy_field("analysis.min_requests", 200)
    max_bake_extensions: int = policy_field("analysis.max_bake_extensions", 2)
    alarms: list[str] = policy_field("analysis.alarms", [])
    interval_seconds: int = policy_field("analysis.interval_seconds", 60)
    metric_delay_seconds: int = policy_field("analysis.metric_delay_seconds", 120)
    consecutive_failures: int = policy_field("analysis.consecutive_failures", 2)
    min_requests_per_interval: int = policy_field("analysis.min_requests_per_interval", 20)
    max_cost_ratio_vs_stable: float | None = policy_field(
        "analysis.max_cost_ratio_vs_stable",
        None,
        note="Unset, cost is recorded but not judged; set, a judgement without both tracks' cost has not enough data",
    )
    # The serving runtime's figures: judged only for a service with `metrics`.
    max_ttft_p99_seconds: float = policy_field("analysis.max_ttft_p99_seconds", 30.0)
    max_ttft_p50_ratio_vs_stable: float = policy_field("analysis.max_ttft_p50_ratio_vs_stable", 1.2)
    max_ttft_p99_ratio_vs_stable: float = policy_field("analysis.max_ttft_p99_ratio_vs_stable", 1.2)
    max_tpot_p99_ratio_vs_stable: float = policy_field("analysis.max_tpot_p99_ratio_vs_stable", 1.2)
    max_e2e_p99_ratio_vs_stable: float = policy_field("analysis.max_e2e_p99_ratio_vs_stable", 1.2)
    max_runtime_error_rate_percent: float = policy_field("analysis.max_runtime_error_rate_percent", 1.0)
    min_runtime_samples: int = policy_field("analysis.min_runtime_samples", 100)
    min_runtime_samples_per_interval: int = policy_field("analysis.min_runtime_samples_per_interval", 10)

    @field_validator("alarms")
    @classmethod
    def _alarm_names(cls, names: list[str]) -> list[str]:
        return _valid("analysis.alarms", names)


def _valid(key: str, value: Any) -> Any:
    raise_if_any(value_problems(key, value))
    return value


class RolloutPolicy(StrictModel):
    """`canary`: one small step, then all. `linear`: equal steps. `all_at_once`: cut over, then bake."""

    strategy: Literal["canary", "linear", "all_at_once"] = "canary"
    canary_percent: int = Field(10, ge=1, le=50, description="Traffic to the canary in its single step.")
    linear_step_percent: int = Field(25, ge=5, le=50, description="Traffic added per linear step.")
    steps: list[int] | None = policy_field("steps", None, note="Overrides the strategy's")
    warmup_minutes: int = policy_field("warmup_seconds", 5, note="The canary serves no traffic but must stay healthy")
    bake_minutes: int = policy_field("bake_seconds", 10)
    analysis: AnalysisSpec = AnalysisSpec()
    manual_approval: bool = policy_field("manual_approval", False)
    approval_timeout_minutes: int = policy_field("approval_timeout_seconds", 240)
    auto_start: bool = Field(False, description="Start a rollout when a version of this service is registered.")
    watch_service_alarms: bool = Field(
        True,
        description="Roll back when the service's composite alarm (`tessera-<env>-<service>`: 5xx rate, p99 latency, "
        "no healthy targets, pods pending) is in ALARM, besides `analysis.alarms`; overrides cannot drop it.",
    )

    @field_validator("steps")
    @classmethod
    def _rising(cls, steps: list[int] | None) -> list[int] | None:
        return steps if steps is None else _valid("steps", steps)

    @model_validator(mode="after")
    def _explicit_steps_match_strategy(self) -> RolloutPolicy:
        if self.steps is not None and self.strategy == "all_at_once" and self.steps != [100]:
            raise ValueError("steps: all_at_once has the single step [100]")
        return self

    def as_contract(self, *, ready_timeout_seconds: int) -> Policy:
        return Policy(
            steps=self.weights,
            warmup_seconds=contract_value("warmup_seconds", self.warmup_minutes),
            bake_seconds=contract_value("bake_seconds", self.bake_minutes),
            poll_seconds=DEFAULT_POLL_SECONDS,
            manual_approval=self.manual_approval,
            approval_timeout_seconds=contract_value("approval_timeout_seconds", self.approval_timeout_minutes),
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
