"""The stable track's autoscaler: a CPU HorizontalPodAutoscaler, or, for a service with `scaling`, a KEDA
ScaledObject (same name as the Deployment) that adopts that HPA and scales on the configured signal through
CloudWatch, or, for the serving runtime's queue and KV-cache, through the environment's Prometheus workspace; and the
namespace-wide KEDA objects those triggers use. The canary is never autoscaled (the rollout engine sizes it)."""

from __future__ import annotations

from collections.abc import Sequence

from stacks.config.observability import RUNTIME_SIGNALS, ScalingSpec
from stacks.config.services import ServiceSpec
from stacks.services.render_inputs import DeployTimeValues, labels, metadata, track_name
from tessera_shared import metrics, runtime_metrics
from tessera_shared.constants import KEDA_API_VERSION, NAMESPACE, SERVING_CONTAINER

# Model servers are slow to start: scale down only after ten quiet minutes.
SCALE_DOWN_STABILIZATION_SECONDS = 600
# KEDA: the TriggerAuthentication the CloudWatch triggers use.
CLOUDWATCH_AUTHENTICATION = "tessera-cloudwatch"
# KEDA: the TriggerAuthentication the Prometheus triggers sign their queries with (SigV4, service aps).
PROMETHEUS_AUTHENTICATION = "tessera-prometheus"
# KEDA polls every 30 s; CloudWatch is read over 5 one-minute periods, skipping the newest minute, which the load
# balancer and the agent have not finished publishing.
KEDA_POLLING_SECONDS = 30
CLOUDWATCH_PERIOD_SECONDS = 60
CLOUDWATCH_WINDOW_SECONDS = 300
CLOUDWATCH_END_OFFSET_SECONDS = 60


def scaling_objects(*, prometheus: bool = False) -> list[dict]:
    """Namespace-wide KEDA objects: the CloudWatch triggers' authentication and, for an environment with a Prometheus
    workspace (`prometheus`), the Prometheus triggers' one. Both are the KEDA operator's own Pod Identity role
    (`podIdentity.provider: aws`, identity owner keda): with no roleArn, KEDA 2.20.2 signs with the operator's own
    credentials (pkg/scalers/aws/aws_common.go, GetAwsAuthorization), and the prometheus scaler signs its queries
    with SigV4 for service aps in the trigger's `awsRegion` (pkg/scalers/aws/aws_sigv4.go). The Prometheus one
    must carry no other auth mode: the scaler refuses pod identity together with `authModes`
    (prometheus_scaler.go, checkAuthConfigWithPodIdentity). The rollout's access to ScaledObjects (stable's floor)
    is in its own Role (stacks/rollout/kubernetes_access.py)."""
    names = [CLOUDWATCH_AUTHENTICATION, *([PROMETHEUS_AUTHENTICATION] if prometheus else [])]
    return [
        {
            "apiVersion": KEDA_API_VERSION,
            "kind": "TriggerAuthentication",
            "metadata": metadata(name, {"app.kubernetes.io/part-of": "tessera"}),
            "spec": {"podIdentity": {"provider": "aws", "identityOwner": "keda"}},
        }
        for name in names
    ]


def needs_prometheus_authentication(services: Sequence[ServiceSpec]) -> bool:
    return any(service.scaling is not None and service.scaling.signal in RUNTIME_SIGNALS for service in services)


def stable_autoscaler(service: ServiceSpec, values: DeployTimeValues) -> dict:
    return _scaled_object(service, service.scaling, values) if service.scaling else _autoscaler(service)


