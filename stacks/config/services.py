"""Config models of the inference services and the load balancer in front of them.

A service names the silicon it runs on first (`accelerator.type`: trainium, inferentia, gpu or cpu) and
may list other targets it is allowed to move to (`alternative_accelerators`, each with its own pool,
core or GPU count and serving image). Moving between allowed targets is a rollout of a version compiled
for the other target, judged like any other. Whether the named pools exist and the counts fit is checked
against the cluster config in `stacks/config/environment.py`, where both are known.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from rollout.policy import duration_problem
from stacks.config.base import StrictModel, check_log_retention, raise_if_any
from stacks.config.observability import RUNTIME_SIGNALS, RuntimeMetricsSpec, ScalingSpec, ServiceAlarms
from stacks.config.rollout import RolloutPolicy
from stacks.config.stack_groups import MAIN_STACK_GROUP, STACK_GROUP_PATTERN
from tessera_shared.constants import MODEL_VERSION_PATTERN, SERVICE_NAME_PATTERN, model_prefix

ECR_REPOSITORY_PATTERN = r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$"
IMAGE_TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$"
# Kubernetes resource quantities, e.g. 500m, 2, 1.5, 16Gi.
CPU_QUANTITY_PATTERN = r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$"
MEMORY_QUANTITY_PATTERN = r"^[0-9]+(Ki|Mi|Gi|Ti|k|M|G|T)?$"
ENV_NAME_PATTERN = r"^[A-Z_][A-Z0-9_]*$"
# Set by Tessera itself from the model spec; config may not override them.
RESERVED_ENV = frozenset({"MODEL_NAME", "MODEL_VERSION", "MODEL_S3_URI", "MODEL_CACHE_DIR", "SERVICE_NAME", "TRACK"})

AcceleratorType = Literal["trainium", "inferentia", "gpu", "cpu"]
# The Service ClusterIP ranges EKS picks from for a cluster created without serviceIpv4Cidr (EKS API reference,
# KubernetesNetworkConfigRequest: 10.100.0.0/16 or 172.20.0.0/16); Tessera sets none, so pods' egress leaves both out.
EKS_SERVICE_CIDRS = ("10.100.0.0/16", "172.20.0.0/16")
NEURON_ACCELERATORS = ("trainium", "inferentia")


def ipv4_cidrs(cidrs: list[str]) -> list[str]:
    """Each entry a strict IPv4 CIDR (no host bits set), else one problem per entry."""
    problems = []
    for index, cidr in enumerate(cidrs):
        try:
            ipaddress.IPv4Network(cidr, strict=True)
        except ValueError as error:
            problems.append(f"[{index}] {cidr!r} is not an IPv4 CIDR ({error})")
    raise_if_any(problems)
    return cidrs


class ServiceImage(StrictModel):
    repository: str = Field(
        pattern=ECR_REPOSITORY_PATTERN, min_length=2, max_length=256, description="ECR repository (Artifacts stack)."
    )
    tag: str = Field(pattern=IMAGE_TAG_PATTERN, description="Image tag; repositories are immutable.")
    neuron_sdk: str | None = Field(
        None,
        pattern=r"^\d+\.\d+\.\d+$",
        description="Neuron SDK release in the image (Neuron services only); model versions must be compiled with it.",
    )


class ModelSpec(StrictModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="Model name, e.g. `assistant-vlm`.")
    version: str = Field(
        pattern=MODEL_VERSION_PATTERN,
        description="The initial stable version; versions live under `models/<service>/<version>/` in the bucket.",
    )


class AcceleratorSpec(StrictModel):
    type: AcceleratorType = Field(description="trainium, inferentia, gpu (NVIDIA) or cpu (Graviton `general` pool).")
    neuron_cores: int = Field(0, ge=0, le=128, description="NeuronCores per pod (trainium, inferentia); else 0.")
    gpus: int = Field(0, ge=0, le=8, description="NVIDIA GPUs per pod (gpu); else 0.")
    pool: str | None = Field(None, description="Accelerator pool name; needed only when several pools match `type`.")

    @model_validator(mode="after")
    def _counts_match_type(self) -> AcceleratorSpec:
        problems = []
        if self.type != "gpu" and self.gpus:
            problems.append(f"gpus: a {self.type} service takes no GPUs, got {self.gpus}")
        if self.type in ("cpu", "gpu") and self.neuron_cores:
            problems.append(f"neuron_cores: a {self.type} service takes no NeuronCores, got {self.neuron_cores}")
        if self.type == "cpu" and self.pool is not None:
            problems.append("pool: cpu services run on the general pool; leave pool out")
        if self.type == "gpu" and self.gpus < 1:
            problems.append("gpus: a gpu service needs at least 1 GPU")
        if self.type in NEURON_ACCELERATORS and self.neuron_cores < 1:
            problems.append(f"neuron_cores: a {self.type} service needs at least 1 NeuronCore")
        raise_if_any(problems)
        return self

    @property
    def is_neuron(self) -> bool:
        return self.type in NEURON_ACCELERATORS

    @property
    def per_pod(self) -> int:
        """A pod's accelerators in its pool's unit: GPUs on a gpu target, NeuronCores on a Neuron one (0 on cpu)."""
        return self.gpus if self.type == "gpu" else self.neuron_cores

    @property
    def label(self) -> str:
        """How messages name the target: its type, and its pool when config names one."""
        return f"{self.type} (pool {self.pool})" if self.pool else self.type


class AlternativeAccelerator(AcceleratorSpec):
    """Another target a service may move to by a rollout: where its pods would run, and the serving image
    built for that chip (the registry checks a version compiled for this target against it)."""

    image_tag: str = Field(
        pattern=IMAGE_TAG_PATTERN, description="Serving image tag for this target, in the service's repository."
    )
    neuron_sdk: str | None = Field(
        None, pattern=r"^\d+\.\d+\.\d+$", description="Neuron SDK of that image (Neuron targets only)."
    )

    @model_validator(mode="after")
    def _sdk_matches_type(self) -> AlternativeAccelerator:
        if self.is_neuron and self.neuron_sdk is None:
            raise ValueError(f"neuron_sdk: required for a {self.type} target")
        if not self.is_neuron and self.neuron_sdk is not None:
            raise ValueError(f"neuron_sdk: a {self.type} target's image has no Neuron SDK")
        return self


_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def memory_bytes(quantity: str) -> int:
    """Bytes of a quantity matching MEMORY_QUANTITY_PATTERN (e.g. `16Gi`, `500M`, `1024`)."""
    for suffixes in (_BINARY, _DECIMAL):
        for suffix, factor in suffixes.items():
            if quantity.endswith(suffix):
                return int(quantity[: -len(suffix)]) * factor
    return int(quantity)


class ResourceSpec(StrictModel):
    cpu: str = Field(pattern=CPU_QUANTITY_PATTERN, description="CPU request and limit, e.g. `2` or `500m`.")
    memory: str = Field(pattern=MEMORY_QUANTITY_PATTERN, description="Memory request and limit, e.g. `16Gi`.")
    shm: str | None = Field(
        None,
        pattern=MEMORY_QUANTITY_PATTERN,
        description="Size of /dev/shm, a memory-backed emptyDir (counts against `memory`); omitted = the runtime's "
        "64 MiB. vLLM and PyTorch multiprocessing need more.",
    )
    model_cache: str | None = Field(
        None,
        pattern=MEMORY_QUANTITY_PATTERN,
        description="Size of the /models cache; requested as ephemeral storage, so it lands on a node whose local "
        "storage (RAID0 NVMe where the type has it, else the root volume) can hold it.",
    )

    @model_validator(mode="after")
    def _shm_fits_memory(self) -> ResourceSpec:
        if self.shm is not None and memory_bytes(self.shm) >= memory_bytes(self.memory):
            raise ValueError(f"shm: {self.shm} must be less than memory {self.memory} (it is counted against it)")
        return self

    @property
    def model_cache_bytes(self) -> int:
        return memory_bytes(self.model_cache) if self.model_cache else 0


class ReplicaSpec(StrictModel):
    min: int = Field(ge=1, le=500)
    max: int = Field(ge=1, le=500)

    @model_validator(mode="after")
    def _ordered(self) -> ReplicaSpec:
        if self.min > self.max:
            raise ValueError(f"min: {self.min} exceeds max {self.max}")
        return self


class RouteSpec(StrictModel):
    """Exactly one of a path prefix or a host name on the load balancer."""

    path_prefix: str | None = Field(None, pattern=r"^/[a-z0-9][a-z0-9/_-]*$", description="e.g. `/v1/assistant`.")
    host: str | None = Field(None, pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")

    @model_validator(mode="after")
    def _exactly_one(self) -> RouteSpec:
        if (self.path_prefix is None) == (self.host is None):
            raise ValueError("set exactly one of path_prefix or host")
        return self

    @property
    def key(self) -> str:
        return f"host:{self.host}" if self.host else f"path:{self.path_prefix}"


class ServiceSpec(StrictModel):
    """One inference service: where it runs, what it serves and how it is reached."""

    name: str = Field(pattern=SERVICE_NAME_PATTERN, description="Lower-case letters, digits and '-'.")
    description: str = Field("", max_length=256)
    image: ServiceImage
    port: int = Field(8000, ge=1024, le=65535, description="Container port; non-root, so 1024 or above.")
    health_path: str = Field("/health", pattern=r"^/[A-Za-z0-9/._-]*$")
    model: ModelSpec
    accelerator: AcceleratorSpec = Field(description="Where the service runs at first deploy.")
    alternative_accelerators: list[AlternativeAccelerator] = Field(
        default_factory=list,
        description="Other targets the service may move to, each by a rollout of a version compiled for it.",
    )
    resources: ResourceSpec
    replicas: ReplicaSpec
    startup_allowance_minutes: int = Field(
        20, ge=1, le=120, description="How long a pod may take to load its model before it is restarted."
    )
    cpu_target_percent: int = Field(
        70, ge=10, le=95, description="HPA target: average CPU utilization of the stable track (without `scaling`)."
    )
    scaling: ScalingSpec | None = Field(
        None, description="Scale the stable track with KEDA on this signal instead of the CPU HPA."
    )
    metrics: RuntimeMetricsSpec | None = Field(
        None,
        description="The serving runtime's Prometheus endpoint. With it the canary is also judged on the runtime's "
        "time to first token, time per output token, end-to-end latency and errors; without it, on load balancer "
        "figures only.",
    )
    alarms: ServiceAlarms = ServiceAlarms()
    route: RouteSpec
    rollout: RolloutPolicy = RolloutPolicy()
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables of the container.")
    stack_group: str = Field(
        MAIN_STACK_GROUP,
        pattern=STACK_GROUP_PATTERN,
        description="The stacks that hold the service's resources: `main` the Services and Observability stacks, "
        "another name its own pair (`Services-<group>`, `Observability-<group>`); at most 8 services per group. "
        "Moving a deployed service to another group takes two deploys, without it and then with it (docs/services.md).",
    )
    public: bool = Field(
        False,
        description="Routed on the load balancer that clients outside the cluster reach (shaped by `load_balancer`). "
        "Otherwise the service is routed only on the internal load balancer, at its own port, which only the "
        "services that list it in `calls` reach.",
    )
    egress: list[str] = Field(
        default_factory=list,
        description="IPv4 CIDRs outside the VPC the service's pods may reach on HTTPS (443), e.g. an identity "
        "provider. Without it they reach only DNS, the Pod Identity agent, the VPC's interface endpoints (S3 "
        "included) and the services in `calls`. A CIDR that holds the VPC or the Service ClusterIPs leaves them out.",
    )
    calls: list[str] = Field(
        default_factory=list,
        description="Services this one calls, none of them public. Calls go through the internal load balancer at "
        "the callee's port (so canary weights and judgement cover them); only a service listed here may reach it.",
    )

    @field_validator("egress")
    @classmethod
    def _egress_cidrs(cls, cidrs: list[str]) -> list[str]:
        return ipv4_cidrs(cidrs)

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        problems = []
        for key in env:
            if not re.match(ENV_NAME_PATTERN, key):
                problems.append(f"{key}: must match {ENV_NAME_PATTERN}")
            elif key in RESERVED_ENV:
                problems.append(f"{key}: is set by Tessera from the service's model and track")
        raise_if_any(problems)
        return env

    @model_validator(mode="after")
    def _rollout_fits_its_execution(self) -> ServiceSpec:
        """The state machine's timeout and the lock's lease are derived from MAX_ROLLOUT_SECONDS."""
        problem = duration_problem(self.rollout.as_contract(ready_timeout_seconds=self.ready_timeout_seconds))
        if problem:
            raise ValueError(f"rollout: {problem}")
        return self

    @property
    def ready_timeout_seconds(self) -> int:
        """A new pod may take the whole model-load allowance, plus scheduling and a node scale-up."""
        return self.startup_allowance_minutes * 60 + 300

    @model_validator(mode="after")
    def _scaling_fits_service(self) -> ServiceSpec:
        if self.scaling is None:
            return self
        problems = []
        if self.scaling.signal == "neuroncore_utilization":
            others = [t.type for t in self.alternative_accelerators if not t.is_neuron]
            if not self.is_neuron:
                problems.append(
                    f"scaling.signal: neuroncore_utilization needs a Neuron service; this one runs on "
                    f"{self.accelerator.type}"
                )
            elif others:
                problems.append(
                    f"scaling.signal: neuroncore_utilization needs NeuronCores on every allowed target; this service "
                    f"may move to {', '.join(others)} (use requests_per_target or cpu)"
                )
        if self.scaling.signal in RUNTIME_SIGNALS and self.metrics is None:
            problems.append(
                f"scaling.signal: {self.scaling.signal} is read from the serving runtime's metrics; set `metrics` "
                "(the runtime's Prometheus endpoint) or scale on requests_per_target"
            )
        if "cpu_target_percent" in self.model_fields_set:
            problems.append("cpu_target_percent: only used without scaling; set scaling.target instead")
        raise_if_any(problems)
        return self

    @model_validator(mode="after")
    def _sdk_matches_accelerator(self) -> ServiceSpec:
        if self.is_neuron and self.image.neuron_sdk is None:
            raise ValueError(f"image.neuron_sdk: required for a {self.accelerator.type} service")
        if not self.is_neuron and self.image.neuron_sdk is not None:
            raise ValueError(f"image.neuron_sdk: a {self.accelerator.type} service's image has no Neuron SDK")
        return self

    @model_validator(mode="after")
    def _alternatives_differ(self) -> ServiceSpec:
        """Each target once: the current one is not an alternative, and no two alternatives are the same."""
        keys = [(self.accelerator.type, self.accelerator.pool)]
        problems = []
        for index, alternative in enumerate(self.alternative_accelerators):
            key = (alternative.type, alternative.pool)
            if key in keys:
                problems.append(
                    f"alternative_accelerators[{index}]: {alternative.label} is already a target of this service"
                )
            keys.append(key)
        raise_if_any(problems)
        return self

    @property
    def model_prefix(self) -> str:
        return model_prefix(self.name)

    @property
    def is_neuron(self) -> bool:
        return self.accelerator.is_neuron

    @property
    def on_accelerator_pool(self) -> bool:
        """Runs on an accelerator pool (Neuron or GPU) rather than the general pool."""
        return self.accelerator.type != "cpu"


class RegistryConfig(StrictModel):
    """How the model registry judges a new version."""

    block_severity: Literal["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL"] = Field(
        "HIGH", description="An image scan finding at or above this severity rejects the version."
    )


class FunctionsConfig(StrictModel):
    """Settings shared by Tessera's Lambda functions."""

    powertools_layer_version: int = Field(
        27,
        ge=1,
        description="N in the AWSLambdaPowertoolsPythonV3-python313-arm64:N layer ARN (see the Powertools docs).",
    )
    log_retention_days: int = Field(90, description="CloudWatch Logs retention of the functions' logs.")

    @field_validator("log_retention_days")
    @classmethod
    def _retention_is_supported(cls, value: int) -> int:
        return check_log_retention(value)


