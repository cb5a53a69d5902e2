"""The alarms of one service and of the environment.

Per service (thresholds from `services[].alarms`), four metric alarms without actions and one composite
alarm, ALARM when any of them is, that notifies the environment's alerts topic:
- 5xx rate: target 5xx plus connection errors of both tracks over their requests (what users got);
- p99 latency of the worse track (the canary counts only while it serves);
- no healthy targets in the stable target group (health-check metrics are reported without traffic, so a
  missing datapoint counts as breaching);
- pods pending longer than the startup allowance: a pod of either track Pending (not scheduled, or its
  image not pulled) in every minute of `startup_allowance_minutes`.

Per environment: the load balancer's own 5xx rate (shared by all services, so it names none) and Neuron
execution errors, which Container Insights publishes per node only: the alarm reads the sum over every
Neuron node of the cluster; the dashboard breaks it down by node.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks.config.observability import ObservabilityConfig
from stacks.observability.names import EnvironmentAlarmNames, ServiceAlarmNames
from stacks.observability.service_metrics import ServiceMetrics
from tessera_shared import metrics

GREATER = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
AT_LEAST = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
NEURON_ERRORS_PERIOD = Duration.minutes(5)


class ServiceAlarms(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        service_metrics: ServiceMetrics,
        names: ServiceAlarmNames,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        service = service_metrics.service
        settings = service.alarms
        window = {
            "evaluation_periods": settings.evaluation_minutes,
            "datapoints_to_alarm": settings.breaching_minutes,
        }
        self.five_xx_rate = service_metrics.five_xx_rate(settings.min_requests_per_minute).create_alarm(
            self,
            "FiveXxRate",
            alarm_name=names.five_xx_rate,
            alarm_description=f"{service.name}: more than {settings.five_xx_rate_percent:g}% of requests failed "
            "(target 5xx or connection errors, both tracks)",
            threshold=settings.five_xx_rate_percent,
            comparison_operator=GREATER,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            **window,
        )
        self.p99_latency = service_metrics.worse_track_latency("p99").create_alarm(
            self,
            "P99Latency",
            alarm_name=names.p99_latency,
            alarm_description=f"{service.name}: p99 response time above {settings.p99_latency_seconds:g} s",
            threshold=settings.p99_latency_seconds,
            comparison_operator=GREATER,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            **window,
        )
        minutes = settings.no_healthy_targets_minutes
        self.no_healthy_targets = service_metrics.target_group(metrics.HEALTHY_HOSTS, "stable", "Minimum").create_alarm(
            self,
            "NoHealthyTargets",
            alarm_name=names.no_healthy_targets,
            alarm_description=f"{service.name}: the stable target group had no healthy target for {minutes} minutes",
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=minutes,
            datapoints_to_alarm=minutes,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        allowance = service.startup_allowance_minutes
        self.pods_pending = service_metrics.pods_pending().create_alarm(
            self,
            "PodsPending",
            alarm_name=names.pods_pending,
            alarm_description=f"{service.name}: a pod has been Pending for longer than its {allowance}-minute "
            "startup allowance",
            threshold=1,
            comparison_operator=AT_LEAST,
            evaluation_periods=allowance,
            datapoints_to_alarm=allowance,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        # Only the composite notifies: one page per service, whichever child fired.
        self.metric_alarms = [self.five_xx_rate, self.p99_latency, self.no_healthy_targets, self.pods_pending]
        self.composite = cloudwatch.CompositeAlarm(
            self,
            "Composite",
            composite_alarm_name=names.composite,
            alarm_description=f"{service.name}: one of its alarms is in ALARM (5xx rate, p99 latency, no healthy "
            "targets, pods pending)",
            alarm_rule=cloudwatch.AlarmRule.any_of(*self.metric_alarms),
        )
        self.composite.add_alarm_action(actions.SnsAction(topic))
        self.composite.add_ok_action(actions.SnsAction(topic))


class EnvironmentAlarms(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: ObservabilityConfig,
        names: EnvironmentAlarmNames,
        load_balancers: Sequence[str],
        cluster_name: str,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.load_balancer_5xx_rate = load_balancer_5xx_rate(load_balancers).create_alarm(
            self,
            "LoadBalancer5xxRate",
            alarm_name=names.load_balancer_5xx_rate,
            alarm_description="The load balancers themselves answered more than "
            f"{settings.load_balancer_5xx_rate_percent:g}% of requests with 5xx (502/503/504: no healthy target, "
            "a reset or a timeout); all services together",
            threshold=settings.load_balancer_5xx_rate_percent,
            comparison_operator=GREATER,
            evaluation_periods=5,
            datapoints_to_alarm=3,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.neuron_execution_errors = neuron_execution_errors(cluster_name).create_alarm(
            self,
            "NeuronExecutionErrors",
            alarm_name=names.neuron_execution_errors,
            alarm_description=f"At least {settings.neuron_execution_errors} Neuron execution errors in 5 minutes, "
            "twice in a row, across the cluster's Neuron nodes (published per node only: see the environment "
            "dashboard for the node, then the pods on it)",
            threshold=settings.neuron_execution_errors,
            comparison_operator=AT_LEAST,
            evaluation_periods=2,
            datapoints_to_alarm=2,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.alarms = [self.load_balancer_5xx_rate, self.neuron_execution_errors]
        for alarm in self.alarms:
            alarm.add_alarm_action(actions.SnsAction(topic))
            alarm.add_ok_action(actions.SnsAction(topic))


def load_balancer_5xx_rate(load_balancers: Sequence[str]) -> cloudwatch.MathExpression:
    """The 5xx the load balancers answer themselves, as a share of all their requests (both balancers together)."""

    def metric(source: metrics.MetricSource, load_balancer: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=source.namespace,
            metric_name=source.name,
            dimensions_map=source.dimensions_map(LoadBalancer=load_balancer),
            statistic="Sum",
            period=Duration.minutes(1),
        )

    using: dict[str, cloudwatch.IMetric] = {}
    for index, load_balancer in enumerate(load_balancers):
        using[f"lbfivexx{index}"] = metric(metrics.LOAD_BALANCER_5XX, load_balancer)
        using[f"lbreq{index}"] = metric(metrics.LOAD_BALANCER_REQUESTS, load_balancer)
    five_xx = " + ".join(f"FILL(lbfivexx{index}, 0)" for index in range(len(load_balancers)))
    requests = " + ".join(f"FILL(lbreq{index}, 0)" for index in range(len(load_balancers)))
    return cloudwatch.MathExpression(
        expression=f"IF(({requests}) > 0, 100 * ({five_xx}) / ({requests}), 0)",
        using_metrics=using,
        label="load balancer 5xx %",
        period=Duration.minutes(1),
    )


def neuron_execution_errors(cluster_name: str) -> cloudwatch.Metric:
    source = metrics.NODE_NEURON_EXECUTION_ERRORS
    return cloudwatch.Metric(
        namespace=source.namespace,
        metric_name=source.name,
        dimensions_map=source.dimensions_map(ClusterName=cluster_name),
        statistic="Sum",
        period=NEURON_ERRORS_PERIOD,
        label="Neuron execution errors (all nodes)",
    )
