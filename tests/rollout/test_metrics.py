from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from rollout.errors import RolloutError, TransientError
from rollout.metrics import (
    AlbMetrics,
    CloudWatchPercentiles,
    ExtraMetricQuery,
    alarms_in_alarm,
    arn_dimension,
)
from tests.fake_aws import use_fake_credentials

REGION = "us-east-1"
LOAD_BALANCER = "app/tessera-dev/50dc6c495c0c9188"
CANARY_TG = "targetgroup/assistant-canary/73e2d6bc24d8a067"
STABLE_TG = "targetgroup/assistant-stable/943f017f100becff"
ALB = "AWS/ApplicationELB"
# Minute-aligned and recent: moto keeps the datapoints and the window yields one period.
END = datetime.now(UTC).replace(second=0, microsecond=0)
START = END - timedelta(minutes=10)
TTFT = ExtraMetricQuery(
    name="ttft",
    namespace="Tessera/Serving",
    metric_name="TimeToFirstToken",
    statistic="Average",
    dimensions={"Service": "assistant", "Track": "{track}"},
)


@dataclass
class RecordingPercentileReader:
    """Test double for the PercentileReader seam: answers from a table and records every question."""

    answers: dict[tuple[str, str], float | None] = field(default_factory=dict)
    asked: list[dict[str, Any]] = field(default_factory=list)

    def p99(
        self, *, namespace: str, metric_name: str, dimensions: Mapping[str, str], start: datetime, end: datetime
    ) -> float | None:
        self.asked.append(
            {"namespace": namespace, "metric_name": metric_name, "dimensions": dict(dimensions), "window": (start, end)}
        )
        return self.answers.get((metric_name, dimensions.get("TargetGroup") or dimensions.get("Track", "")))


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_credentials(monkeypatch, REGION)


@pytest.fixture
def cloudwatch(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("cloudwatch", region_name=REGION)


@pytest.fixture
def stubbed(aws_env: None) -> Iterator[tuple[Any, Stubber]]:
    """A real boto3 client whose responses are scripted; nothing leaves the process."""
    client = boto3.client("cloudwatch", region_name=REGION)
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def put_alb(cloudwatch: Any, metric: str, target_group: str, value: float, *, minutes_ago: float) -> None:
    cloudwatch.put_metric_data(
        Namespace=ALB,
        MetricData=[
            {
                "MetricName": metric,
                "Dimensions": [
                    {"Name": "LoadBalancer", "Value": LOAD_BALANCER},
                    {"Name": "TargetGroup", "Value": target_group},
                ],
                "Timestamp": END - timedelta(minutes=minutes_ago),
                "Value": value,
                "Unit": "Count",
            }
        ],
    )


def put_ttft(cloudwatch: Any, track: str, value: float, *, minutes_ago: float) -> None:
    cloudwatch.put_metric_data(
        Namespace="Tessera/Serving",
        MetricData=[
            {
                "MetricName": "TimeToFirstToken",
                "Dimensions": [{"Name": "Service", "Value": "assistant"}, {"Name": "Track", "Value": track}],
                "Timestamp": END - timedelta(minutes=minutes_ago),
                "Value": value,
                "Unit": "Seconds",
            }
        ],
    )


def metric_query(query_id: str, metric: str, dimensions: dict[str, str], stat: str, period: int) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": ALB,
                "MetricName": metric,
                "Dimensions": [{"Name": name, "Value": value} for name, value in dimensions.items()],
            },
            "Period": period,
            "Stat": stat,
        },
        "ReturnData": True,
    }


def metric_data(*results: tuple[str, list[float]]) -> dict[str, Any]:
    return {
        "MetricDataResults": [
            {"Id": query_id, "Values": values, "Timestamps": [START] * len(values), "StatusCode": "Complete"}
            for query_id, values in results
        ]
    }


# AlbMetrics.track_stats, under moto


