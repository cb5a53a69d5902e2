"""The serving runtimes' Prometheus metrics Tessera reads, and the one place their PromQL is written: the canary
judge's per-track figures (rollout.runtime_figures) and KEDA's queue triggers (stacks/services/scaling_objects.py)
both build their queries here, and the managed collector's scrape configuration attaches the series labels below.

A runtime's series carry only its own labels (vLLM: `model_name`, `engine`); the collector adds the pod's
namespace, name, service and track from Kubernetes service discovery (`SERIES_LABELS`), which is what tells
the tracks apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Series label -> the Kubernetes service discovery meta label the scrape configuration copies it from.
NAMESPACE_LABEL = "namespace"
POD_LABEL = "pod"
SERVICE_LABEL = "service"
TRACK_LABEL = "track"
SERIES_LABELS = {
    NAMESPACE_LABEL: "__meta_kubernetes_namespace",
    POD_LABEL: "__meta_kubernetes_pod_name",
    # Prometheus turns a pod label's unsupported characters into '_': tessera.dev/service -> tessera_dev_service.
    SERVICE_LABEL: "__meta_kubernetes_pod_label_tessera_dev_service",
    TRACK_LABEL: "__meta_kubernetes_pod_label_tessera_dev_track",
}

_LABEL_VALUE = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class RuntimeMetricNames:
    """One serving runtime's metric names (as exposed, counters with `_total`) and what they mean."""

    runtime: str
    source: str  # where the names were read
    keep: str  # regex of the series the collector keeps (the rest of the endpoint is dropped at scrape)
    ttft: str  # time to first token: histogram, seconds
    tpot: str  # time per output token: histogram, seconds between two output tokens of a request
    e2e_latency: str  # histogram, seconds from arrival to the last token
    finished_requests: str  # counter by `finished_reason`
    finished_reason_label: str
    error_reasons: tuple[str, ...]  # the finished reasons the runtime counts as its own failures
    output_tokens: str  # counter
    waiting_requests: str  # gauge, per engine
    kv_cache_usage: str  # gauge, fraction 0-1, per engine


VLLM = RuntimeMetricNames(
    runtime="vllm",
    source="vllm-project/vllm@v0.16.0:vllm/v1/metrics/loggers.py",
    keep="vllm:.*",
    ttft="vllm:time_to_first_token_seconds",
    tpot="vllm:inter_token_latency_seconds",
    e2e_latency="vllm:e2e_request_latency_seconds",
    finished_requests="vllm:request_success_total",
    finished_reason_label="finished_reason",
    error_reasons=("error",),
    output_tokens="vllm:generation_tokens_total",
    waiting_requests="vllm:num_requests_waiting",
    kv_cache_usage="vllm:kv_cache_usage_perc",
)

RUNTIMES = {VLLM.runtime: VLLM}


def runtime_names(runtime: str) -> RuntimeMetricNames:
    try:
        return RUNTIMES[runtime]
    except KeyError:
        raise ValueError(f"unknown serving runtime {runtime!r}; known: {', '.join(sorted(RUNTIMES))}") from None


def track_selector(namespace: str, service: str, track: str) -> str:
    """The label matchers of one track's series. Values are checked, not escaped: they are Kubernetes names."""
    values = {NAMESPACE_LABEL: namespace, SERVICE_LABEL: service, TRACK_LABEL: track}
    for label, value in values.items():
        if not _LABEL_VALUE.match(value):
            raise ValueError(f"{label} {value!r} is not a Kubernetes name")
    return "{" + ",".join(f'{label}="{value}"' for label, value in values.items()) + "}"


def quantile_query(quantile: float, histogram: str, selector: str, window_seconds: int) -> str:
    """The quantile of a histogram's observations over the window before the query's time, all pods together."""
    if not 0 < quantile < 1:
        raise ValueError(f"a quantile is between 0 and 1, got {quantile}")
    return f"histogram_quantile({quantile:g}, sum by (le) (increase({histogram}_bucket{selector}[{window_seconds}s])))"


def count_query(histogram: str, selector: str, window_seconds: int) -> str:
    """How many observations a histogram took over the window: the requests it measured."""
    return f"sum(increase({histogram}_count{selector}[{window_seconds}s]))"


def increase_by_query(counter: str, label: str, selector: str, window_seconds: int) -> str:
    """A counter's increase over the window, per value of `label`."""
    return f"sum by ({label}) (increase({counter}{selector}[{window_seconds}s]))"


def queue_query(names: RuntimeMetricNames, selector: str) -> str:
    """Requests waiting in the runtime's queue across the selected pods (KEDA divides by the pod count)."""
    return f"sum({names.waiting_requests}{selector})"


def kv_cache_percent_query(names: RuntimeMetricNames, selector: str) -> str:
    """The selected pods' average KV-cache usage, in percent."""
    return f"avg({names.kv_cache_usage}{selector}) * 100"