class WafConfig(StrictModel):
    """A WAF web ACL in front of an internet-facing load balancer that admits everyone (stacks/services/waf.py)."""

    rate_limit_per_5_minutes: int = Field(
        2000, ge=10, le=2_000_000_000, description="Requests one client address may send in 5 minutes; then blocked."
    )


class LoadBalancerConfig(StrictModel):
    """The Application Load Balancer in front of every service (CDK-owned, never Ingress-managed)."""

    internet_facing: bool = Field(False, description="Internal (default) or internet-facing.")
    certificate_arn: str | None = Field(
        None,
        pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$",
        description="ACM certificate; with it the listener is HTTPS on 443 and port 80 redirects.",
    )
    allow_plain_http_in_production: bool = Field(
        False,
        description="Opt-out: let a retained (production) environment serve plain HTTP without certificate_arn. "
        "Requests, and the credentials callers send with them, then cross the network unencrypted.",
    )
    allowed_cidrs: list[str] = Field(
        default_factory=list,
        description="Who may reach the listener; default: the VPC for an internal load balancer.",
    )
    deregistration_delay_seconds: int = Field(30, ge=0, le=3600)
    slow_start_seconds: int = Field(60, ge=0, le=900, description="0 turns slow start off; else 30 to 900.")
    idle_timeout_seconds: int = Field(300, ge=1, le=4000, description="Long generations need a long idle timeout.")
    access_log_retention_days: int = Field(90, ge=1, le=3650)
    waf: WafConfig | None = Field(
        None, description="Required for internet_facing without allowed_cidrs: the services would face the internet."
    )

    @model_validator(mode="after")
    def _open_only_behind_a_waf(self) -> LoadBalancerConfig:
        if self.internet_facing and not self.allowed_cidrs and self.waf is None:
            raise ValueError(
                "internet_facing without allowed_cidrs opens every route to the internet: give allowed_cidrs, or "
                "waf: {rate_limit_per_5_minutes: ...} for a WAF web ACL with AWS managed rule groups and a rate limit"
            )
        return self

    @field_validator("allowed_cidrs")
    @classmethod
    def _cidrs(cls, cidrs: list[str]) -> list[str]:
        return ipv4_cidrs(cidrs)

    @field_validator("slow_start_seconds")
    @classmethod
    def _slow_start_range(cls, seconds: int) -> int:
        if 0 < seconds < 30:
            raise ValueError(f"{seconds} is not allowed: use 0 (off) or 30 to 900")
        return seconds

    @property
    def is_https(self) -> bool:
        return self.certificate_arn is not None
