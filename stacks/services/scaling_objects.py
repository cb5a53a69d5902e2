"""The stable track's autoscaler: a CPU HorizontalPodAutoscaler, or, for a service with `scaling`, a KEDA
ScaledObject (same name as the Deployment) that adopts that HPA and scales on the configured signal through
CloudWatch; and the namespace-wide KEDA objects those triggers use. The canary is never autoscaled (the rollout engine
sizes it)."""

from __future__ import annotations

from stacks.config.observability import ScalingSpec
from stacks.config.services import ServiceSpec
from stacks.services.render_inputs import DeployTimeValues, labels, metadata, track_name
from tessera_shared import metrics
from tessera_shared.constants import KEDA_API_VERSION, NAMESPACE, SERVING_CONTAINER

# Model servers are slow to start: scale down only after ten quiet minutes.
SCALE_DOWN_STABILIZATION_SECONDS = 600
# KEDA: the TriggerAuthentication the CloudWatch triggers use.
CLOUDWATCH_AUTHENTICATION = "tessera-cloudwatch"
# KEDA polls every 30 s; CloudWatch is read over 5 one-minute periods, skipping the newest minute, which the load
# balancer and the agent have not finished publishing.
KEDA_POLLING_SECONDS = 30
CLOUDWATCH_PERIOD_SECONDS = 60
CLOUDWATCH_WINDOW_SECONDS = 300
CLOUDWATCH_END_OFFSET_SECONDS = 60


def scaling_objects() -> list[dict]:
    """Namespace-wide KEDA objects: the CloudWatch triggers' authentication (the KEDA operator's own Pod Identity
    role: `podIdentity.provider: aws`, identity owner keda). The rollout's access to ScaledObjects (stable's floor)
    is in its own Role (stacks/rollout/kubernetes_access.py)."""
    part_of = {"app.kubernetes.io/part-of": "tessera"}
    return [
        {
            "apiVersion": KEDA_API_VERSION,
            "kind": "TriggerAuthentication",
            "metadata": metadata(CLOUDWATCH_AUTHENTICATION, part_of),
            "spec": {"podIdentity": {"provider": "aws", "identityOwner": "keda"}},
        },
    ]


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
