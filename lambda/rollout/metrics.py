"""Reads one track's numbers for rollout.judge from CloudWatch: the ALB's request, target 5xx and target
connection error counts for the track's target group, its p99 response time, and any extra metrics the
analysis policy names. The load balancer's own 5xx (HTTPCode_ELB_5XX_Count) exist only per load balancer,
which every service shares, so they are not read here: the dashboards and an environment alarm show them.

Percentiles go through the PercentileReader seam because moto's CloudWatch cannot compute them; the
real reader is CloudWatchPercentiles.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from rollout.errors import RolloutError, TransientError
from rollout.judge import TrackStats

ALB_NAMESPACE = "AWS/ApplicationELB"
PLAIN_STATISTICS = frozenset({"Average", "Sum", "Minimum", "Maximum", "SampleCount"})
_PERCENTILE = re.compile(r"p\d{1,2}(\.\d+)?")
_THROTTLING_CODES = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded"})
_DESCRIBE_ALARMS_MAX_NAMES = 100


class PercentileReader(Protocol):
    def p99(
        self, *, namespace: str, metric_name: str, dimensions: Mapping[str, str], start: datetime, end: datetime
    ) -> float | None:
        """The metric's p99 over [start, end), or None when there are no datapoints."""
        ...


class CloudWatchPercentiles:
    """Reads p99 with get_metric_data, one period spanning the window."""

    def __init__(self, cloudwatch: Any) -> None:
        self._cloudwatch = cloudwatch

    def p99(
        self, *, namespace: str, metric_name: str, dimensions: Mapping[str, str], start: datetime, end: datetime
    ) -> float | None:
        return self.percentile(
            statistic="p99", namespace=namespace, metric_name=metric_name, dimensions=dimensions, start=start, end=end
        )

    def percentile(
        self,
        *,
        statistic: str,
        namespace: str,
        metric_name: str,
        dimensions: Mapping[str, str],
        start: datetime,
        end: datetime,
    ) -> float | None:
        """Any percentile statistic ("p50", "p99.9"); None when there are no datapoints."""
        if not _PERCENTILE.fullmatch(statistic):
            raise ValueError(f"not a percentile statistic: {statistic!r}")
        query = _metric_query("percentile", namespace, metric_name, dimensions, statistic, _period(start, end))
        values = _get_metric_data(self._cloudwatch, [query], start, end)["percentile"]
        # One period spans the window, so there is one value. Percentiles do not combine: should
        # CloudWatch ever split the window, the highest is the cautious reading for latencies.
        return max(values) if values else None


@dataclass(frozen=True)
class ExtraMetricQuery:
    """Where an ExtraMetricRule's value comes from. Dimension values may contain "{track}" and
    "{target_group}", filled in per track."""

    name: str
    namespace: str
    metric_name: str
    statistic: str  # Average | Sum | Minimum | Maximum | SampleCount | p99
    dimensions: Mapping[str, str]

    def __post_init__(self) -> None:
        if self.statistic in PLAIN_STATISTICS or self.statistic == "p99":
            return
        if _PERCENTILE.fullmatch(self.statistic):
            # The seam reads p99 only; fail when the policy is loaded rather than at the first canary step.
            raise ValueError(f"extra metric {self.name!r}: only the p99 percentile is supported, not {self.statistic}")
        raise ValueError(f"extra metric {self.name!r}: unknown statistic {self.statistic!r}")


