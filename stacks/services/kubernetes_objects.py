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
Where the pods run and which accelerators they request is their placement (stacks/services/placement.py); the
placement rendered here is the first deploy's: after it, the rollout engine owns each track's placement (a version
compiled for another allowed target moves there).

The image must serve HTTP on the configured port as UID 1000 with a read-only root filesystem
(`/tmp` and `/models` are writable), answer the health path once the model is loaded, and finish
in-flight requests after SIGTERM (the pod keeps receiving no new traffic from the drain onwards).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence

from stacks.config.services import EKS_SERVICE_CIDRS, ServiceSpec, memory_bytes
from stacks.services.model_loader import loader_container, loader_volume
from stacks.services.placement import Placement
from stacks.services.render_inputs import DeployTimeValues, ServiceNetwork, labels, metadata, track_name
from stacks.services.scaling_objects import stable_autoscaler
from tessera_shared.constants import (
    DO_NOT_DISRUPT_ANNOTATION,
    MODEL_VERSION_LABEL,
    NAMESPACE,
    SERVICE_LABEL,
    SERVING_CONTAINER,
    TRACK_LABEL,
    TRACKS,
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
DEFAULT_DENY_POLICY = "default-deny"
# The EKS Pod Identity agent (host network on every node) serves credentials here (EKS user guide, Pod Identity).
POD_IDENTITY_AGENT_CIDR = "169.254.170.23/32"


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
        "metadata": metadata(DEFAULT_DENY_POLICY, {"app.kubernetes.io/part-of": "tessera"}),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }


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
    objects.append(stable_autoscaler(service, values))
    objects.append(_network_policy(service, values.network))
    return objects


def _selector(service: ServiceSpec, track: str) -> dict[str, str]:
    return {SERVICE_LABEL: service.name, TRACK_LABEL: track}


def _service_account(service: ServiceSpec) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(service.name, labels(service)),
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
    pod_labels = {**labels(service, track), MODEL_VERSION_LABEL: service.model.version}
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
        "metadata": metadata(track_name(service, track), labels(service, track)),
        "spec": spec,
    }


def _service(service: ServiceSpec, track: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(track_name(service, track), labels(service, track)),
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
        "metadata": metadata(track_name(service, track), labels(service, track)),
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
        "metadata": metadata(track_name(service, track), labels(service, track)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _selector(service, track)}},
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

    Ingress: only the load balancer (its own subnets), on the service port; its health checks come the same way; for
    a service with `metrics`, the managed Prometheus collector too, on the metrics port.
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
    ingress = [{"from": _ip_blocks(network.load_balancer_cidrs), "ports": [{"protocol": "TCP", "port": service.port}]}]
    if service.metrics is not None and network.collector_cidrs:
        # The managed Prometheus collector scrapes from its ENIs in the cluster's private subnets (no pod selector
        # can name it), on the metrics port only. Those subnets hold pods too, but every pod of this namespace is
        # held to its own egress rules, which never name them.
        ingress.append(
            {
                "from": _ip_blocks(network.collector_cidrs),
                "ports": [{"protocol": "TCP", "port": service.metrics.port or service.port}],
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(service.name, labels(service)),
        "spec": {
            "podSelector": {"matchLabels": {SERVICE_LABEL: service.name}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }
