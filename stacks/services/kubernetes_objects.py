"""The Kubernetes objects of an inference service, as pure functions of its config.

All services share one namespace, `inference` (restricted Pod Security): the rollout engine gets a
single namespace-scoped access entry, and NetworkPolicies still isolate each service's pods.

Per service: a ServiceAccount (no token mounted; AWS access comes from its Pod Identity
association), and per track (`stable`, `canary`) a Deployment, a ClusterIP Service and a
TargetGroupBinding into the track's CDK-owned target group; the two Deployments differ only in
track label, model version and replicas. A PodDisruptionBudget per track, the stable track's
autoscaler and a NetworkPolicy complete it (see `_network_policy`). The autoscaler is a CPU HPA, or, for a service with
`scaling`, a KEDA ScaledObject (same name as the Deployment) that adopts that HPA and scales on the
configured signal; the canary is never autoscaled (the rollout engine sizes it).

What reaches the container (the contract for image builders):

| variable | value |
|---|---|
| `SERVICE_NAME` | the service name |
| `TRACK` | `stable` or `canary` |
| `MODEL_NAME` | the model name from config |
| `MODEL_VERSION` | the version this track serves |
| `MODEL_S3_URI` | `s3://<model bucket>/<model prefix><version>/`, holding `manifest.json` and the artifacts |
| `MODEL_CACHE_DIR` | `/models`, the model cache: when the server starts, it holds the registered artifacts, verified |

Before the server starts, the `model-loader` init container (stacks/services/model_loader.py) runs Tessera's loader
in the same image: it downloads the version's registered object versions into `/models` and checks each one's
SHA-256, and a mismatch fails the pod with the reason. The image therefore provides `python3` (3.9 or later) with
`boto3`; the server reads its model from `/models` and needs no S3 access of its own.

The model cache sits on local NVMe where the node type has it and is sized by `resources.model_cache`.

`/dev/shm` is a memory-backed emptyDir of `resources.shm` when set (it counts against the memory limit).
Neuron pods request whole devices (`aws.amazon.com/neuron`) when their cores are a whole number of
devices, one `aws.amazon.com/neuroncore` for a single core, and only other shapes use the Neuron
scheduler extension; GPU pods request `nvidia.com/gpu` and tolerate the `nvidia.com/gpu` taint; pods on an
EFA pool also request `vpc.amazonaws.com/efa`. The placement rendered here is the first deploy's: after it,
the rollout engine owns each track's placement (a version compiled for another allowed target moves there).

The image must serve HTTP on the configured port as UID 1000 with a read-only root filesystem
(`/tmp` and `/models` are writable), answer the health path once the model is loaded, and finish
in-flight requests after SIGTERM (the pod keeps receiving no new traffic from the drain onwards).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from stacks.config.accelerator_pools import AcceleratorPool, GpuPoolConfig, NeuronPoolConfig
from stacks.config.environment import EnvironmentConfig
from stacks.config.instance_types import ACCELERATOR_INSTANCE_TYPES
from stacks.config.observability import ScalingSpec
from stacks.config.services import EKS_SERVICE_CIDRS, AcceleratorSpec, ServiceSpec, memory_bytes
from stacks.services.model_loader import loader_container, loader_volume
from tessera_shared import metrics
from tessera_shared.constants import (
    ACCELERATOR_LABEL,
    DO_NOT_DISRUPT_ANNOTATION,
    EFA_RESOURCE,
    GENERAL_POOL,
    GENERAL_POOL_ARCHITECTURE,
    GPU_RESOURCE,
    GPU_TAINT_KEY,
    KEDA_API_VERSION,
    MODEL_VERSION_LABEL,
    NAMESPACE,
    NEURON_DEVICE_RESOURCE,
    NEURON_SCHEDULER_NAME,
    NEURON_TAINT_KEY,
    NEURONCORE_RESOURCE,
    POOL_LABEL,
    SERVICE_LABEL,
    SERVING_CONTAINER,
    TRACK_LABEL,
    TRACKS,
    track_object_name,
)

MODEL_CACHE_DIR = "/models"
RUN_AS_USER = 1000
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}
STARTUP_PERIOD_SECONDS = 10
PRE_STOP_EXTRA_SECONDS = 5
SHUTDOWN_SECONDS = 30
EPHEMERAL_HEADROOM = 2 * 2**30
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
DEFAULT_DENY_POLICY = "default-deny"
# The EKS Pod Identity agent (host network on every node) serves credentials here (EKS user guide, Pod Identity).
POD_IDENTITY_AGENT_CIDR = "169.254.170.23/32"


@dataclass(frozen=True)
class Placement:
    """Where a service's pods may run and which accelerator resources they request."""

    node_selector: dict[str, str]
    tolerations: list[dict]
    neuron_resources: dict[str, int]  # aws.amazon.com/neuron (whole devices) or aws.amazon.com/neuroncore
    scheduler_name: str | None
    efa_interfaces: int = 0
    shm: str | None = None
    model_cache: str | None = None
    gpus: int = 0  # nvidia.com/gpu

    @property
    def accelerator_resources(self) -> dict[str, str]:
        """Every accelerator resource the serving container requests (and limits to the same amount)."""
        amounts = {name: str(count) for name, count in self.neuron_resources.items()}
        if self.gpus:
            amounts[GPU_RESOURCE] = str(self.gpus)
        if self.efa_interfaces:
            amounts[EFA_RESOURCE] = str(self.efa_interfaces)
        return amounts