class AlbMetrics:
    def __init__(self, cloudwatch: Any, percentiles: PercentileReader, *, load_balancer: str) -> None:
        """load_balancer is the ALB's "app/<name>/<id>" dimension value (an ARN is converted)."""
        self._cloudwatch = cloudwatch
        self._percentiles = percentiles
        self._load_balancer = _dimension_value(load_balancer)

    def track_stats(
        self,
        *,
        track: str,
        target_group: str,
        start: datetime,
        end: datetime,
        extra: Sequence[ExtraMetricQuery] = (),
    ) -> TrackStats:
        """One track's stats over [start, end). target_group is its "targetgroup/<name>/<id>" dimension
        value (an ARN is converted). Counts and plain-statistic extras come from one get_metric_data call."""
        target_group = _dimension_value(target_group)
        period = _period(start, end)
        alb_dimensions = {"LoadBalancer": self._load_balancer, "TargetGroup": target_group}
        queries = [
            _metric_query("requests", ALB_NAMESPACE, "RequestCount", alb_dimensions, "Sum", period),
            _metric_query("errors", ALB_NAMESPACE, "HTTPCode_Target_5XX_Count", alb_dimensions, "Sum", period),
            _metric_query(
                "connection_errors", ALB_NAMESPACE, "TargetConnectionErrorCount", alb_dimensions, "Sum", period
            ),
        ]
        extra_dimensions = [_fill(query.dimensions, track=track, target_group=target_group) for query in extra]
        queries += [
            _metric_query(f"extra{index}", query.namespace, query.metric_name, dimensions, query.statistic, period)
            for index, (query, dimensions) in enumerate(zip(extra, extra_dimensions, strict=True))
            if query.statistic in PLAIN_STATISTICS
        ]
        values = _get_metric_data(self._cloudwatch, queries, start, end)
        extra_values: dict[str, float | None] = {}
        for index, (query, dimensions) in enumerate(zip(extra, extra_dimensions, strict=True)):
            if query.statistic in PLAIN_STATISTICS:
                extra_values[query.name] = _combine(query.statistic, values[f"extra{index}"])
            else:  # a percentile: moto cannot compute those, so they go through the seam
                extra_values[query.name] = self._percentiles.p99(
                    namespace=query.namespace,
                    metric_name=query.metric_name,
                    dimensions=dimensions,
                    start=start,
                    end=end,
                )
        return TrackStats(
            # The ALB publishes no datapoint for a period without requests, so no data means zero.
            requests=round(sum(values["requests"])),
            errors_5xx=round(sum(values["errors"])),
            connection_errors=round(sum(values["connection_errors"])),
            p99_seconds=self._percentiles.p99(
                namespace=ALB_NAMESPACE,
                metric_name="TargetResponseTime",
                dimensions=alb_dimensions,
                start=start,
                end=end,
            ),
            extra=extra_values,
        )


def alarms_in_alarm(cloudwatch: Any, names: Sequence[str]) -> list[str]:
    """The named alarms (metric or composite) now in ALARM, in the order given. A named alarm that does
    not exist raises RolloutError: a missing watched alarm would otherwise silently never fire."""
    wanted = list(dict.fromkeys(names))
    states: dict[str, str] = {}
    with _transient_errors():
        for first in range(0, len(wanted), _DESCRIBE_ALARMS_MAX_NAMES):
            chunk = wanted[first : first + _DESCRIBE_ALARMS_MAX_NAMES]
            request: dict[str, Any] = {
                "AlarmNames": chunk,
                # Without AlarmTypes, describe_alarms returns metric alarms only.
                "AlarmTypes": ["CompositeAlarm", "MetricAlarm"],
                "MaxRecords": _DESCRIBE_ALARMS_MAX_NAMES,
            }
            while True:
                response = cloudwatch.describe_alarms(**request)
                for alarm in [*response.get("MetricAlarms", []), *response.get("CompositeAlarms", [])]:
                    states[alarm["AlarmName"]] = alarm["StateValue"]
                if not response.get("NextToken"):
                    break
                request["NextToken"] = response["NextToken"]
    missing = [name for name in wanted if name not in states]
    if missing:
        raise RolloutError(f"watched alarm(s) do not exist: {', '.join(missing)}")
    return [name for name in wanted if states[name] == "ALARM"]