def _autoscaler(service: ServiceSpec) -> dict:
    """CPU utilization for every service: metrics-server provides it with no extra adapter. For Neuron
    services it is a proxy (request batching, tokenization and sampling run on the host CPU)."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(track_name(service, "stable"), labels(service, "stable")),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": track_name(service, "stable")},
            "minReplicas": service.replicas.min,
            "maxReplicas": service.replicas.max,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": service.cpu_target_percent},
                    },
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": SCALE_DOWN_STABILIZATION_SECONDS}},
        },
    }


def _scaled_object(service: ServiceSpec, scaling: ScalingSpec, values: DeployTimeValues) -> dict:
    """KEDA sizes the stable Deployment between replicas.min and max (never to zero) through an HPA of the same
    name as the old CPU HPA: the transfer annotation lets KEDA adopt that HPA when a service moves to `scaling`
    (its admission webhook refuses a second autoscaler for one Deployment otherwise)."""
    name = track_name(service, "stable")
    described = metadata(name, labels(service, "stable"))
    described["annotations"] = {"scaledobject.keda.sh/transfer-hpa-ownership": "true"}
    return {
        "apiVersion": KEDA_API_VERSION,
        "kind": "ScaledObject",
        "metadata": described,
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicaCount": service.replicas.min,
            "maxReplicaCount": service.replicas.max,
            "pollingInterval": KEDA_POLLING_SECONDS,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "name": name,
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": SCALE_DOWN_STABILIZATION_SECONDS}},
                }
            },
            "triggers": [_trigger(service, scaling, values)],
        },
    }


def _trigger(service: ServiceSpec, scaling: ScalingSpec, values: DeployTimeValues) -> dict:
    target = f"{scaling.target:g}"
    if scaling.signal in RUNTIME_SIGNALS:
        return _prometheus_trigger(service, scaling, values)
    if scaling.signal == "cpu":
        return {
            "type": "cpu",
            "metricType": "Utilization",
            "metadata": {"value": target, "containerName": SERVING_CONTAINER},
        }
    if scaling.signal == "requests_per_target":
        # The stable group's requests per minute over a per-pod target: the HPA divides by the pod count itself.
        metric, metric_type, statistic = metrics.REQUEST_COUNT, "AverageValue", "Sum"
        dimensions = metric.dimensions_map(
            TargetGroup=values.stable_target_group_dimension, LoadBalancer=values.load_balancer_dimension
        )
    else:
        # Already an average over the stable pods' NeuronCores: the HPA scales the pod count by value / target.
        metric, metric_type, statistic = metrics.POD_NEURONCORE_UTILIZATION, "Value", "Average"
        dimensions = metric.dimensions_map(
            ClusterName=values.cluster_name, Namespace=NAMESPACE, Service=track_name(service, "stable")
        )
    return {
        "type": "aws-cloudwatch",
        "metricType": metric_type,
        "metadata": {
            "namespace": metric.namespace,
            "metricName": metric.name,
            "dimensionName": ";".join(dimensions),
            "dimensionValue": ";".join(dimensions.values()),
            "metricStat": statistic,
            "metricStatPeriod": str(CLOUDWATCH_PERIOD_SECONDS),
            "metricCollectionTime": str(CLOUDWATCH_WINDOW_SECONDS),
            "metricEndTimeOffset": str(CLOUDWATCH_END_OFFSET_SECONDS),
            "targetMetricValue": target,
            # No datapoints (no traffic, or the agent not yet reporting) reads as 0: the HPA keeps replicas.min.
            "minMetricValue": "0",
            "awsRegion": values.region,
        },
        "authenticationRef": {"name": CLOUDWATCH_AUTHENTICATION},
    }


def _prometheus_trigger(service: ServiceSpec, scaling: ScalingSpec, values: DeployTimeValues) -> dict:
    """KEDA's prometheus scaler against the workspace, on the stable pods' series (the collector's track labels).

    Waiting requests: the query sums the stable pods' queues and the HPA divides by the pod count (AverageValue),
    so the target is queued requests per pod. KV-cache: the query is already the stable pods' average percentage,
    so the HPA scales the pod count by value / target (Value). No series (no pods scraped yet) reads 0, KEDA's
    default `ignoreNullValues`: the HPA keeps replicas.min."""
    if service.metrics is None:
        raise ValueError(f"service {service.name}: scaling.signal {scaling.signal} needs `metrics`")
    names = runtime_metrics.runtime_names(service.metrics.runtime)
    selector = runtime_metrics.track_selector(NAMESPACE, service.name, "stable")
    if scaling.signal == "waiting_requests_per_pod":
        query, metric_type = runtime_metrics.queue_query(names, selector), "AverageValue"
    else:
        query, metric_type = runtime_metrics.kv_cache_percent_query(names, selector), "Value"
    return {
        "type": "prometheus",
        "metricType": metric_type,
        "metadata": {
            "serverAddress": values.prometheus_server_address,
            "query": query,
            "threshold": f"{scaling.target:g}",
            "awsRegion": values.region,
        },
        "authenticationRef": {"name": PROMETHEUS_AUTHENTICATION},
    }
