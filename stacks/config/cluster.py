"""Config models of the Cluster stack: EKS version and access, pinned add-on and chart versions,
and the node pools (Graviton `system` and `general`, any number of Neuron or NVIDIA GPU accelerator pools)."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator, model_validator

from stacks.config.accelerator_pools import AcceleratorPoolConfig
from stacks.config.base import StrictModel, duplicates, iam_role_arns, raise_if_any
from stacks.config.instance_types import (
    ACCELERATOR_INSTANCE_TYPES,
    GPU_INSTANCE_TYPES,
    family_of,
    is_graviton,
)
from stacks.config.node_disk import DURATION_OR_NEVER_PATTERN, DURATION_PATTERN, NodeDisk
from tessera_shared.constants import GENERAL_POOL, SCHEDULER_POOL, SYSTEM_POOL

# Kubernetes versions for which Tessera ships a matching kubectl layer (requirements.txt).
SUPPORTED_KUBERNETES_VERSIONS = ("1.34",)
ADDON_VERSION_PATTERN = r"^v\d+\.\d+\.\d+-eksbuild\.\d+$"
CHART_VERSION_PATTERN = r"^\d+\.\d+\.\d+$"
IMAGE_TAG_PATTERN = r"^v?\d+\.\d+\.\d+(\.\d+)?$"
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
