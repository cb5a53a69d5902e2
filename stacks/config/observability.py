"""Config models of what watches a service and what sizes it: its alarms (thresholds with defaults that
page on what users feel), the environment's own alarms, and the signal the stable track scales on."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from stacks.config.base import StrictModel

ScalingSignal = Literal["cpu", "requests_per_target", "neuroncore_utilization"]

# Bounds of a sensible target per signal: (low, high, what the number means).
SIGNAL_TARGETS: dict[str, tuple[float, float, str]] = {
    "cpu": (10, 95, "average CPU utilization of the stable pods, in percent"),
    "requests_per_target": (1, 1_000_000, "requests per stable pod per minute"),
    "neuroncore_utilization": (10, 100, "average NeuronCore utilization of the stable pods, in percent"),
}


class ServiceAlarms(StrictModel):
    """Thresholds of a service's alarms; each alarm reads one-minute periods and fires when `breaching_minutes`
    of the last `evaluation_minutes` breach."""

    five_xx_rate_percent: float = Field(
        5.0,
        gt=0,
        le=100,
        description="Target 5xx plus connection errors (both tracks) as a percentage of the service's requests.",
    )
    min_requests_per_minute: int = Field(
        20, ge=1, description="Below this many requests in a minute, the 5xx rate is not evaluated (reads 0)."
    )
    p99_latency_seconds: float = Field(
        10.0, gt=0, le=3600, description="p99 target response time of the worse track (canary only while it serves)."
    )
    evaluation_minutes: int = Field(5, ge=1, le=60, description="Window of recent minutes each alarm looks at.")
    breaching_minutes: int = Field(3, ge=1, le=60, description="Minutes of that window that must breach.")
    no_healthy_targets_minutes: int = Field(
        3, ge=1, le=60, description="Consecutive minutes the stable target group has no healthy target."
    )

    @model_validator(mode="after")
    def _window_holds_breaches(self) -> ServiceAlarms:
        if self.breaching_minutes > self.evaluation_minutes:
            raise ValueError(
                f"breaching_minutes: {self.breaching_minutes} exceeds evaluation_minutes {self.evaluation_minutes}"
            )
        return self


class ScalingSpec(StrictModel):
    """What the stable track scales on (KEDA), between `replicas.min` and `replicas.max`. Without it the stable
    track keeps a CPU HorizontalPodAutoscaler at `cpu_target_percent`.

    Never to zero: none of these signals can wake a service at zero pods (the load balancer counts a request
    for a target group only once it picked a target; pods that do not exist publish no utilization)."""

    signal: ScalingSignal = Field(
        description="cpu (metrics-server), requests_per_target (load balancer RequestCount of the stable target "
        "group) or neuroncore_utilization (Container Insights pod_neuroncore_utilization; Neuron services only)."
    )
    target: float = Field(
        gt=0,
        description="cpu and neuroncore_utilization: percent; requests_per_target: requests per pod per minute.",
    )

    @model_validator(mode="after")
    def _target_in_range(self) -> ScalingSpec:
        low, high, meaning = SIGNAL_TARGETS[self.signal]
        if not low <= self.target <= high:
            raise ValueError(f"target: {self.target:g} is out of {low:g}-{high:g} ({meaning})")
        return self


class ObservabilityConfig(StrictModel):
    """Alarms that belong to the environment rather than one service."""

    load_balancer_5xx_rate_percent: float = Field(
        5.0,
        gt=0,
        le=100,
        description="The load balancer's own 5xx (502/503/504, all services together) as a percentage of its "
        "requests, over 3 of 5 minutes.",
    )
    neuron_execution_errors: int = Field(
        10,
        ge=1,
        description="Neuron execution errors across all Neuron nodes of the cluster in 5 minutes, two periods in a "
        "row (published per node only; no service can be named).",
    )
