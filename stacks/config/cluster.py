"""Config models of the Cluster stack: EKS version and access, pinned add-on and chart versions,
and the node pools (Graviton `system` and `general`, any number of Neuron accelerator pools)."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from stacks.config.base import StrictModel, duplicates, raise_if_any
from stacks.config.instance_types import NEURON_INSTANCE_TYPES, NeuronInstanceType, family_of, is_graviton

# Kubernetes versions for which Tessera ships a matching kubectl layer (requirements.txt).
SUPPORTED_KUBERNETES_VERSIONS = ("1.34",)
ADDON_VERSION_PATTERN = r"^v\d+\.\d+\.\d+-eksbuild\.\d+$"
CHART_VERSION_PATTERN = r"^\d+\.\d+\.\d+$"
IMAGE_TAG_PATTERN = r"^v?\d+\.\d+\.\d+(\.\d+)?$"
ROLE_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$"
POOL_NAME_PATTERN = r"^[a-z][a-z0-9-]{1,20}$"


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
    aws_ebs_csi_driver: str = Field("v1.63.1-eksbuild.1", pattern=ADDON_VERSION_PATTERN)
    amazon_cloudwatch_observability: str = Field("v5.4.0-eksbuild.1", pattern=ADDON_VERSION_PATTERN)


class ChartVersions(StrictModel):
    """Helm chart versions (and the images that must follow the Kubernetes version), pinned."""

    neuron: str = Field("1.10.0", pattern=CHART_VERSION_PATTERN, description="oci://public.ecr.aws/neuron chart")
    aws_load_balancer_controller: str = Field("3.5.0", pattern=CHART_VERSION_PATTERN)
    metrics_server: str = Field("3.13.1", pattern=CHART_VERSION_PATTERN)
    cluster_autoscaler: str = Field("9.59.0", pattern=CHART_VERSION_PATTERN)
    cluster_autoscaler_image_tag: str = Field(
        "v1.34.5", pattern=IMAGE_TAG_PATTERN, description="Must match the cluster's Kubernetes minor version."
    )


class PoolSize(StrictModel):
    min_size: int = Field(ge=0, le=1000)
    desired_size: int = Field(ge=0, le=1000)
    max_size: int = Field(ge=1, le=1000)

    @model_validator(mode="after")
    def _ordered(self) -> PoolSize:
        problems = []
        if self.min_size > self.desired_size:
            problems.append(f"min_size: {self.min_size} exceeds desired_size {self.desired_size}")
        if self.desired_size > self.max_size:
            problems.append(f"desired_size: {self.desired_size} exceeds max_size {self.max_size}")
        raise_if_any(problems)
        return self


class GravitonPoolConfig(PoolSize):
    """A pool of AWS Graviton (arm64) nodes running Amazon Linux 2023."""

    instance_types: list[str] = Field(min_length=1)
    disk_size_gib: int = Field(50, ge=20, le=16384)
    max_unavailable: int = Field(1, ge=1, le=100, description="Nodes replaced at once during an update.")
    imds_hop_limit: Literal[1, 2] = Field(
        1, description="2 only where pods must reach instance metadata themselves; 1 keeps pods away from it."
    )

    @field_validator("instance_types")
    @classmethod
    def _graviton_only(cls, types: list[str]) -> list[str]:
        problems = [
            f"[{index}] {name!r} is not a Graviton (arm64) type"
            + (" (Neuron types go in accelerator_pools)" if name in NEURON_INSTANCE_TYPES else "")
            for index, name in enumerate(types)
            if not is_graviton(name)
        ]
        if problems:
            raise ValueError("\n".join(problems))
        return types


class CapacityConfig(StrictModel):
    """How an accelerator pool buys its instances."""

    type: Literal["on_demand", "spot", "capacity_block"] = "on_demand"
    reservation_id: str | None = Field(
        None, pattern=r"^cr-[0-9a-f]{17}$", description="Capacity reservation of a capacity block; only then."
    )

    @model_validator(mode="after")
    def _reservation_matches_type(self) -> CapacityConfig:
        if self.type == "capacity_block" and self.reservation_id is None:
            raise ValueError("reservation_id: required when type is capacity_block")
        if self.type != "capacity_block" and self.reservation_id is not None:
            raise ValueError(f"reservation_id: only used with type capacity_block, not {self.type}")
        return self


class EfaConfig(StrictModel):
    """Elastic Fabric Adapter networking for multi-node training or tensor-parallel serving."""

    availability_zone: str = Field(description="The pool is pinned to this AZ (one of network.availability_zones).")


class AcceleratorPoolConfig(PoolSize):
    """A pool of Trainium or Inferentia2 nodes (AL2023 Neuron AMI, tainted for Neuron workloads only)."""

    name: str = Field(pattern=POOL_NAME_PATTERN, description="Pool name; the `tessera.dev/pool` node label.")
    instance_types: list[str] = Field(min_length=1, description="Neuron types of a single family.")
    min_size: int = Field(0, ge=0, le=1000)
    desired_size: int = Field(0, ge=0, le=1000)
    capacity: CapacityConfig = CapacityConfig()
    disk_size_gib: int = Field(500, ge=100, le=16384, description="gp3 root volume, sized for model caches.")
    max_unavailable: int = Field(1, ge=1, le=100)
    imds_hop_limit: Literal[1, 2] = 1
    efa: EfaConfig | None = None

    @field_validator("instance_types")
    @classmethod
    def _neuron_types_of_one_family(cls, types: list[str]) -> list[str]:
        problems = []
        for index, name in enumerate(types):
            if name in NEURON_INSTANCE_TYPES:
                continue
            if is_graviton(name):
                problems.append(
                    f"[{index}] {name!r} is a Graviton type; Graviton types go in system_pool or general_pool"
                )
            else:
                supported = ", ".join(NEURON_INSTANCE_TYPES)
                problems.append(f"[{index}] {name!r} is not a supported Neuron type (supported: {supported})")
        if problems:
            raise ValueError("\n".join(problems))
        families = sorted({family_of(name) for name in types})
        if len(families) > 1:
            raise ValueError(f"mixes instance families {', '.join(families)}; a pool holds one family")
        return types

    @model_validator(mode="after")
    def _efa_fits(self) -> AcceleratorPoolConfig:
        if self.efa is not None:
            without = [spec.name for spec in self.instance_specs if not spec.supports_efa]
            if without:
                raise ValueError(f"efa: {', '.join(without)} has no EFA interfaces")
        return self

    @property
    def instance_specs(self) -> list[NeuronInstanceType]:
        return [NEURON_INSTANCE_TYPES[name] for name in self.instance_types]

    @property
    def family(self) -> str:
        return self.instance_specs[0].family

    @property
    def accelerator(self) -> str:
        return self.instance_specs[0].accelerator

    @property
    def smallest_instance(self) -> NeuronInstanceType:
        """What the autoscaler must assume a new node brings when it scales the pool up from zero."""
        return min(self.instance_specs, key=lambda spec: (spec.cores, spec.chips))


class ClusterConfig(StrictModel):
    """The EKS cluster and everything that runs on it before any inference service does."""

    kubernetes_version: Literal[SUPPORTED_KUBERNETES_VERSIONS] = Field(  # type: ignore[valid-type]
        "1.34", description="EKS Kubernetes version; one with a matching kubectl layer."
    )
    endpoint: EndpointConfig = EndpointConfig()
    admin_role_arns: list[str] = Field(
        default_factory=list, description="IAM roles granted cluster-admin through EKS access entries."
    )
    read_only_role_arns: list[str] = Field(
        default_factory=list, description="IAM roles granted cluster-wide read-only access."
    )
    addons: AddonVersions = AddonVersions()
    charts: ChartVersions = ChartVersions()
    system_pool: GravitonPoolConfig = GravitonPoolConfig(
        instance_types=["m7g.large"], min_size=2, desired_size=2, max_size=4, imds_hop_limit=2
    )
    general_pool: GravitonPoolConfig = GravitonPoolConfig(
        instance_types=["c7g.xlarge"], min_size=1, desired_size=2, max_size=10
    )
    accelerator_pools: list[AcceleratorPoolConfig] = Field(default_factory=list)

    @field_validator("admin_role_arns", "read_only_role_arns")
    @classmethod
    def _role_arns(cls, arns: list[str]) -> list[str]:
        problems = [
            f"[{index}] {arn!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"
            for index, arn in enumerate(arns)
            if not re.match(ROLE_ARN_PATTERN, arn)
        ]
        if problems:
            raise ValueError("\n".join(problems))
        return arns

    @model_validator(mode="after")
    def _cluster_rules(self) -> ClusterConfig:
        problems = duplicates("accelerator_pools", [pool.name for pool in self.accelerator_pools], field="name")
        reserved = {"system", "general"}
        problems += [
            f"accelerator_pools[{index}].name: {pool.name!r} is reserved for a Graviton pool"
            for index, pool in enumerate(self.accelerator_pools)
            if pool.name in reserved
        ]
        if self.system_pool.min_size < 2:
            problems.append(f"system_pool.min_size: {self.system_pool.min_size} must be >= 2 (controllers span AZs)")
        minor = self.kubernetes_version
        if not self.addons.kube_proxy.startswith(f"v{minor}."):
            problems.append(f"addons.kube_proxy: {self.addons.kube_proxy!r} does not match Kubernetes {minor}")
        if not self.charts.cluster_autoscaler_image_tag.lstrip("v").startswith(f"{minor}."):
            problems.append(
                f"charts.cluster_autoscaler_image_tag: {self.charts.cluster_autoscaler_image_tag!r} "
                f"does not match Kubernetes {minor}"
            )
        overlap = set(self.admin_role_arns) & set(self.read_only_role_arns)
        problems += [f"read_only_role_arns: {arn!r} is also in admin_role_arns" for arn in sorted(overlap)]
        raise_if_any(problems)
        return self
