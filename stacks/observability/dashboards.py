"""The environment's dashboard (every service at a glance) and one dashboard per service (stable and canary
side by side on the same axes). Widgets read only metrics from lambda/tessera_shared/metrics.py; what no metric
publishes (the rollout's configured weights and state) is shown as observed traffic share and a pointer to
`tessera rollout status`."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from stacks.observability.alarms import NEURON_ERRORS_PERIOD, load_balancer_5xx_rate, neuron_execution_errors
from stacks.observability.names import service_dashboard_name
from stacks.observability.service_metrics import PERIOD, ServiceMetrics
from tessera_shared import metrics
from tessera_shared.constants import TRACKS

HALF, THIRD, FULL = 12, 8, 24
ZERO_BASED = cloudwatch.YAxisProps(min=0)
PERCENT = cloudwatch.YAxisProps(min=0, max=100, label="%", show_units=False)
SECONDS = cloudwatch.YAxisProps(min=0, label="seconds", show_units=False)


def _graph(
    title: str,
    left: Sequence[cloudwatch.IMetric],
    width: int,
    axis: cloudwatch.YAxisProps = ZERO_BASED,
    annotations: Sequence[cloudwatch.HorizontalAnnotation] = (),
) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(
        title=title, left=list(left), width=width, height=6, left_y_axis=axis, left_annotations=list(annotations)
    )


def _insights(query: str, label: str, period: Duration = PERIOD) -> cloudwatch.MathExpression:
    """A CloudWatch Metrics Insights query: one line per node, for metrics published per node only."""
    return cloudwatch.MathExpression(expression=query, label=label, period=period, using_metrics={})


def per_node_query(source: metrics.MetricSource, statistic: str, cluster_name: str) -> str:
    schema = ", ".join([f'"{source.namespace}"', *source.dimensions])
    # A CloudWatch Metrics Insights query from catalogue names and the derived cluster name: no outside input.
    return (
        f"SELECT {statistic}({source.name}) FROM SCHEMA({schema}) "  # noqa: S608
        f"WHERE {metrics.CLUSTER_NAME} = '{cluster_name}' GROUP BY {metrics.NODE_NAME}"
    )


def environment_dashboard(
    scope: Construct,
    construct_id: str,
    *,
    name: str,
    environment: str,
    services: Sequence[ServiceMetrics],
    load_balancers: Sequence[str],
    cluster_name: str,
    state_machine_arn: str,
    alarms: Sequence[cloudwatch.IAlarm],
    neuron_errors_threshold: int,
    other_services: Sequence[str] = (),
) -> cloudwatch.Dashboard:
    """The environment's dashboard: its alarms and a link to every service's dashboard; the graphs show the services
    of the main stack group (`services`; another group's services are graphed on their own dashboards)."""
    neuron = [s for s in services if s.service.is_neuron]
    links = " · ".join(
        f"[{name}](#dashboards/dashboard/{service_dashboard_name(environment, name)})"
        for name in (*(s.service.name for s in services), *other_services)
    )
    rows: list[list[cloudwatch.IWidget]] = [
        [
            cloudwatch.TextWidget(
                markdown=f"# Tessera {environment}\nServices: {links}\n\nRollouts: `tessera rollout status <service>`"
                " (the rollout's state and last judgement; CloudWatch has no metric for them).",
                width=HALF,
                height=6,
            ),
            cloudwatch.AlarmStatusWidget(alarms=list(alarms), title="Alarms", width=HALF, height=6),
        ],
        [
            _graph("Requests per minute", [s.requests() for s in services], THIRD),
            _graph(
                "5xx rate (target 5xx + connection errors)",
                [s.five_xx_rate(s.service.alarms.min_requests_per_minute) for s in services],
                THIRD,
                PERCENT,
            ),
            _graph(
                "Load balancers' own 5xx rate (all services)", [load_balancer_5xx_rate(load_balancers)], THIRD, PERCENT
            ),
        ],
        [
            _graph("p50 response time (worse track)", [s.worse_track_latency("p50") for s in services], HALF, SECONDS),
            _graph("p99 response time (worse track)", [s.worse_track_latency("p99") for s in services], HALF, SECONDS),
        ],
        [
            _graph(
                "Healthy targets",
                [s.target_group(metrics.HEALTHY_HOSTS, t, "Minimum") for s in services for t in TRACKS],
                THIRD,
            ),
            _graph(
                "Ready replicas",
                [s.workload(metrics.REPLICAS_READY, t, "Maximum") for s in services for t in TRACKS],
                THIRD,
            ),
            _graph(
                "Pending pods",
                [s.workload(metrics.POD_STATUS_PENDING, t, "Sum") for s in services for t in TRACKS],
                THIRD,
            ),
        ],
    ]
    if neuron:
        rows.append(
            [
                _graph(
                    "NeuronCore utilization per service track",
                    [s.neuroncore_utilization(t) for s in neuron for t in TRACKS],
                    THIRD,
                    PERCENT,
                ),
                _graph(
                    "NeuronCore utilization per Neuron node",
                    [
                        _insights(
                            per_node_query(metrics.NODE_NEURONCORE_UTILIZATION_PER_NODE, "AVG", cluster_name), "node"
                        )
                    ],
                    THIRD,
                    PERCENT,
                ),
                _graph(
                    "Neuron execution errors per node (5 min)",
                    [
                        _insights(
                            per_node_query(metrics.NODE_NEURON_EXECUTION_ERRORS_PER_NODE, "SUM", cluster_name),
                            "node",
                            NEURON_ERRORS_PERIOD,
                        ),
                        neuron_execution_errors(cluster_name),
                    ],
                    THIRD,
                    annotations=[cloudwatch.HorizontalAnnotation(value=neuron_errors_threshold, label="alarm")],
                ),
            ]
        )
    rows.append(
        [
            _graph(
                "Rollout executions",
                [
                    _states_metric(source, state_machine_arn)
                    for source in (metrics.EXECUTIONS_STARTED, *metrics.EXECUTIONS_ENDED)
                ],
                FULL,
            )
        ]
    )
    return _dashboard(scope, construct_id, name, rows)


def service_dashboard(
    scope: Construct,
    construct_id: str,
    *,
    name: str,
    service_metrics: ServiceMetrics,
    alarms: Sequence[cloudwatch.IAlarm],
) -> cloudwatch.Dashboard:
    s = service_metrics
    service = s.service
    settings = service.alarms

    def both(source: metrics.MetricSource, statistic: str) -> list[cloudwatch.IMetric]:
        return [s.target_group(source, track, statistic) for track in TRACKS]

    rows: list[list[cloudwatch.IWidget]] = [
        [
            cloudwatch.TextWidget(
                markdown=f"# {service.name}\n{service.description}\n\nStable and canary side by side. The rollout's "
                f"state, weights and last judgement: `tessera rollout status {service.name}`.",
                width=HALF,
                height=6,
            ),
            cloudwatch.AlarmStatusWidget(alarms=list(alarms), title="Alarms", width=HALF, height=6),
        ],
        [
            _graph("Requests per minute", both(metrics.REQUEST_COUNT, "Sum"), THIRD),
            _graph("Canary share of requests (observed weights)", [s.canary_share()], THIRD, PERCENT),
            _graph("Healthy targets", both(metrics.HEALTHY_HOSTS, "Minimum"), THIRD),
        ],
        [
            _graph("Target 5xx per minute", both(metrics.TARGET_5XX, "Sum"), THIRD),
            _graph(
                "Connection errors per minute (resets, timeouts)", both(metrics.TARGET_CONNECTION_ERRORS, "Sum"), THIRD
            ),
            _graph(
                "5xx rate, both tracks",
                [s.five_xx_rate(settings.min_requests_per_minute)],
                THIRD,
                PERCENT,
                [cloudwatch.HorizontalAnnotation(value=settings.five_xx_rate_percent, label="alarm")],
            ),
        ],
        [
            _graph("p50 response time", both(metrics.TARGET_RESPONSE_TIME, "p50"), THIRD, SECONDS),
            _graph("p90 response time", both(metrics.TARGET_RESPONSE_TIME, "p90"), THIRD, SECONDS),
            _graph(
                "p99 response time",
                both(metrics.TARGET_RESPONSE_TIME, "p99"),
                THIRD,
                SECONDS,
                [cloudwatch.HorizontalAnnotation(value=settings.p99_latency_seconds, label="alarm")],
            ),
        ],
        [
            _graph("Pod restarts", [s.workload(metrics.POD_RESTARTS, t, "Sum") for t in TRACKS], THIRD),
            _graph(
                "Replicas (desired, ready)",
                [
                    s.workload(source, t, "Maximum", f"{t} {source.name}")
                    for t in TRACKS
                    for source in (metrics.REPLICAS_DESIRED, metrics.REPLICAS_READY)
                ],
                THIRD,
            ),
            _graph("Pending pods", [s.workload(metrics.POD_STATUS_PENDING, t, "Sum") for t in TRACKS], THIRD),
        ],
    ]
    if service.is_neuron:
        rows.append([_graph("NeuronCore utilization", [s.neuroncore_utilization(t) for t in TRACKS], FULL, PERCENT)])
    if service.metrics is not None:
        rows += _judged_rows(s)
    return _dashboard(scope, construct_id, name, rows)


def _judged_rows(s: ServiceMetrics) -> list[list[cloudwatch.IWidget]]:
    """The serving runtime's figures per track as the rollout judge measured them (PromQL over the Prometheus
    workspace) and published them to CloudWatch: what users feel of an LLM, which the load balancer cannot see."""

    def per_track(source: metrics.MetricSource) -> list[cloudwatch.IMetric]:
        return [s.judged(source, track) for track in TRACKS]

    return [
        [
            cloudwatch.TextWidget(
                markdown="## Serving runtime, as the rollout judged it\nPublished by the rollout judge at every "
                f"analysis interval while a rollout of {s.service.name} judges its canary (namespace "
                f"`{metrics.JUDGED_NAMESPACE}`): the graphs below are empty between rollouts.",
                width=FULL,
                height=2,
            )
        ],
        [
            _graph(
                "Time to first token (p50, p99)",
                [
                    s.judged(source, track).with_(label=f"{track} {quantile}")
                    for track in TRACKS
                    for source, quantile in ((metrics.JUDGED_TTFT_P50, "p50"), (metrics.JUDGED_TTFT_P99, "p99"))
                ],
                THIRD,
                SECONDS,
            ),
            _graph("Time per output token (p99)", per_track(metrics.JUDGED_TPOT_P99), THIRD, SECONDS),
            _graph("End-to-end latency (p99)", per_track(metrics.JUDGED_E2E_P99), THIRD, SECONDS),
        ],
        [
            _graph("Runtime error rate", per_track(metrics.JUDGED_RUNTIME_ERROR_RATE), THIRD, PERCENT),
            _graph("Output tokens per second per pod", per_track(metrics.JUDGED_TOKENS_PER_SECOND_PER_POD), THIRD),
            _graph("Cost per million output tokens", per_track(metrics.JUDGED_COST_PER_MILLION_OUTPUT_TOKENS), THIRD),
        ],
    ]


def _states_metric(source: metrics.MetricSource, state_machine_arn: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=source.namespace,
        metric_name=source.name,
        dimensions_map=source.dimensions_map(StateMachineArn=state_machine_arn),
        statistic="Sum",
        period=Duration.minutes(5),
    )


def _dashboard(
    scope: Construct, construct_id: str, name: str, rows: list[list[cloudwatch.IWidget]]
) -> cloudwatch.Dashboard:
    # Three hours: the longest range Metrics Insights queries (the per-node Neuron graphs) can show.
    dashboard = cloudwatch.Dashboard(scope, construct_id, dashboard_name=name, default_interval=Duration.hours(3))
    for row in rows:
        dashboard.add_widgets(*row)
    return dashboard