@dataclass(frozen=True)
class ServiceNetwork:
    """The addresses the NetworkPolicies name (IPv4 only: Tessera's VPC has no IPv6 CIDR). The load balancer and
    the interface endpoints sit in subnets of their own (stacks/network/stack.py), which no node or pod shares."""

    vpc_cidr: str
    load_balancer_cidrs: Sequence[str]
    endpoint_cidrs: Sequence[str]
    internal_ports: Mapping[str, int]  # where each non-public service is reached on the internal load balancer


@dataclass(frozen=True)
class DeployTimeValues:
    """Values that exist only in the deployed account (CDK tokens at synth, placeholders for review)."""

    image_uri: str
    model_bucket: str
    target_group_arns: Mapping[str, str]
    network: ServiceNetwork
    # What KEDA's CloudWatch triggers query by: the region, the cluster (Container Insights' ClusterName) and the
    # stable target group's and load balancer's metric dimension values (`targetgroup/...`, `app/...`).
    region: str
    cluster_name: str
    stable_target_group_dimension: str
    load_balancer_dimension: str


def neuron_request(cores: int, pool: NeuronPoolConfig) -> tuple[dict[str, int], str | None]:
    """Whole devices when the cores are a whole number of devices, a single core as a core; only other
    shapes need the Neuron scheduler extension (for contiguous cores), whose choices Karpenter's own
    simulation cannot see (aws/karpenter-provider-aws#7265)."""
    per_device = pool.cores_per_device
    if cores % per_device == 0:
        return {NEURON_DEVICE_RESOURCE: cores // per_device}, None
    if cores == 1:
        return {NEURONCORE_RESOURCE: 1}, None
    return {NEURONCORE_RESOURCE: cores}, NEURON_SCHEDULER_NAME


def efa_request(share: int, pool: AcceleratorPool) -> int:
    """EFA interfaces in proportion to the node's accelerators (NeuronCores or GPUs) the pod takes, at least
    one, on an EFA pool."""
    if pool.efa is None:
        return 0
    interfaces = {name: ACCELERATOR_INSTANCE_TYPES[name].efa_interfaces for name in pool.instance_types}
    node = min(interfaces, key=interfaces.__getitem__)
    return max(1, math.ceil(interfaces[node] * share / pool.accelerators_per_node[node]))


def placement_for(service: ServiceSpec, pool: AcceleratorPool | None) -> Placement:
    """Where the service's pods run at first deploy (its current accelerator)."""
    return target_placement(service, service.accelerator, pool)


def target_placement(service: ServiceSpec, accelerator: AcceleratorSpec, pool: AcceleratorPool | None) -> Placement:
    """Where the service's pods run on one of its allowed targets (pool None: the Graviton general pool)."""
    resources = service.resources
    if pool is None:
        return Placement(
            node_selector={POOL_LABEL: GENERAL_POOL, "kubernetes.io/arch": GENERAL_POOL_ARCHITECTURE},
            tolerations=[],
            neuron_resources={},
            scheduler_name=None,
            shm=resources.shm,
            model_cache=resources.model_cache,
        )
    if isinstance(pool, GpuPoolConfig):
        return Placement(
            node_selector={ACCELERATOR_LABEL: pool.accelerator, POOL_LABEL: pool.name},
            tolerations=[{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
            neuron_resources={},
            scheduler_name=None,
            efa_interfaces=efa_request(accelerator.gpus, pool),
            shm=resources.shm,
            model_cache=resources.model_cache,
            gpus=accelerator.gpus,
        )
    cores = accelerator.neuron_cores
    neuron_resources, scheduler_name = neuron_request(cores, pool)
    return Placement(
        node_selector={ACCELERATOR_LABEL: pool.accelerator, POOL_LABEL: pool.name},
        tolerations=[{"key": NEURON_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
        neuron_resources=neuron_resources,
        scheduler_name=scheduler_name,
        efa_interfaces=efa_request(cores, pool),
        shm=resources.shm,
        model_cache=resources.model_cache,
    )


def needs_neuron_scheduler(config: EnvironmentConfig) -> bool:
    """Whether the cluster needs the Neuron scheduler pool: any allowed target of any service (not only where it runs
    now) whose cores take the scheduler extension, since a rollout can move a service onto it."""
    return any(
        target_placement(service, target.accelerator, target.pool).scheduler_name
        for service in config.services
        for target in config.allowed_targets(service)
    )


def namespace_object() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": NAMESPACE,
            "labels": {
                "app.kubernetes.io/part-of": "tessera",
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
                # The load balancer controller then holds a new pod unready until its target is healthy.
                "elbv2.k8s.aws/pod-readiness-gate-inject": "enabled",
            },
        },
    }


def default_deny_policy() -> dict:
    """Every pod of the namespace is isolated both ways; each service's own policy then admits what it needs."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(DEFAULT_DENY_POLICY, {"app.kubernetes.io/part-of": "tessera"}),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }


def track_name(service: ServiceSpec, track: str) -> str:
    return track_object_name(service.name, track)


def service_objects(
    service: ServiceSpec,
    *,
    placement: Placement,
    values: DeployTimeValues,
    drain_seconds: int,
) -> list[dict]:
    """Every object of one service, in apply order."""
    objects: list[dict] = [_service_account(service)]
    for track in TRACKS:
        objects.append(_deployment(service, track, placement=placement, values=values, drain_seconds=drain_seconds))
        objects.append(_service(service, track))
        objects.append(_target_group_binding(service, track, values.target_group_arns[track]))
        objects.append(_disruption_budget(service, track))
    objects.append(_scaled_object(service, service.scaling, values) if service.scaling else _autoscaler(service))
    objects.append(_network_policy(service, values.network))
    return objects


def scaling_objects() -> list[dict]:
    """Namespace-wide KEDA objects: the CloudWatch triggers' authentication (the KEDA operator's own Pod Identity
    role: `podIdentity.provider: aws`, identity owner keda). The rollout's access to ScaledObjects (stable's floor)
    is in its own Role (stacks/rollout/kubernetes_access.py)."""
    labels = {"app.kubernetes.io/part-of": "tessera"}
    return [
        {
            "apiVersion": KEDA_API_VERSION,
            "kind": "TriggerAuthentication",
            "metadata": _metadata(CLOUDWATCH_AUTHENTICATION, labels),
            "spec": {"podIdentity": {"provider": "aws", "identityOwner": "keda"}},
        },
    ]


def _labels(service: ServiceSpec, track: str | None = None) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": service.name,
        "app.kubernetes.io/part-of": "tessera",
        SERVICE_LABEL: service.name,
    }
    if track is not None:
        labels[TRACK_LABEL] = track
    return labels


def _selector(service: ServiceSpec, track: str) -> dict[str, str]:
    return {SERVICE_LABEL: service.name, TRACK_LABEL: track}


def _metadata(name: str, labels: dict[str, str]) -> dict:
    return {"name": name, "namespace": NAMESPACE, "labels": labels}


def _service_account(service: ServiceSpec) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(service.name, _labels(service)),
        "automountServiceAccountToken": False,
    }


def _environment(service: ServiceSpec, track: str, model_uri: str) -> list[dict]:
    fixed = {
        "SERVICE_NAME": service.name,
        "TRACK": track,
        "MODEL_NAME": service.model.name,
        "MODEL_VERSION": service.model.version,
        "MODEL_S3_URI": model_uri,
        "MODEL_CACHE_DIR": MODEL_CACHE_DIR,
    }
    return [{"name": key, "value": value} for key, value in {**fixed, **dict(sorted(service.env.items()))}.items()]


def _resources(service: ServiceSpec, placement: Placement) -> dict:
    amounts = {"cpu": service.resources.cpu, "memory": service.resources.memory}
    if placement.model_cache:
        # The cache's emptyDir counts against ephemeral storage: the pod lands where local storage can hold it
        # (plus room for /tmp and logs, which count too).
        amounts["ephemeral-storage"] = f"{(memory_bytes(placement.model_cache) + EPHEMERAL_HEADROOM) // 2**20}Mi"
    amounts |= placement.accelerator_resources
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _volumes(placement: Placement) -> tuple[list[dict], list[dict]]:
    """The pod's scratch dir, the model cache (local NVMe where the node has it: Karpenter RAID0s it under
    kubelet) and shared memory, memory-backed and sized from config (the runtime's default is 64 MiB)."""
    cache: dict = {"sizeLimit": placement.model_cache} if placement.model_cache else {}
    mounts = [
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir, the pod's own /tmp
        {"name": "model-cache", "mountPath": MODEL_CACHE_DIR},
    ]
    volumes = [{"name": "tmp", "emptyDir": {}}, {"name": "model-cache", "emptyDir": cache}]
    if placement.shm:
        mounts.append({"name": "shm", "mountPath": "/dev/shm"})  # noqa: S108 - a memory-backed emptyDir
        volumes.append({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": placement.shm}})
    return mounts, volumes


def _probes(service: ServiceSpec) -> dict:
    http = {"path": service.health_path, "port": "http"}
    allowance = service.startup_allowance_minutes * 60
    return {
        # Model load can take tens of minutes; liveness and readiness only start once this passes.
        "startupProbe": {
            "httpGet": http,
            "periodSeconds": STARTUP_PERIOD_SECONDS,
            "timeoutSeconds": 5,
            "failureThreshold": math.ceil(allowance / STARTUP_PERIOD_SECONDS),
        },
        "readinessProbe": {"httpGet": http, "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 3},
        "livenessProbe": {"httpGet": http, "periodSeconds": 15, "timeoutSeconds": 5, "failureThreshold": 4},
    }


def _deployment(
    service: ServiceSpec, track: str, *, placement: Placement, values: DeployTimeValues, drain_seconds: int
) -> dict:
    model_uri = f"s3://{values.model_bucket}/{service.model_prefix}{service.model.version}/"
    pod_labels = {**_labels(service, track), MODEL_VERSION_LABEL: service.model.version}
    pre_stop = drain_seconds + PRE_STOP_EXTRA_SECONDS
    mounts, volumes = _volumes(placement)
    pod_spec: dict = {
        "serviceAccountName": service.name,
        "automountServiceAccountToken": False,
        "nodeSelector": placement.node_selector,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": pre_stop + SHUTDOWN_SECONDS,
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": topology_key,
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": _selector(service, track)},
            }
            for topology_key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
        ],
        "initContainers": [
            loader_container(
                image=values.image_uri,
                env=_environment(service, track, model_uri),
                cache_mount=next(mount for mount in mounts if mount["mountPath"] == MODEL_CACHE_DIR),
                security_context=CONTAINER_SECURITY,
            )
        ],
        "containers": [
            {
                "name": SERVING_CONTAINER,
                "image": values.image_uri,
                "ports": [{"name": "http", "containerPort": service.port, "protocol": "TCP"}],
                "env": _environment(service, track, model_uri),
                "resources": _resources(service, placement),
                "securityContext": CONTAINER_SECURITY,
                **_probes(service),
                # Keep serving while the load balancer deregisters the pod, then stop.
                "lifecycle": {"preStop": {"sleep": {"seconds": pre_stop}}},
                "volumeMounts": mounts,
            }
        ],
        "volumes": [*volumes, loader_volume()],
    }
    if placement.tolerations:
        pod_spec["tolerations"] = placement.tolerations
    if placement.scheduler_name:
        pod_spec["schedulerName"] = placement.scheduler_name
    template_metadata: dict = {"labels": pod_labels}
    if track == "canary":
        # Canary pods exist only while a rollout runs: Karpenter must not consolidate or drift their nodes away.
        template_metadata["annotations"] = {DO_NOT_DISRUPT_ANNOTATION: "true"}
    spec: dict = {
        "revisionHistoryLimit": 5,
        "progressDeadlineSeconds": service.startup_allowance_minutes * 60 + 600,
        "selector": {"matchLabels": _selector(service, track)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {"metadata": template_metadata, "spec": pod_spec},
    }
    # The stable track's size belongs to its HPA; the canary's to the rollout engine (0 at rest).
    if track == "canary":
        spec["replicas"] = 0
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(track_name(service, track), _labels(service, track)),
        "spec": spec,
    }


def _service(service: ServiceSpec, track: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(track_name(service, track), _labels(service, track)),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(service, track),
            "ports": [{"name": "http", "port": service.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _target_group_binding(service: ServiceSpec, track: str, target_group_arn: str) -> dict:
    return {
        "apiVersion": "elbv2.k8s.aws/v1beta1",
        "kind": "TargetGroupBinding",
        "metadata": _metadata(track_name(service, track), _labels(service, track)),
        "spec": {
            "serviceRef": {"name": track_name(service, track), "port": service.port},
            "targetGroupARN": target_group_arn,
            "targetType": "ip",
        },
    }


def _disruption_budget(service: ServiceSpec, track: str) -> dict:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(track_name(service, track), _labels(service, track)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _selector(service, track)}},
    }


def _autoscaler(service: ServiceSpec) -> dict:
    """CPU utilization for every service: metrics-server provides it with no extra adapter. For Neuron
    services it is a proxy (request batching, tokenization and sampling run on the host CPU)."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(track_name(service, "stable"), _labels(service, "stable")),
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
    metadata = _metadata(name, _labels(service, "stable"))
    metadata["annotations"] = {"scaledobject.keda.sh/transfer-hpa-ownership": "true"}
    return {
        "apiVersion": KEDA_API_VERSION,
        "kind": "ScaledObject",
        "metadata": metadata,
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


def _ip_blocks(cidrs: Sequence[str]) -> list[dict]:
    return [{"ipBlock": {"cidr": cidr}} for cidr in cidrs]


def _declared_egress(service: ServiceSpec, network: ServiceNetwork) -> list[dict]:
    """The service's `egress` CIDRs, each without the VPC and the Service ClusterIP ranges it holds (config refuses
    a CIDR inside them)."""
    blocks = []
    for cidr in service.egress:
        network_of = ipaddress.IPv4Network(cidr)
        held = [c for c in (network.vpc_cidr, *EKS_SERVICE_CIDRS) if ipaddress.IPv4Network(c).subnet_of(network_of)]
        blocks.append({"ipBlock": {"cidr": cidr, "except": held} if held else {"cidr": cidr}})
    return blocks


def _network_policy(service: ServiceSpec, network: ServiceNetwork) -> dict:
    """What a service's pods may do on top of the namespace's default deny.

    Ingress: only the load balancer (its own subnets), on the service port; its health checks come the same way.
    The kubelet's probes need no rule: the VPC CNI's network policy agent always admits traffic from the pod's own
    node (aws/aws-network-policy-agent#56, PR #65). The node subnets are not admitted: they hold every pod.
    Egress: DNS (kube-dns by namespace and pod selector, as the VPC CNI's agent expects:
    aws/aws-network-policy-agent#230), the EKS Pod Identity agent (its IPv4 link-local address; the IPv6
    one, fd00:ec2::23, would matter only on an IPv6 cluster), HTTPS to the interface endpoints' subnets (S3's
    endpoint answers there for the whole VPC: stacks/network/stack.py) and to what `egress` in config declares
    (never the VPC or the Service ClusterIP ranges, so kubernetes.default and in-cluster webhooks stay out of
    reach), and, for a service that config says calls others, the load balancers' subnets at the callees' ports:
    calls go through the internal load balancer, so canary weights and judgement cover internal callers too, and
    a pod reaches only the services it calls.
    """
    https = {"protocol": "TCP", "port": 443}
    egress: list[dict] = [
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }
            ],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        },
        {"to": _ip_blocks([POD_IDENTITY_AGENT_CIDR]), "ports": [{"protocol": "TCP", "port": 80}]},
        {"to": [*_ip_blocks(network.endpoint_cidrs), *_declared_egress(service, network)], "ports": [https]},
    ]
    if service.calls:
        egress.append(
            {
                "to": _ip_blocks(network.load_balancer_cidrs),
                "ports": [{"protocol": "TCP", "port": network.internal_ports[callee]} for callee in service.calls],
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(service.name, _labels(service)),
        "spec": {
            "podSelector": {"matchLabels": {SERVICE_LABEL: service.name}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": _ip_blocks(network.load_balancer_cidrs),
                    "ports": [{"protocol": "TCP", "port": service.port}],
                }
            ],
            "egress": egress,
        },
    }