def arn_dimension(arn: str) -> str:
    """The CloudWatch dimension value of a load balancer or target group ARN:
    "...:loadbalancer/app/x/123" -> "app/x/123", "...:targetgroup/tg/456" -> "targetgroup/tg/456"."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "elasticloadbalancing":
        raise ValueError(f"not an Elastic Load Balancing ARN: {arn!r}")
    resource = parts[5]
    if resource.startswith("loadbalancer/") and resource.count("/") == 3:
        return resource.removeprefix("loadbalancer/")
    if resource.startswith("targetgroup/") and resource.count("/") == 2:
        return resource
    raise ValueError(f"not a load balancer or target group ARN: {arn!r}")


def _dimension_value(value: str) -> str:
    return arn_dimension(value) if value.startswith("arn:") else value


def _fill(dimensions: Mapping[str, str], *, track: str, target_group: str) -> dict[str, str]:
    # str.replace, not str.format: other braces in a dimension value are left alone.
    return {
        name: value.replace("{track}", track).replace("{target_group}", target_group)
        for name, value in dimensions.items()
    }


def _period(start: datetime, end: datetime) -> int:
    """One period covering the window from its whole minute, rounded up to whole minutes as CloudWatch
    requires, so that the window yields a single datapoint per metric."""
    if end <= start:
        raise ValueError(f"the window must end after it starts: {start.isoformat()} to {end.isoformat()}")
    seconds = (end - _minute(start)) / timedelta(seconds=1)
    return math.ceil(seconds / 60) * 60


def _minute(start: datetime) -> datetime:
    # CloudWatch rounds a recent StartTime down to the minute anyway; doing it here keeps the period aligned.
    return start.replace(second=0, microsecond=0)


def _metric_query(
    query_id: str, namespace: str, metric_name: str, dimensions: Mapping[str, str], stat: str, period: int
) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": namespace,
                "MetricName": metric_name,
                "Dimensions": [{"Name": name, "Value": value} for name, value in dimensions.items()],
            },
            "Period": period,
            "Stat": stat,
        },
        "ReturnData": True,
    }


def _get_metric_data(
    cloudwatch: Any, queries: list[dict[str, Any]], start: datetime, end: datetime
) -> dict[str, list[float]]:
    """Every query's values over the window, following NextToken."""
    values: dict[str, list[float]] = {query["Id"]: [] for query in queries}
    request: dict[str, Any] = {
        "MetricDataQueries": queries,
        "StartTime": _minute(start),
        "EndTime": end,
        "ScanBy": "TimestampAscending",
    }
    with _transient_errors():
        while True:
            response = cloudwatch.get_metric_data(**request)
            for result in response["MetricDataResults"]:
                status = result.get("StatusCode", "Complete")
                if status == "InternalError":
                    raise TransientError(f"CloudWatch could not compute {result['Id']}; retry")
                if status == "Forbidden":
                    raise RolloutError(f"not allowed to read metric {result['Id']}: {result.get('Messages')}")
                values[result["Id"]].extend(result.get("Values", []))
            if not response.get("NextToken"):
                return values
            request["NextToken"] = response["NextToken"]


def _combine(statistic: str, values: list[float]) -> float | None:
    """Combines the window's datapoints; usually there is one (see CloudWatchPercentiles.p99)."""
    if not values:
        return None
    if statistic in ("Sum", "SampleCount"):
        return sum(values)
    if statistic == "Minimum":
        return min(values)
    if statistic == "Maximum":
        return max(values)
    # An average of per-period averages: exact when the periods hold as many samples each.
    return sum(values) / len(values)


@contextmanager
def _transient_errors() -> Iterator[None]:
    """Turns throttling, AWS 5xx and dropped connections into TransientError, which the state machine retries."""
    try:
        yield
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _THROTTLING_CODES or status >= 500:
            raise TransientError(f"CloudWatch: {code or status}: {error}") from error
        raise
    except (BotoConnectionError, HTTPClientError) as error:
        raise TransientError(f"CloudWatch unreachable: {error}") from error
