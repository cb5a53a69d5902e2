"""Config models of the accelerator pools: Karpenter pools of Trainium / Inferentia2 nodes (`kind: neuron`) or of
NVIDIA GPU nodes (`kind: gpu`). Each kind carries only its own limit and attributes, so a question that has no
answer for a kind (a GPU pool's NeuronCores per device) cannot be asked of it."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from stacks.config.base import StrictModel, raise_if_any
from stacks.config.instance_types import (
    ACCELERATOR_INSTANCE_TYPES,
    GPU_INSTANCE_TYPES,
    NEURON_INSTANCE_TYPES,
    GpuInstanceType,
    NeuronInstanceType,
    family_of,
    is_graviton,
)
from stacks.config.node_disk import DURATION_OR_NEVER_PATTERN, DURATION_PATTERN, POOL_NAME_PATTERN, NodeDisk
from tessera_shared.constants import GPU_RESOURCE, NEURONCORE_RESOURCE

PoolKind = Literal["neuron", "gpu"]


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


class _AcceleratorPool(NodeDisk):
    """What both kinds share: the pool's name and types, Karpenter's node limit, how it buys, its disks and how
    Karpenter may disrupt it."""

    name: str = Field(pattern=POOL_NAME_PATTERN, description="Pool name; the `tessera.dev/pool` node label.")
    instance_types: list[str] = Field(min_length=1, description="Types of a single family of the pool's kind.")
    max_nodes: int = Field(ge=1, le=1000, description="Karpenter limit: nodes of this pool at most.")
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

    @model_validator(mode="after")
    def _efa_fits(self) -> _AcceleratorPool:
        problems = []
        if self.efa is not None:
            without = [name for name in self.instance_types if not ACCELERATOR_INSTANCE_TYPES[name].supports_efa]
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
    def family(self) -> str:
        return family_of(self.instance_types[0]) or self.instance_types[0]

    @property
    def accelerator(self) -> str:
        return ACCELERATOR_INSTANCE_TYPES[self.instance_types[0]].accelerator

    @property
    def has_instance_store(self) -> bool:
        """Every type has local NVMe: the node's ephemeral storage (and so the model cache) is RAID0 NVMe."""
        return all(ACCELERATOR_INSTANCE_TYPES[name].has_instance_store for name in self.instance_types)

    @property
    def zone(self) -> str | None:
        """The one zone the pool is pinned to (a reservation's or EFA's), if any."""
        return self.capacity.availability_zone or (self.efa.availability_zone if self.efa else None)


def _types_of_kind(kind: PoolKind, types: list[str]) -> list[str]:
    """Each type must be of the pool's kind, and all of one family: refused one by one with what was expected."""
    table = list(NEURON_INSTANCE_TYPES if kind == "neuron" else GPU_INSTANCE_TYPES)
    takes = "Trainium or Inferentia2 types" if kind == "neuron" else "NVIDIA GPU types"
    problems = []
    for index, name in enumerate(types):
        if name in table:
            continue
        if is_graviton(name):
            problems.append(f"[{index}] {name!r} is a Graviton type; Graviton types go in system_pool or general_pool")
        elif name in ACCELERATOR_INSTANCE_TYPES:
            other = "an NVIDIA GPU" if name in GPU_INSTANCE_TYPES else "a Neuron"
            problems.append(f"[{index}] {name!r} is {other} type; a {kind} pool takes {takes}")
        else:
            problems.append(f"[{index}] {name!r} is not a supported type (a {kind} pool takes: {', '.join(table)})")
    raise_if_any(problems)
    models = sorted({GPU_INSTANCE_TYPES[name].gpu_model for name in types if name in GPU_INSTANCE_TYPES})
    if len(models) > 1:
        raise ValueError(f"mixes GPU models {', '.join(models)}; a pool holds one GPU model")
    families = sorted({family_of(name) or name for name in types})
    if len(families) > 1:
        raise ValueError(f"mixes instance families {', '.join(families)}; a pool holds one family")
    return types


