"""Reads one track's serving-runtime figures over a judged window from the environment's Prometheus workspace
(rollout.prometheus), with the queries tessera_shared.runtime_metrics writes, and publishes what was judged to
CloudWatch so the service's dashboard shows it beside the load balancer's figures.

Every query is evaluated at the window's end over the window's length, so the runtime's figures cover the same
minutes as the load balancer's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from rollout.errors import RolloutError
from rollout.prometheus import PrometheusReader, Sample
from rollout.runtime_judge import RuntimeStats
from tessera_shared import metrics
from tessera_shared.runtime_metrics import (
    POD_LABEL,
    RuntimeMetricNames,
    count_query,
    increase_by_query,
    quantile_query,
    track_selector,
)


def read_runtime_stats(
    reader: PrometheusReader,
    names: RuntimeMetricNames,
    *,
    namespace: str,
    service: str,
    track: str,
    start: datetime,
    end: datetime,
) -> RuntimeStats:
    window = round((end - start).total_seconds())
    selector = track_selector(namespace, service, track)

    def quantile(q: float, histogram: str) -> float | None:
        return _single(reader.query(quantile_query(q, histogram, selector, window), at=end))

    finished = reader.query(
        increase_by_query(names.finished_requests, names.finished_reason_label, selector, window), at=end
    )
    tokens_by_pod = reader.query(increase_by_query(names.output_tokens, POD_LABEL, selector, window), at=end)
    return RuntimeStats(
        samples=_count(_single(reader.query(count_query(names.ttft, selector, window), at=end))),
        ttft_p50_seconds=quantile(0.5, names.ttft),
        ttft_p99_seconds=quantile(0.99, names.ttft),
        tpot_p99_seconds=quantile(0.99, names.tpot),
        e2e_p99_seconds=quantile(0.99, names.e2e_latency),
        finished=_count(sum(_finite(sample.value) for sample in finished)),
        errors=_count(
            sum(
                _finite(sample.value)
                for sample in finished
                if sample.labels.get(names.finished_reason_label) in names.error_reasons
            )
        ),
        output_tokens=_count(sum(_finite(sample.value) for sample in tokens_by_pod)),
        pods=sum(1 for sample in tokens_by_pod if sample.labels.get(POD_LABEL)),
        window_seconds=window,
    )


def _single(samples: list[Sample]) -> float | None:
    """The value of an aggregation without grouping: one series, or none when nothing matched. NaN (a quantile of
    no observations) is no value."""
    if not samples:
        return None
    if len(samples) > 1:
        # Only a selector that matched the wrong series could split an ungrouped sum: not a figure to judge on.
        raise RolloutError(f"an ungrouped aggregation answered {len(samples)} series; expected one")
    value = samples[0].value
    return None if math.isnan(value) else max(0.0, value)


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def _count(value: float | None) -> int:
    """A counter's increase as a whole count (Prometheus extrapolates increases to fractions)."""
    return 0 if value is None or not math.isfinite(value) else max(0, round(value))


# What each judged figure is published as (tessera_shared.metrics.JUDGED_*), and its unit's factor.
_PUBLISHED = (
    (metrics.JUDGED_TTFT_P50, "ttft_p50_seconds", 1),
    (metrics.JUDGED_TTFT_P99, "ttft_p99_seconds", 1),
    (metrics.JUDGED_TPOT_P99, "tpot_p99_seconds", 1),
    (metrics.JUDGED_E2E_P99, "e2e_p99_seconds", 1),
    (metrics.JUDGED_RUNTIME_ERROR_RATE, "error_rate", 100),
    (metrics.JUDGED_TOKENS_PER_SECOND_PER_POD, "tokens_per_second_per_pod", 1),
    (metrics.JUDGED_COST_PER_MILLION_OUTPUT_TOKENS, "cost_per_million_output_tokens", 1),
)


def publish_judged_figures(
    cloudwatch: Any,
    *,
    service: str,
    figures: Mapping[str, RuntimeStats | None],
    costs: Mapping[str, Mapping[str, Any]],
    at: datetime,
) -> str | None:
    """Puts each track's judged runtime figures and cost per million output tokens on CloudWatch, timestamped at
    the window's end. Evidence for people, not for the verdict: a failed put is returned as a reason to record,
    never raised."""
    data = []
    for track, stats in figures.items():
        if stats is None:
            continue
        values: dict[str, Any] = dict(stats.as_dict())
        values["cost_per_million_output_tokens"] = costs.get(track, {}).get("cost_per_million_output_tokens")
        dimensions = [{"Name": metrics.SERVICE, "Value": service}, {"Name": metrics.TRACK, "Value": track}]
        for metric, key, factor in _PUBLISHED:
            value = values.get(key)
            if value is None:
                continue
            data.append(
                {
                    "MetricName": metric.name,
                    "Dimensions": dimensions,
                    "Timestamp": at,
                    "Value": float(value) * factor,
                    "Unit": metric.unit,
                }
            )
    if not data:
        return None
    try:
        cloudwatch.put_metric_data(Namespace=metrics.JUDGED_NAMESPACE, MetricData=data)
    except (BotoCoreError, ClientError) as error:
        return f"judged figures not published to CloudWatch: {error}"
    return None
