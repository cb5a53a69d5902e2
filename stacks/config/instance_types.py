"""The AWS Neuron and NVIDIA GPU instance types Tessera supports, and how to tell instance families apart.

These tables are the one source for config validation (which types may go in which pool, whether a
pod's cores or GPUs fit a node and come in whole devices, whether a type has local NVMe for the model
cache) and for the rollout's capacity arithmetic. Karpenter learns the same counts from the EC2 API at
run time; this copy only has to agree with it. Pure Python, no CDK.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Accelerator = Literal["trainium", "inferentia", "gpu"]


@dataclass(frozen=True)
class NeuronInstanceType:
    name: str
    family: str
    chips: int  # Neuron devices: the `aws.amazon.com/neuron` resource
    cores: int  # NeuronCores the device plugin advertises: the `aws.amazon.com/neuroncore` resource
    accelerator_memory_gib: int
    vcpus: int
    memory_gib: int
    efa_interfaces: int  # 0: no EFA
    instance_store_gb: int  # local NVMe in total; 0: EBS only

    @property
    def cores_per_device(self) -> int:
        return self.cores // self.chips

    @property
    def accelerator(self) -> Accelerator:
        return "inferentia" if self.family.startswith("inf") else "trainium"

    @property
    def supports_efa(self) -> bool:
        return self.efa_interfaces > 0

    @property
    def has_instance_store(self) -> bool:
        return self.instance_store_gb > 0


# Instance store: trn1.2xlarge's 474 GB matches Karpenter v1.14.1's EC2 fixture
# (pkg/fake/zz_generated.describe_instance_types.go); the 4 x 1900 GB of the 32xlarge/48xlarge types
# are from the EC2 instance type pages (check: aws ec2 describe-instance-types --query ...InstanceStorageInfo).
NEURON_INSTANCE_TYPES: dict[str, NeuronInstanceType] = {
    spec.name: spec
    for spec in (
        NeuronInstanceType("inf2.xlarge", "inf2", 1, 2, 32, 4, 16, 0, 0),
        NeuronInstanceType("inf2.8xlarge", "inf2", 1, 2, 32, 32, 128, 0, 0),
        NeuronInstanceType("inf2.24xlarge", "inf2", 6, 12, 192, 96, 384, 0, 0),
        NeuronInstanceType("inf2.48xlarge", "inf2", 12, 24, 384, 192, 768, 0, 0),
        NeuronInstanceType("trn1.2xlarge", "trn1", 1, 2, 32, 8, 32, 0, 474),
        NeuronInstanceType("trn1.32xlarge", "trn1", 16, 32, 512, 128, 512, 8, 7600),
        NeuronInstanceType("trn1n.32xlarge", "trn1n", 16, 32, 512, 128, 512, 16, 7600),
        # trn2: 128 physical cores, advertised as 64 logical cores at the default LNC=2; 96 GiB per chip.
        NeuronInstanceType("trn2.48xlarge", "trn2", 16, 64, 1536, 192, 2048, 16, 7600),
    )
}

NEURON_FAMILIES = frozenset(spec.family for spec in NEURON_INSTANCE_TYPES.values())


@dataclass(frozen=True)
class GpuInstanceType:
    name: str
    family: str
    gpu_model: str  # NVIDIA model, lower case as EC2 names it (karpenter.k8s.aws/instance-gpu-name)
    compute_capability: str  # CUDA compute capability of the model, e.g. "8.6"
    gpus: int  # the `nvidia.com/gpu` resource the device plugin advertises
    gpu_memory_gib: int  # per GPU
    vcpus: int
    memory_gib: int
    efa_interfaces: int  # 0: no EFA
    instance_store_gb: int  # local NVMe in total; 0: EBS only

    @property
    def accelerator(self) -> Accelerator:
        return "gpu"

    @property
    def supports_efa(self) -> bool:
        return self.efa_interfaces > 0

    @property
    def has_instance_store(self) -> bool:
        return self.instance_store_gb > 0


# GPUs, GPU memory, vCPUs and memory of g5 and g6: the AWS Batch user guide's GPU table
# (https://docs.aws.amazon.com/batch/latest/userguide/gpu-jobs.html) and the EC2 accelerated computing
# specifications (https://docs.aws.amazon.com/ec2/latest/instancetypes/ac.html), which also give g6e, p4d
# and p5. L40S memory is listed as 48 GiB (EC2's API reports 45776 MiB per GPU); instance store and EFA
# from the EC2 instance type pages. Check before a deploy: aws ec2 describe-instance-types --instance-types
# <type> --query 'InstanceTypes[].[GpuInfo,InstanceStorageInfo.TotalSizeInGB,NetworkInfo.EfaInfo]'.
# Compute capability: NVIDIA's CUDA GPU list (A10G 8.6, L4 8.9, L40S 8.9, A100 8.0, H100 9.0).
GPU_INSTANCE_TYPES: dict[str, GpuInstanceType] = {
    spec.name: spec
    for spec in (
        GpuInstanceType("g5.xlarge", "g5", "a10g", "8.6", 1, 24, 4, 16, 0, 250),
        GpuInstanceType("g5.2xlarge", "g5", "a10g", "8.6", 1, 24, 8, 32, 0, 450),
        GpuInstanceType("g5.12xlarge", "g5", "a10g", "8.6", 4, 24, 48, 192, 0, 3800),
        GpuInstanceType("g5.48xlarge", "g5", "a10g", "8.6", 8, 24, 192, 768, 1, 7600),
        GpuInstanceType("g6.xlarge", "g6", "l4", "8.9", 1, 24, 4, 16, 0, 250),
        GpuInstanceType("g6.2xlarge", "g6", "l4", "8.9", 1, 24, 8, 32, 0, 450),
        GpuInstanceType("g6.12xlarge", "g6", "l4", "8.9", 4, 24, 48, 192, 0, 3760),
        GpuInstanceType("g6.48xlarge", "g6", "l4", "8.9", 8, 24, 192, 768, 1, 7520),
        GpuInstanceType("g6e.xlarge", "g6e", "l40s", "8.9", 1, 48, 4, 32, 0, 250),
        GpuInstanceType("g6e.2xlarge", "g6e", "l40s", "8.9", 1, 48, 8, 64, 0, 450),
        GpuInstanceType("g6e.12xlarge", "g6e", "l40s", "8.9", 4, 48, 48, 384, 1, 3800),
        GpuInstanceType("g6e.48xlarge", "g6e", "l40s", "8.9", 8, 48, 192, 1536, 4, 7600),
        GpuInstanceType("p4d.24xlarge", "p4d", "a100", "8.0", 8, 40, 96, 1152, 4, 8000),
        GpuInstanceType("p5.48xlarge", "p5", "h100", "9.0", 8, 80, 192, 2048, 32, 30400),
    )
}

GPU_FAMILIES = frozenset(spec.family for spec in GPU_INSTANCE_TYPES.values())
AcceleratorInstanceType = NeuronInstanceType | GpuInstanceType
ACCELERATOR_INSTANCE_TYPES: dict[str, AcceleratorInstanceType] = {**NEURON_INSTANCE_TYPES, **GPU_INSTANCE_TYPES}

_INSTANCE_TYPE = re.compile(r"^(?P<family>[a-z]+[0-9]+[a-z-]*)\.(?P<size>[a-z0-9]+)$")
# Graviton families carry a `g` after the generation digit: m7g, c7gn, r8gd, t4g, x2gd, im4gn.
_GRAVITON_FAMILY = re.compile(r"^[a-z]+[0-9]+[a-z]*g[a-z]*$")


def family_of(instance_type: str) -> str | None:
    """`c7g.xlarge` -> `c7g`; None when the string is not shaped like an EC2 instance type."""
    match = _INSTANCE_TYPE.match(instance_type)
    return match.group("family") if match else None


def is_graviton(instance_type: str) -> bool:
    family = family_of(instance_type)
    return (
        family is not None
        and family not in NEURON_FAMILIES
        and family not in GPU_FAMILIES
        and bool(_GRAVITON_FAMILY.match(family))
    )


def is_neuron_family(instance_type: str) -> bool:
    return family_of(instance_type) in NEURON_FAMILIES


def is_gpu_family(instance_type: str) -> bool:
    return family_of(instance_type) in GPU_FAMILIES