class NeuronPoolConfig(_AcceleratorPool):
    """A Karpenter pool of Trainium or Inferentia2 nodes (AL2023 Neuron AMI, tainted for Neuron workloads only)."""

    kind: Literal["neuron"] = Field(description="neuron: Trainium or Inferentia2 types.")
    max_neuron_cores: int | None = Field(
        None, ge=1, description="Karpenter limit on aws.amazon.com/neuroncore across the pool; omitted = no limit."
    )
    unit: ClassVar[str] = "NeuronCore"
    resource: ClassVar[str] = NEURONCORE_RESOURCE  # what Karpenter's limit and a pod's request count

    @field_validator("instance_types")
    @classmethod
    def _neuron_types(cls, types: list[str]) -> list[str]:
        return _types_of_kind("neuron", types)

    @property
    def instance_specs(self) -> list[NeuronInstanceType]:
        return [NEURON_INSTANCE_TYPES[name] for name in self.instance_types]

    @property
    def accelerator_limit(self) -> int | None:
        """Karpenter's limit on the pool's NeuronCores; None: no limit."""
        return self.max_neuron_cores

    @property
    def cores_per_device(self) -> int:
        """The same for every type of a family (2 on inf2/trn1/trn1n, 4 logical cores on trn2)."""
        return self.instance_specs[0].cores_per_device

    @property
    def largest_instance(self) -> NeuronInstanceType:
        return max(self.instance_specs, key=lambda spec: (spec.cores, spec.chips))

    @property
    def accelerators_per_node(self) -> dict[str, int]:
        """NeuronCores of each of the pool's types."""
        return {spec.name: spec.cores for spec in self.instance_specs}


class GpuPoolConfig(_AcceleratorPool):
    """A Karpenter pool of NVIDIA GPU nodes of one model (AL2023 NVIDIA AMI, tainted `nvidia.com/gpu` for GPU
    workloads only)."""

    kind: Literal["gpu"] = Field(description="gpu: NVIDIA GPU types of one family (so one GPU model).")
    max_gpus: int | None = Field(
        None, ge=1, description="Karpenter limit on nvidia.com/gpu across the pool; omitted = no limit."
    )
    unit: ClassVar[str] = "GPU"
    resource: ClassVar[str] = GPU_RESOURCE

    @field_validator("instance_types")
    @classmethod
    def _gpu_types(cls, types: list[str]) -> list[str]:
        return _types_of_kind("gpu", types)

    @property
    def instance_specs(self) -> list[GpuInstanceType]:
        return [GPU_INSTANCE_TYPES[name] for name in self.instance_types]

    @property
    def accelerator_limit(self) -> int | None:
        """Karpenter's limit on the pool's GPUs; None: no limit."""
        return self.max_gpus

    @property
    def largest_instance(self) -> GpuInstanceType:
        return max(self.instance_specs, key=lambda spec: spec.gpus)

    @property
    def gpu_model(self) -> str:
        return self.instance_specs[0].gpu_model

    @property
    def compute_capability(self) -> str:
        return self.instance_specs[0].compute_capability

    @property
    def accelerators_per_node(self) -> dict[str, int]:
        """GPUs of each of the pool's types."""
        return {spec.name: spec.gpus for spec in self.instance_specs}


AcceleratorPool = NeuronPoolConfig | GpuPoolConfig


def node_ceiling(pool: AcceleratorPool, instance_type: str) -> int:
    """The most nodes of one of the pool's types Karpenter can launch: max_nodes, or fewer where the pool's
    accelerator limit runs out first."""
    limit = pool.accelerator_limit
    per_node = pool.accelerators_per_node[instance_type]
    return pool.max_nodes if limit is None else min(pool.max_nodes, limit // per_node)


# In config the kind decides the model; a missing or unknown kind is reported at `<pool>.kind`.
AcceleratorPoolConfig = Annotated[AcceleratorPool, Field(discriminator="kind")]