def test_track_stats_sums_each_track_separately(cloudwatch: Any) -> None:
    for minutes_ago, canary, stable in [(9, 40, 900), (5, 60, 1100)]:
        put_alb(cloudwatch, "RequestCount", CANARY_TG, canary, minutes_ago=minutes_ago)
        put_alb(cloudwatch, "RequestCount", STABLE_TG, stable, minutes_ago=minutes_ago)
    put_alb(cloudwatch, "HTTPCode_Target_5XX_Count", CANARY_TG, 3, minutes_ago=4)
    put_alb(cloudwatch, "HTTPCode_Target_5XX_Count", STABLE_TG, 2, minutes_ago=4)
    put_alb(cloudwatch, "RequestCount", CANARY_TG, 10_000, minutes_ago=11)  # before the window
    percentiles = RecordingPercentileReader(
        answers={("TargetResponseTime", CANARY_TG): 1.25, ("TargetResponseTime", STABLE_TG): 0.9}
    )
    metrics = AlbMetrics(cloudwatch, percentiles, load_balancer=LOAD_BALANCER)

    canary = metrics.track_stats(track="canary", target_group=CANARY_TG, start=START, end=END)
    stable = metrics.track_stats(track="stable", target_group=STABLE_TG, start=START, end=END)

    assert (canary.requests, canary.errors_5xx, canary.p99_seconds) == (100, 3, 1.25)
    assert (stable.requests, stable.errors_5xx, stable.p99_seconds) == (2000, 2, 0.9)
    assert percentiles.asked == [
        {
            "namespace": ALB,
            "metric_name": "TargetResponseTime",
            "dimensions": {"LoadBalancer": LOAD_BALANCER, "TargetGroup": target_group},
            "window": (START, END),
        }
        for target_group in (CANARY_TG, STABLE_TG)
    ]


def test_no_datapoints_mean_no_requests(cloudwatch: Any) -> None:
    metrics = AlbMetrics(cloudwatch, RecordingPercentileReader(), load_balancer=LOAD_BALANCER)

    stats = metrics.track_stats(track="canary", target_group=CANARY_TG, start=START, end=END, extra=[TTFT])

    assert (stats.requests, stats.errors_5xx, stats.p99_seconds) == (0, 0, None)
    assert stats.extra == {"ttft": None}


def test_arns_are_accepted_for_the_load_balancer_and_target_group(cloudwatch: Any) -> None:
    put_alb(cloudwatch, "RequestCount", CANARY_TG, 7, minutes_ago=2)
    metrics = AlbMetrics(
        cloudwatch,
        RecordingPercentileReader(),
        load_balancer=f"arn:aws:elasticloadbalancing:{REGION}:111122223333:loadbalancer/{LOAD_BALANCER}",
    )

    stats = metrics.track_stats(
        track="canary",
        target_group=f"arn:aws:elasticloadbalancing:{REGION}:111122223333:{CANARY_TG}",
        start=START,
        end=END,
    )

    assert stats.requests == 7


def test_extra_metric_average_is_read_per_track(cloudwatch: Any) -> None:
    put_ttft(cloudwatch, "canary", 0.2, minutes_ago=8)
    put_ttft(cloudwatch, "canary", 0.4, minutes_ago=3)
    put_ttft(cloudwatch, "stable", 0.25, minutes_ago=3)
    metrics = AlbMetrics(cloudwatch, RecordingPercentileReader(), load_balancer=LOAD_BALANCER)

    canary = metrics.track_stats(track="canary", target_group=CANARY_TG, start=START, end=END, extra=[TTFT])
    stable = metrics.track_stats(track="stable", target_group=STABLE_TG, start=START, end=END, extra=[TTFT])

    assert canary.extra["ttft"] == pytest.approx(0.3)
    assert stable.extra["ttft"] == pytest.approx(0.25)


