"""Config models of what watches a service and what sizes it: its alarms (thresholds with defaults that
page on what users feel), the environment's own alarms, and the signal the stable track scales on."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from stacks.config.base import StrictModel

ScalingSignal = Literal[
    "cpu", "requests_per_target", "neuroncore_utilization", "waiting_requests_per_pod", "kv_cache_usage_percent"
]
# Signals read from the serving runtime's own metrics (the environment's Prometheus workspace): a service needs
# `metrics` to scale on them.
RUNTIME_SIGNALS = frozenset({"waiting_requests_per_pod", "kv_cache_usage_percent"})

# Bounds of a sensible target per signal: (low, high, what the number means).
SIGNAL_TARGETS: dict[str, tuple[float, float, str]] = {
    "cpu": (10, 95, "average CPU utilization of the stable pods, in percent"),
    "requests_per_target": (1, 1_000_000, "requests per stable pod per minute"),
    "neuroncore_utilization": (10, 100, "average NeuronCore utilization of the stable pods, in percent"),
    "waiting_requests_per_pod": (1, 10_000, "requests waiting in the serving runtime's queue per stable pod"),
    "kv_cache_usage_percent": (10, 100, "average KV-cache usage of the stable pods, in percent"),
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
        "group), neuroncore_utilization (Container Insights pod_neuroncore_utilization; Neuron services only), "
        "waiting_requests_per_pod or kv_cache_usage_percent (the serving runtime's own gauges through the "
        "environment's Prometheus workspace; services with `metrics` only)."
    )
    target: float = Field(
        gt=0,
        description="cpu, neuroncore_utilization and kv_cache_usage_percent: percent; requests_per_target: requests "
        "per pod per minute; waiting_requests_per_pod: queued requests per pod.",
    )

    @model_validator(mode="after")
    def _target_in_range(self) -> ScalingSpec:
        low, high, meaning = SIGNAL_TARGETS[self.signal]
        if not low <= self.target <= high:
            raise ValueError(f"target: {self.target:g} is out of {low:g}-{high:g} ({meaning})")
        return self


RuntimeName = Literal["vllm"]


class RuntimeMetricsSpec(StrictModel):
    """Where the serving runtime publishes its Prometheus metrics, which the environment's managed collector
    scrapes from every pod of the service. With it, the canary is judged on the runtime's own latency figures
    (time to first token, per output token) besides the load balancer's, and the service may scale on its queue."""

    runtime: RuntimeName = Field(
        "vllm", description="Whose metric names apply: vllm (the OpenAI-compatible server's `vllm:` metrics)."
    )
    port: int | None = Field(
        None, ge=1024, le=65535, description="Container port of the metrics endpoint; default: the service's port."
    )
    path: str = Field("/metrics", pattern=r"^/[A-Za-z0-9/._-]{0,100}$", description="HTTP path of the endpoint.")


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
    scrape_interval_seconds: int = Field(
        30,
        ge=30,
        le=300,
        description="How often the managed Prometheus collector scrapes the serving pods of services with `metrics` "
        "(an AWS managed collector takes no interval under 30 s: AMP user guide, scraper limitations).",
    )
