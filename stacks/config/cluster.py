"""Config models of the Cluster stack: EKS version and access, pinned add-on and chart versions,
and the node pools (Graviton `system` and `general`, any number of Neuron or NVIDIA GPU accelerator pools)."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator, model_validator

from stacks.config.base import StrictModel, duplicates, iam_role_arns, raise_if_any
from stacks.config.instance_types import (
    ACCELERATOR_INSTANCE_TYPES,
    GPU_INSTANCE_TYPES,
    AcceleratorInstanceType,
    GpuInstanceType,
    NeuronInstanceType,
    accelerators_of,
    family_of,
    is_graviton,
)
from tessera_shared.constants import GENERAL_POOL, SCHEDULER_POOL, SYSTEM_POOL

# Kubernetes versions for which Tessera ships a matching kubectl layer (requirements.txt).
SUPPORTED_KUBERNETES_VERSIONS = ("1.34",)
ADDON_VERSION_PATTERN = r"^v\d+\.\d+\.\d+-eksbuild\.\d+$"
CHART_VERSION_PATTERN = r"^\d+\.\d+\.\d+$"
IMAGE_TAG_PATTERN = r"^v?\d+\.\d+\.\d+(\.\d+)?$"
POOL_NAME_PATTERN = r"^[a-z][a-z0-9-]{1,20}$"
DURATION_PATTERN = r"^([0-9]+(s|m|h))+$"
DURATION_OR_NEVER_PATTERN = r"^(([0-9]+(s|m|h))+|Never)$"
AMI_ALIAS_PATTERN = r"^al2023@v\d{8}$"
DRIVER_VERSION_PATTERN = r"^\d+\.\d+(\.\d+)?$"


class EndpointConfig(StrictModel):
    """Who can reach the Kubernetes API. No public CIDRs = private endpoint only (reachable from the VPC)."""

    public_access_cidrs: list[str] = Field(
        default_factory=list,
        description="CIDRs allowed to reach the public endpoint; empty keeps the endpoint private-only.",
    )

    @field_validator("public_access_cidrs")
    @classmethod
    def _cidrs_are_narrow(cls, cidrs: list[str]) -> list[str]:
        problems = []
        for index, cidr in enumerate(cidrs):
            try:
                network = ipaddress.IPv4Network(cidr, strict=True)
            except ValueError as error:
                problems.append(f"[{index}] {cidr!r} is not an IPv4 CIDR ({error})")
                continue
            if network.prefixlen == 0:
                problems.append(f"[{index}] 0.0.0.0/0 opens the API to the internet; list your VPN or office CIDRs")
        if problems:
            raise ValueError("\n".join(problems))
        return cidrs

    @property
    def is_private_only(self) -> bool:
        return not self.public_access_cidrs


class AddonVersions(StrictModel):
    """EKS managed add-on versions, pinned (no look-up at synth). Check with `aws eks describe-addon-versions`."""

    vpc_cni: str = Field("v1.23.0-eksbuild.1", pattern=ADDON_VERSION_PATTERN)
    coredns: str = Field("v1.13.2-eksbuild.11", pattern=ADDON_VERSION_PATTERN)
    kube_proxy: str = Field("v1.34.6-eksbuild.13", pattern=ADDON_VERSION_PATTERN)
    eks_pod_identity_agent: str = Field("v1.4.0-eksbuild.1", pattern=ADDON_VERSION_PATTERN)
    amazon_cloudwatch_observability: str = Field("v5.4.0-eksbuild.1", pattern=ADDON_VERSION_PATTERN)
    eks_node_monitoring_agent: str = Field(
        "v1.7.0-eksbuild.1",
        pattern=ADDON_VERSION_PATTERN,
        description="Sets AcceleratedHardwareReady=False on Neuron faults; Karpenter's node repair acts on it.",
    )


class ChartVersions(StrictModel):
    """Helm chart versions (and the images that must follow the Kubernetes version), pinned."""

    neuron: str = Field("1.10.0", pattern=CHART_VERSION_PATTERN, description="oci://public.ecr.aws/neuron chart")
    aws_load_balancer_controller: str = Field("3.5.0", pattern=CHART_VERSION_PATTERN)
    metrics_server: str = Field("3.13.1", pattern=CHART_VERSION_PATTERN)
    karpenter: str = Field(
        "1.14.1",
        pattern=CHART_VERSION_PATTERN,
        description="oci://public.ecr.aws/karpenter/karpenter and karpenter-crd, same version; the newest release "
        "whose compatibility table covers the cluster's minor (1.34 needs >= 1.6).",
    )
    keda: str = Field(
        "2.20.2",
        pattern=CHART_VERSION_PATTERN,
        description="kedacore/charts `keda` (https://kedacore.github.io/charts); KEDA 2.20 supports Kubernetes "
        "1.33-1.35.",
    )
    nvidia_device_plugin: str = Field(
        "0.20.0",
        pattern=CHART_VERSION_PATTERN,
        description="nvidia-device-plugin chart (https://nvidia.github.io/k8s-device-plugin), installed when a GPU "
        "pool exists; its image tag is the chart's appVersion.",
    )
    efa_device_plugin: str = Field(
        "v0.5.30", pattern=r"^v\d+\.\d+\.\d+$", description="eks-charts aws-efa-k8s-device-plugin (installed with EFA)."
    )
    neuron_kube_scheduler_image: str = Field(
        "public.ecr.aws/eks-distro/kubernetes/kube-scheduler:v1.34.11-eks-1-34-24",
        pattern=r"^[a-z0-9.-]+(/[a-z0-9._-]+)+:v\d+\.\d+\.\d+[A-Za-z0-9._-]*$",
        description="kube-scheduler of the Neuron scheduler extension; its minor must be the cluster's.",
    )

    @property
    def neuron_kube_scheduler_minor(self) -> str:
        tag = self.neuron_kube_scheduler_image.rsplit(":", 1)[1]
        return ".".join(tag.lstrip("v").split(".")[:2])


class NodeDisk(StrictModel):
    """The encrypted gp3 root volume of a node."""

    disk_size_gib: int = Field(50, ge=20, le=16384)
    disk_throughput_mibps: int = Field(125, ge=125, le=2000, description="gp3 throughput (125 is gp3's baseline).")
    disk_iops: int = Field(3000, ge=3000, le=80000, description="gp3 IOPS (3000 is gp3's baseline).")


def _graviton_problems(types: list[str]) -> list[str]:
    return [
        f"[{index}] {name!r} is not a Graviton (arm64) type"
        + (f" ({_kind(name)} types go in accelerator_pools)" if name in ACCELERATOR_INSTANCE_TYPES else "")
        for index, name in enumerate(types)
        if not is_graviton(name)
    ]


def _kind(name: str) -> str:
    return "GPU" if name in GPU_INSTANCE_TYPES else "Neuron"


class SystemPoolConfig(StrictModel):
    """The one EKS managed node group: Graviton nodes for Karpenter, CoreDNS and the controllers.

    Nothing autoscales it, so its size is one number that CloudFormation owns outright; it is tainted
    CriticalAddonsOnly and only the controllers tolerate that."""

    instance_types: list[str] = Field(min_length=1)
    nodes: int = Field(2, ge=2, le=20, description="Fixed node count; at least 2 so controllers span AZs.")
    disk_size_gib: int = Field(50, ge=20, le=16384)
    max_unavailable: int = Field(1, ge=1, le=100, description="Nodes replaced at once during an update.")
    imds_hop_limit: Literal[1, 2] = Field(
        1,
        description="1 keeps pods away from instance metadata (no controller Tessera installs needs it from a pod; "
        "see stacks/cluster/stack.py); 2 only for something of your own that must read it from a pod.",
    )

    @field_validator("instance_types")
    @classmethod
    def _graviton_only(cls, types: list[str]) -> list[str]:
        raise_if_any(_graviton_problems(types))
        return types


class SchedulerPoolConfig(StrictModel):
    """A small x86 managed node group for the Neuron scheduler extension, created only when a service needs
    the extension: its image is not confirmed to be published for arm64."""

    instance_types: list[str] = Field(default_factory=lambda: ["m7i.large"], min_length=1)
    nodes: int = Field(1, ge=1, le=4)

    @field_validator("instance_types")
    @classmethod
    def _x86(cls, types: list[str]) -> list[str]:
        problems = [
            f"[{index}] {name!r} must be an x86_64 type without accelerators"
            for index, name in enumerate(types)
            if family_of(name) is None or is_graviton(name) or name in ACCELERATOR_INSTANCE_TYPES
        ]
        raise_if_any(problems)
        return types


class GeneralPoolConfig(NodeDisk):
    """The Karpenter pool of Graviton (arm64) nodes for cpu services; consolidated when underused."""

    instance_types: list[str] = Field(min_length=1)
    max_nodes: int = Field(ge=1, le=1000, description="Karpenter limit: nodes of this pool at most.")
    consolidate_after: str = Field("5m", pattern=DURATION_PATTERN)
    expire_after: str = Field("720h", pattern=DURATION_OR_NEVER_PATTERN, description="Node lifetime, or Never.")

    @field_validator("instance_types")
    @classmethod
    def _graviton_only(cls, types: list[str]) -> list[str]:
        raise_if_any(_graviton_problems(types))
        return types


class CapacityConfig(StrictModel):
    """How an accelerator pool buys its instances. A reservation or capacity block exists in one zone."""

    type: Literal["on_demand", "spot", "reservation", "capacity_block"] = "on_demand"
    reservation_id: str | None = Field(
        None, pattern=r"^cr-[0-9a-f]{17}$", description="The capacity reservation (or capacity block); only then."
    )
    availability_zone: str | None = Field(
        None, description="The reservation's zone; the pool launches only there. Only with a reservation."
    )

    @model_validator(mode="after")
    def _reservation_matches_type(self) -> CapacityConfig:
        problems = []
        if self.is_reserved:
            if self.reservation_id is None:
                problems.append(f"reservation_id: required when type is {self.type}")
            if self.availability_zone is None:
                problems.append(f"availability_zone: required when type is {self.type} (a reservation has one zone)")
        else:
            if self.reservation_id is not None:
                problems.append(f"reservation_id: only used with a reservation or capacity block, not {self.type}")
            if self.availability_zone is not None:
                problems.append(f"availability_zone: only used with a reservation or capacity block, not {self.type}")
        raise_if_any(problems)
        return self

    @property
    def is_reserved(self) -> bool:
        return self.type in ("reservation", "capacity_block")


class EfaConfig(StrictModel):
    """Elastic Fabric Adapter networking for multi-node training or tensor-parallel serving."""

    availability_zone: str = Field(description="The pool is pinned to this AZ (one of network.availability_zones).")


class AcceleratorPoolConfig(NodeDisk):
    """A Karpenter pool of Trainium or Inferentia2 nodes (AL2023 Neuron AMI, tainted for Neuron workloads only),
    or of NVIDIA GPU nodes (AL2023 NVIDIA AMI, tainted `nvidia.com/gpu` for GPU workloads only). The types say
    which: Neuron types of one family, or GPU types of one family (so one GPU model)."""

    name: str = Field(pattern=POOL_NAME_PATTERN, description="Pool name; the `tessera.dev/pool` node label.")
    instance_types: list[str] = Field(
        min_length=1, description="Neuron types of a single family, or NVIDIA GPU types of a single family."
    )
    max_nodes: int = Field(ge=1, le=1000, description="Karpenter limit: nodes of this pool at most.")
    max_neuron_cores: int | None = Field(
        None, ge=1, description="Karpenter limit on aws.amazon.com/neuroncore across the pool; omitted = no limit."
    )
    max_gpus: int | None = Field(
        None, ge=1, description="Karpenter limit on nvidia.com/gpu across a GPU pool; omitted = no limit."
    )
    capacity: CapacityConfig = CapacityConfig()
    disk_size_gib: int = Field(200, ge=100, le=16384, description="gp3 root volume (model cache if no NVMe).")
    efa: EfaConfig | None = None
    disruption_budget: str = Field(
        "1", pattern=r"^(\d+|\d+%)$", description="Nodes Karpenter may disrupt at once for drift or consolidation."
    )
    consolidate_after: str = Field("30m", pattern=DURATION_PATTERN, description="Empty nodes go after this long.")
    expire_after: str = Field(
        "Never",
        pattern=DURATION_OR_NEVER_PATTERN,
        description="Expiry is forceful and ignores budgets; leave Never unless you want it deliberately.",
    )

    @field_validator("instance_types")
    @classmethod
    def _accelerator_types_of_one_family(cls, types: list[str]) -> list[str]:
        problems = []
        for index, name in enumerate(types):
            if name in ACCELERATOR_INSTANCE_TYPES:
                continue
            if is_graviton(name):
                problems.append(
                    f"[{index}] {name!r} is a Graviton type; Graviton types go in system_pool or general_pool"
                )
            else:
                supported = ", ".join(ACCELERATOR_INSTANCE_TYPES)
                problems.append(
                    f"[{index}] {name!r} is not a supported Neuron or NVIDIA GPU type (supported: {supported})"
                )
        if problems:
            raise ValueError("\n".join(problems))
        gpu = [name for name in types if name in GPU_INSTANCE_TYPES]
        if gpu and len(gpu) != len(types):
            raise ValueError("mixes Neuron and GPU types; a pool holds one kind of accelerator")
        models = sorted({str(GPU_INSTANCE_TYPES[name].gpu_model) for name in gpu})
        if len(models) > 1:
            raise ValueError(f"mixes GPU models {', '.join(models)}; a pool holds one GPU model")
        families = sorted({family_of(name) or name for name in types})  # a malformed name is refused above
        if len(families) > 1:
            raise ValueError(f"mixes instance families {', '.join(families)}; a pool holds one family")
        return types

    @model_validator(mode="after")
    def _limits_fit_kind(self) -> AcceleratorPoolConfig:
        if self.is_gpu and self.max_neuron_cores is not None:
            raise ValueError("max_neuron_cores: a GPU pool has no NeuronCores; use max_gpus")
        if not self.is_gpu and self.max_gpus is not None:
            raise ValueError("max_gpus: a Neuron pool has no GPUs; use max_neuron_cores")
        return self

    @model_validator(mode="after")
    def _efa_fits(self) -> AcceleratorPoolConfig:
        problems = []
        if self.efa is not None:
            without = [spec.name for spec in self.instance_specs if not spec.supports_efa]
            if without:
                problems.append(f"efa: {', '.join(without)} has no EFA interfaces")
            zone = self.capacity.availability_zone
            if zone is not None and zone != self.efa.availability_zone:
                problems.append(
                    f"efa.availability_zone: {self.efa.availability_zone!r} differs from the reservation's "
                    f"zone {zone!r}"
                )
        raise_if_any(problems)
        return self

    @property
    def instance_specs(self) -> list[AcceleratorInstanceType]:
        return [ACCELERATOR_INSTANCE_TYPES[name] for name in self.instance_types]

    @property
    def neuron_specs(self) -> list[NeuronInstanceType]:
        """The pool's types as Neuron types (empty for a GPU pool)."""
        return [spec for spec in self.instance_specs if isinstance(spec, NeuronInstanceType)]

    @property
    def gpu_specs(self) -> list[GpuInstanceType]:
        """The pool's types as GPU types (empty for a Neuron pool)."""
        return [spec for spec in self.instance_specs if isinstance(spec, GpuInstanceType)]

    @property
    def is_gpu(self) -> bool:
        return bool(self.gpu_specs)

    @property
    def accelerator_limit(self) -> int | None:
        """Karpenter's limit on the pool's accelerators, in its unit: max_gpus on a GPU pool, max_neuron_cores on a
        Neuron pool (config refuses the other one); None: no limit."""
        return self.max_gpus if self.is_gpu else self.max_neuron_cores

    def node_ceiling(self, instance_type: str) -> int:
        """The most nodes of one of the pool's types Karpenter can launch: max_nodes, or fewer where the
        accelerator limit runs out first."""
        per_node = accelerators_of(ACCELERATOR_INSTANCE_TYPES[instance_type])
        limit = self.accelerator_limit
        return self.max_nodes if limit is None else min(self.max_nodes, limit // per_node)

    @property
    def family(self) -> str:
        return self.instance_specs[0].family

    @property
    def accelerator(self) -> str:
        return self.instance_specs[0].accelerator

    @property
    def gpu_model(self) -> str | None:
        return self.gpu_specs[0].gpu_model if self.is_gpu else None

    @property
    def compute_capability(self) -> str | None:
        return self.gpu_specs[0].compute_capability if self.is_gpu else None

    @property
    def cores_per_device(self) -> int:
        """The same for every type of a family (2 on inf2/trn1/trn1n, 4 logical cores on trn2)."""
        return self.neuron_specs[0].cores_per_device

    @property
    def largest_instance(self) -> NeuronInstanceType:
        return max(self.neuron_specs, key=lambda spec: (spec.cores, spec.chips))

    @property
    def largest_gpu_instance(self) -> GpuInstanceType:
        return max(self.gpu_specs, key=lambda spec: spec.gpus)

    @property
    def has_instance_store(self) -> bool:
        """Every type has local NVMe: the node's ephemeral storage (and so the model cache) is RAID0 NVMe."""
        return all(spec.has_instance_store for spec in self.instance_specs)

    @property
    def zone(self) -> str | None:
        """The one zone the pool is pinned to (a reservation's or EFA's), if any."""
        return self.capacity.availability_zone or (self.efa.availability_zone if self.efa else None)


class ClusterConfig(StrictModel):
    """The EKS cluster and everything that runs on it before any inference service does."""

    # mypy cannot read a Literal built from a tuple constant; pydantic can, and validates against it.
    kubernetes_version: Literal[SUPPORTED_KUBERNETES_VERSIONS] = Field(  # type: ignore[valid-type]
        "1.34", description="EKS Kubernetes version; one with a matching kubectl layer."
    )
    endpoint: EndpointConfig = EndpointConfig()
    admin_role_arns: list[str] = Field(
        default_factory=list,
        description="IAM roles granted cluster-admin through EKS access entries. Empty: nobody can use kubectl "
        "(the deployer is not made admin); check-config warns.",
    )
    read_only_role_arns: list[str] = Field(
        default_factory=list, description="IAM roles granted cluster-wide read-only access."
    )
    addons: AddonVersions = AddonVersions()
    charts: ChartVersions = ChartVersions()
    node_session_manager: bool = Field(
        False,
        description="Give nodes AmazonSSMManagedInstanceCore for Session Manager shells. A shell on a node bypasses "
        "Kubernetes RBAC: leave off unless operators need it.",
    )
    node_ami_alias: str = Field(
        "al2023@v20260903",
        pattern=AMI_ALIAS_PATTERN,
        description="Karpenter AMI alias pinned to an AL2023 release (never @latest: a new AMI would replace every "
        "node); Karpenter picks the arm64, Neuron or NVIDIA variant of that release by instance type. An AMI "
        "upgrade is a change of this line (and of node_ami_nvidia_driver).",
    )
    node_ami_nvidia_driver: str = Field(
        "580.159.03",
        pattern=DRIVER_VERSION_PATTERN,
        description="NVIDIA driver of the pinned AMI release's AL2023 NVIDIA variant (kmod-nvidia-latest-dkms in the "
        "release notes, https://github.com/awslabs/amazon-eks-ami/releases); the registry checks a GPU model "
        "version's minimum driver against it. 580.159.03 is v20260714's (the newest notes checked); v20260903's "
        "were not: confirm it there, drivers only move forward within the 580 branch, so a lower figure only "
        "makes the check stricter.",
    )
    system_pool: SystemPoolConfig = SystemPoolConfig(instance_types=["m7g.large"], nodes=2)
    scheduler_pool: SchedulerPoolConfig = SchedulerPoolConfig()
    general_pool: GeneralPoolConfig = GeneralPoolConfig(instance_types=["c7g.xlarge"], max_nodes=10)
    accelerator_pools: list[AcceleratorPoolConfig] = Field(default_factory=list)

    @field_validator("admin_role_arns", "read_only_role_arns")
    @classmethod
    def _role_arns(cls, arns: list[str]) -> list[str]:
        return iam_role_arns(arns)

    @model_validator(mode="after")
    def _cluster_rules(self) -> ClusterConfig:
        problems = duplicates("accelerator_pools", [pool.name for pool in self.accelerator_pools], field="name")
        reserved = {SYSTEM_POOL, GENERAL_POOL, SCHEDULER_POOL}
        problems += [
            f"accelerator_pools[{index}].name: {pool.name!r} is reserved for a Tessera pool"
            for index, pool in enumerate(self.accelerator_pools)
            if pool.name in reserved
        ]
        minor = self.kubernetes_version
        if not self.addons.kube_proxy.startswith(f"v{minor}."):
            problems.append(f"addons.kube_proxy: {self.addons.kube_proxy!r} does not match Kubernetes {minor}")
        if self.charts.neuron_kube_scheduler_minor != minor:
            problems.append(
                f"charts.neuron_kube_scheduler_image: {self.charts.neuron_kube_scheduler_image!r} is kube-scheduler "
                f"{self.charts.neuron_kube_scheduler_minor}, the cluster runs Kubernetes {minor}; use a {minor} build"
            )
        overlap = set(self.admin_role_arns) & set(self.read_only_role_arns)
        problems += [f"read_only_role_arns: {arn!r} is also in admin_role_arns" for arn in sorted(overlap)]
        raise_if_any(problems)
        return self

    def warnings(self) -> list[str]:
        """Valid but probably unintended settings, one `<field path>: <why>` line each."""
        if self.admin_role_arns:
            return []
        return [
            "cluster.admin_role_arns: empty, and the deployer is not made cluster admin: nobody can use kubectl on "
            "this cluster; add an IAM role ARN (see docs/cluster.md, Access)"
        ]
