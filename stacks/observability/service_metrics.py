"""CloudWatch metrics and metric-math expressions of one service, per track, shared by its alarms and both
dashboards. Every metric comes from the catalogue in lambda/tessera_shared/metrics.py, with the dimension set
documented there."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch

from stacks.config.services import ServiceSpec
from stacks.services.render_inputs import track_name
from tessera_shared import metrics
from tessera_shared.constants import NAMESPACE, TRACKS

PERIOD = Duration.minutes(1)


@dataclass(frozen=True)
class ServiceMetrics:
    """`key` makes the metric-math ids of this service unique when several services share one graph."""

    service: ServiceSpec
    key: str
    target_groups: Mapping[str, str]  # track -> TargetGroup dimension value (`targetgroup/<name>/<id>`)
    load_balancer: str  # LoadBalancer dimension value (`app/<name>/<id>`)
    cluster_name: str

    def target_group(
        self, source: metrics.MetricSource, track: str, statistic: str, label: str = ""
    ) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=source.namespace,
            metric_name=source.name,
            dimensions_map=source.dimensions_map(
                TargetGroup=self.target_groups[track], LoadBalancer=self.load_balancer
            ),
            statistic=statistic,
            period=PERIOD,
            label=label or f"{self.service.name} {track}",
        )

    def workload(self, source: metrics.MetricSource, track: str, statistic: str, label: str = "") -> cloudwatch.Metric:
        """A Container Insights metric of the track's Deployment (PodName is the Deployment's name)."""
        return cloudwatch.Metric(
            namespace=source.namespace,
            metric_name=source.name,
            dimensions_map=source.dimensions_map(
                PodName=track_name(self.service, track), Namespace=NAMESPACE, ClusterName=self.cluster_name
            ),
            statistic=statistic,
            period=PERIOD,
            label=label or f"{self.service.name} {track}",
        )

    def judged(self, source: metrics.MetricSource, track: str) -> cloudwatch.Metric:
        """A figure the rollout judge published for the track at an analysis interval (Service, Track)."""
        return cloudwatch.Metric(
            namespace=source.namespace,
            metric_name=source.name,
            dimensions_map=source.dimensions_map(Service=self.service.name, Track=track),
            statistic="Average",
            period=PERIOD,
            label=f"{self.service.name} {track}",
        )

    def neuroncore_utilization(self, track: str) -> cloudwatch.Metric:
        """Average over the NeuronCores of the track's pods (Service is the track's Kubernetes Service)."""
        source = metrics.POD_NEURONCORE_UTILIZATION
        return cloudwatch.Metric(
            namespace=source.namespace,
            metric_name=source.name,
            dimensions_map=source.dimensions_map(
                ClusterName=self.cluster_name, Namespace=NAMESPACE, Service=track_name(self.service, track)
            ),
            statistic="Average",
            period=PERIOD,
            label=f"{self.service.name} {track}",
        )

    def _both(self, source: metrics.MetricSource, statistic: str, name: str) -> dict[str, cloudwatch.IMetric]:
        return {f"{name}{track[0]}{self.key}": self.target_group(source, track, statistic) for track in TRACKS}

    def requests(self) -> cloudwatch.MathExpression:
        parts = self._both(metrics.REQUEST_COUNT, "Sum", "req")
        return cloudwatch.MathExpression(
            expression=" + ".join(f"FILL({name}, 0)" for name in parts),
            using_metrics=parts,
            label=f"{self.service.name} requests",
            period=PERIOD,
        )

    def five_xx_rate(self, min_requests: int) -> cloudwatch.MathExpression:
        """Target 5xx plus connection errors (a reset or timed-out target: the client gets a 502/504) over all
        requests, both tracks, in percent; 0 in a minute with fewer than `min_requests` requests."""
        errors = {
            **self._both(metrics.TARGET_5XX, "Sum", "fivexx"),
            **self._both(metrics.TARGET_CONNECTION_ERRORS, "Sum", "connerr"),
        }
        requests = self._both(metrics.REQUEST_COUNT, "Sum", "req")
        errors_sum = " + ".join(f"FILL({name}, 0)" for name in errors)
        requests_sum = " + ".join(f"FILL({name}, 0)" for name in requests)
        return cloudwatch.MathExpression(
            expression=f"IF(({requests_sum}) >= {min_requests}, 100 * ({errors_sum}) / ({requests_sum}), 0)",
            using_metrics={**errors, **requests},
            label=f"{self.service.name} 5xx %",
            period=PERIOD,
        )

    def worse_track_latency(self, percentile: str) -> cloudwatch.MathExpression:
        """The higher of the two tracks' percentile response time; a track without traffic reads 0."""
        parts = self._both(metrics.TARGET_RESPONSE_TIME, percentile, f"lat{percentile.replace('.', '')}")
        return cloudwatch.MathExpression(
            expression=f"MAX([{', '.join(f'FILL({name}, 0)' for name in parts)}])",
            using_metrics=parts,
            label=f"{self.service.name} {percentile}",
            period=PERIOD,
        )

    def canary_share(self) -> cloudwatch.MathExpression:
        """The share of requests the canary received: the weights as traffic shows them."""
        parts = self._both(metrics.REQUEST_COUNT, "Sum", "share")
        stable, canary = parts
        return cloudwatch.MathExpression(
            expression=f"IF(FILL({stable}, 0) + FILL({canary}, 0) > 0, "
            f"100 * FILL({canary}, 0) / (FILL({stable}, 0) + FILL({canary}, 0)), 0)",
            using_metrics=parts,
            label=f"{self.service.name} canary share %",
            period=PERIOD,
        )

    def pods_pending(self) -> cloudwatch.MathExpression:
        parts = {
            f"pend{track[0]}{self.key}": self.workload(metrics.POD_STATUS_PENDING, track, "Maximum") for track in TRACKS
        }
        return cloudwatch.MathExpression(
            expression=f"MAX([{', '.join(f'FILL({name}, 0)' for name in parts)}])",
            using_metrics=parts,
            label=f"{self.service.name} pending pods",
            period=PERIOD,
        )