def test_percentile_extra_metrics_go_through_the_seam(cloudwatch: Any) -> None:
    query = ExtraMetricQuery(
        name="ttft_p99",
        namespace="Tessera/Serving",
        metric_name="TimeToFirstToken",
        statistic="p99",
        dimensions={"Track": "{track}", "TargetGroup": "{target_group}", "Literal": "{other}"},
    )
    percentiles = RecordingPercentileReader(answers={("TimeToFirstToken", CANARY_TG): 0.8})
    metrics = AlbMetrics(cloudwatch, percentiles, load_balancer=LOAD_BALANCER)

    stats = metrics.track_stats(track="canary", target_group=CANARY_TG, start=START, end=END, extra=[query])

    assert stats.extra == {"ttft_p99": 0.8}
    assert {
        "namespace": "Tessera/Serving",
        "metric_name": "TimeToFirstToken",
        "dimensions": {"Track": "canary", "TargetGroup": CANARY_TG, "Literal": "{other}"},
        "window": (START, END),
    } in percentiles.asked


def test_counts_and_plain_extras_come_from_one_call(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    start = END - timedelta(minutes=4, seconds=30)  # not minute-aligned: the period covers from its minute
    dimensions = {"LoadBalancer": LOAD_BALANCER, "TargetGroup": CANARY_TG}
    ttft = metric_query("extra0", "TimeToFirstToken", {"Service": "assistant", "Track": "canary"}, "Average", 300)
    ttft["MetricStat"]["Metric"]["Namespace"] = "Tessera/Serving"
    stubber.add_response(
        "get_metric_data",
        metric_data(("requests", [120.0, 30.0]), ("errors", []), ("connection_errors", [3.0]), ("extra0", [0.35])),
        {
            "MetricDataQueries": [
                metric_query("requests", "RequestCount", dimensions, "Sum", 300),
                metric_query("errors", "HTTPCode_Target_5XX_Count", dimensions, "Sum", 300),
                # Per target group: connections the load balancer could not open to the track's targets.
                metric_query("connection_errors", "TargetConnectionErrorCount", dimensions, "Sum", 300),
                ttft,
            ],
            "StartTime": END - timedelta(minutes=5),
            "EndTime": END,
            "ScanBy": "TimestampAscending",
        },
    )
    metrics = AlbMetrics(client, RecordingPercentileReader(), load_balancer=LOAD_BALANCER)

    stats = metrics.track_stats(track="canary", target_group=CANARY_TG, start=start, end=END, extra=[TTFT])

    assert (stats.requests, stats.errors_5xx, stats.connection_errors, stats.extra) == (150, 0, 3, {"ttft": 0.35})


@pytest.mark.parametrize(
    ("code", "status"),
    [
        pytest.param("Throttling", 400, id="Throttling"),
        pytest.param("ThrottlingException", 400, id="ThrottlingException"),
        pytest.param("RequestLimitExceeded", 400, id="RequestLimitExceeded"),
        pytest.param("InternalFailure", 500, id="5xx"),
        pytest.param("ServiceUnavailable", 503, id="503"),
    ],
)
def test_throttling_and_5xx_are_transient(stubbed: tuple[Any, Stubber], code: str, status: int) -> None:
    client, stubber = stubbed
    stubber.add_client_error("get_metric_data", service_error_code=code, http_status_code=status)
    metrics = AlbMetrics(client, RecordingPercentileReader(), load_balancer=LOAD_BALANCER)

    with pytest.raises(TransientError, match=code):
        metrics.track_stats(track="canary", target_group=CANARY_TG, start=START, end=END)


def test_other_client_errors_are_not_transient(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_client_error("get_metric_data", service_error_code="AccessDenied", http_status_code=403)
    metrics = AlbMetrics(client, RecordingPercentileReader(), load_balancer=LOAD_BALANCER)

    with pytest.raises(ClientError, match="AccessDenied"):
        metrics.track_stats(track="canary", target_group=CANARY_TG, start=START, end=END)


def test_a_result_cloudwatch_failed_to_compute_is_transient(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    response = metric_data(("requests", []), ("errors", []))
    response["MetricDataResults"][0]["StatusCode"] = "InternalError"
    stubber.add_response("get_metric_data", response)
    metrics = AlbMetrics(client, RecordingPercentileReader(), load_balancer=LOAD_BALANCER)

    with pytest.raises(TransientError, match="requests"):
        metrics.track_stats(track="canary", target_group=CANARY_TG, start=START, end=END)


def test_an_empty_window_is_rejected(cloudwatch: Any) -> None:
    metrics = AlbMetrics(cloudwatch, RecordingPercentileReader(), load_balancer=LOAD_BALANCER)

    with pytest.raises(ValueError, match="must end after it starts"):
        metrics.track_stats(track="canary", target_group=CANARY_TG, start=END, end=END)


@pytest.mark.parametrize(
    ("statistic", "message"),
    [
        pytest.param("p95", "only the p99 percentile", id="other-percentile"),
        pytest.param("Median", "unknown statistic", id="unknown"),
    ],
)
def test_extra_metric_statistics_are_checked(statistic: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ExtraMetricQuery(name="ttft", namespace="N", metric_name="M", statistic=statistic, dimensions={})


# CloudWatchPercentiles, against a stubbed real client (moto cannot compute percentiles)


@pytest.mark.parametrize(
    ("start", "end", "aligned_start", "period"),
    [
        pytest.param(START, END, START, 600, id="aligned-10-minutes"),
        pytest.param(
            END - timedelta(minutes=4, seconds=30), END, END - timedelta(minutes=5), 300, id="start-mid-minute"
        ),
        pytest.param(START, START + timedelta(seconds=61), START, 120, id="rounded-up-to-minutes"),
        pytest.param(START, START + timedelta(seconds=1), START, 60, id="at-least-one-minute"),
    ],
)
def test_cloudwatch_percentiles_asks_for_p99_over_one_period(
    stubbed: tuple[Any, Stubber], start: datetime, end: datetime, aligned_start: datetime, period: int
) -> None:
    client, stubber = stubbed
    dimensions = {"LoadBalancer": LOAD_BALANCER, "TargetGroup": CANARY_TG}
    stubber.add_response(
        "get_metric_data",
        metric_data(("percentile", [1.75])),
        {
            "MetricDataQueries": [metric_query("percentile", "TargetResponseTime", dimensions, "p99", period)],
            "StartTime": aligned_start,
            "EndTime": end,
            "ScanBy": "TimestampAscending",
        },
    )

    value = CloudWatchPercentiles(client).p99(
        namespace=ALB, metric_name="TargetResponseTime", dimensions=dimensions, start=start, end=end
    )

    assert value == 1.75


def test_cloudwatch_percentiles_without_datapoints_is_none(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response("get_metric_data", metric_data(("percentile", [])))

    value = CloudWatchPercentiles(client).p99(
        namespace=ALB, metric_name="TargetResponseTime", dimensions={}, start=START, end=END
    )

    assert value is None


def test_cloudwatch_percentiles_follows_next_token(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response("get_metric_data", {**metric_data(("percentile", [])), "NextToken": "page-2"})
    stubber.add_response(
        "get_metric_data",
        metric_data(("percentile", [2.5])),
        {
            "MetricDataQueries": [metric_query("percentile", "TargetResponseTime", {}, "p99", 600)],
            "StartTime": START,
            "EndTime": END,
            "ScanBy": "TimestampAscending",
            "NextToken": "page-2",
        },
    )

    value = CloudWatchPercentiles(client).p99(
        namespace=ALB, metric_name="TargetResponseTime", dimensions={}, start=START, end=END
    )

    assert value == 2.5


def test_cloudwatch_percentiles_throttling_is_transient(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_client_error("get_metric_data", service_error_code="Throttling", http_status_code=400)

    with pytest.raises(TransientError):
        CloudWatchPercentiles(client).p99(
            namespace=ALB, metric_name="TargetResponseTime", dimensions={}, start=START, end=END
        )


# alarms_in_alarm


def put_alarm(cloudwatch: Any, name: str) -> None:
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace=ALB,
        MetricName="HTTPCode_Target_5XX_Count",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=10,
        ComparisonOperator="GreaterThanThreshold",
    )


def test_alarms_in_alarm_returns_those_in_alarm(cloudwatch: Any) -> None:
    for name in ("tessera-5xx", "tessera-latency", "tessera-quiet", "tessera-unwatched"):
        put_alarm(cloudwatch, name)
    for name in ("tessera-latency", "tessera-unwatched"):
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="test")
    cloudwatch.set_alarm_state(AlarmName="tessera-5xx", StateValue="OK", StateReason="test")
    cloudwatch.set_alarm_state(AlarmName="tessera-quiet", StateValue="INSUFFICIENT_DATA", StateReason="test")

    watched = ["tessera-5xx", "tessera-latency", "tessera-quiet"]
    assert alarms_in_alarm(cloudwatch, watched) == ["tessera-latency"]


def test_alarms_in_alarm_asks_in_chunks_of_100(cloudwatch: Any) -> None:
    names = [f"tessera-{index:03}" for index in range(150)]
    for name in names:
        put_alarm(cloudwatch, name)
    for name in (names[3], names[120]):
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="test")
    requests: list[dict[str, Any]] = []
    cloudwatch.meta.events.register(
        "provide-client-params.cloudwatch.DescribeAlarms", lambda params, **_: requests.append(dict(params))
    )

    assert alarms_in_alarm(cloudwatch, names) == [names[3], names[120]]
    assert [len(request["AlarmNames"]) for request in requests] == [100, 50]
    assert all(request["AlarmTypes"] == ["CompositeAlarm", "MetricAlarm"] for request in requests)


def test_alarms_in_alarm_without_alarms_asks_nothing(stubbed: tuple[Any, Stubber]) -> None:
    client, _ = stubbed

    assert alarms_in_alarm(client, []) == []


def test_a_missing_watched_alarm_is_an_error(cloudwatch: Any) -> None:
    put_alarm(cloudwatch, "tessera-5xx")

    with pytest.raises(RolloutError, match="tessera-typo"):
        alarms_in_alarm(cloudwatch, ["tessera-5xx", "tessera-typo"])


def test_composite_alarms_count(stubbed: tuple[Any, Stubber]) -> None:
    """moto has no composite alarms, so this one is scripted."""
    client, stubber = stubbed
    stubber.add_response(
        "describe_alarms",
        {
            "MetricAlarms": [{"AlarmName": "tessera-5xx", "StateValue": "OK"}],
            "CompositeAlarms": [{"AlarmName": "tessera-any", "StateValue": "ALARM"}],
        },
        {
            "AlarmNames": ["tessera-any", "tessera-5xx"],
            "AlarmTypes": ["CompositeAlarm", "MetricAlarm"],
            "MaxRecords": 100,
        },
    )

    assert alarms_in_alarm(client, ["tessera-any", "tessera-5xx", "tessera-any"]) == ["tessera-any"]


def test_alarms_in_alarm_throttling_is_transient(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_client_error("describe_alarms", service_error_code="Throttling", http_status_code=400)

    with pytest.raises(TransientError):
        alarms_in_alarm(client, ["tessera-5xx"])


# arn_dimension


@pytest.mark.parametrize(
    ("arn", "dimension"),
    [
        pytest.param(
            "arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/app/tessera-dev/50dc6c495c0c9188",
            "app/tessera-dev/50dc6c495c0c9188",
            id="application-load-balancer",
        ),
        pytest.param(
            "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/assistant-canary/73e2d6bc24d8a067",
            "targetgroup/assistant-canary/73e2d6bc24d8a067",
            id="target-group",
        ),
        pytest.param(
            "arn:aws-us-gov:elasticloadbalancing:us-gov-west-1:111122223333:loadbalancer/app/x/123",
            "app/x/123",
            id="other-partition",
        ),
    ],
)
def test_arn_dimension(arn: str, dimension: str) -> None:
    assert arn_dimension(arn) == dimension


@pytest.mark.parametrize(
    "arn",
    [
        pytest.param("app/x/123", id="already-a-dimension"),
        pytest.param("arn:aws:ec2:us-east-1:111122223333:instance/i-0123", id="other-service"),
        pytest.param("arn:aws:elasticloadbalancing:us-east-1:111122223333:listener/app/x/123/456", id="listener"),
    ],
)
def test_arn_dimension_rejects_other_arns(arn: str) -> None:
    with pytest.raises(ValueError, match="ARN"):
        arn_dimension(arn)
