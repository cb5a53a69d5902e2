"""What the registry knows about each service, rendered from the environment config at synth.

The Registry stack stores it as JSON in an SSM parameter; the register Lambda and the operator CLI
read it from there (and `tessera models validate` builds it from a local config file).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from tessera_shared.constants import ACCELERATOR_POOL_ARCHITECTURE, model_prefix

# ECR finding severities, least to most severe.
SEVERITIES = ("INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL")
# A model compiled for one of these families runs on the others of its set (same Neuron chips).
COMPATIBLE_FAMILIES = {"trn1": ("trn1", "trn1n"), "trn1n": ("trn1", "trn1n"), "trn2": ("trn2",), "inf2": ("inf2",)}


@dataclass(frozen=True)
class CatalogTarget:
    """One target a service may run on, as far as the registry checks a version against it."""

    pool: str  # the pool's name (`general` for cpu): what the version record says it fits
    accelerator: str  # trainium | inferentia | gpu | cpu
    instance_family: str | None  # the pool's family; None for cpu
    neuron_cores: int
    image_tag: str  # the serving image config declares for this target
    neuron_sdk: str | None  # Neuron SDK of that image (Neuron targets)
    gpus: int = 0
    gpu_model: str | None = None  # GPU pools: the one model of the pool's types
    compute_capability: str | None = None
    gpu_driver: str | None = None  # the NVIDIA driver of the pinned AMI the pool's nodes run
    architecture: str = ACCELERATOR_POOL_ARCHITECTURE  # of the pool's nodes: what the serving image must run on

    @property
    def accepted_families(self) -> tuple[str, ...]:
        return COMPATIBLE_FAMILIES.get(self.instance_family or "", ())

    @property
    def label(self) -> str:
        return f"{self.accelerator} (pool {self.pool})"


@dataclass(frozen=True)
class CatalogService:
    """A service and the targets it may run on. The flat fields describe its current target; `alternatives`
    the others (config's `alternative_accelerators`)."""

    name: str
    repository: str
    accelerator: str  # trainium | inferentia | gpu | cpu
    instance_family: str | None  # the service's pool family; None for cpu
    neuron_cores: int
    image_tag: str  # the serving image config declares; its Neuron SDK is neuron_sdk
    neuron_sdk: str | None  # Neuron SDK of the service's serving image, as declared in config
    pool: str = "general"
    gpus: int = 0
    gpu_model: str | None = None
    compute_capability: str | None = None
    gpu_driver: str | None = None
    architecture: str = ACCELERATOR_POOL_ARCHITECTURE
    alternatives: tuple[CatalogTarget, ...] = ()

    @property
    def model_prefix(self) -> str:
        return model_prefix(self.name)

    @property
    def accepted_families(self) -> tuple[str, ...]:
        return COMPATIBLE_FAMILIES.get(self.instance_family or "", ())

    @property
    def targets(self) -> tuple[CatalogTarget, ...]:
        """Every allowed target, the current one first."""
        current = CatalogTarget(
            pool=self.pool,
            accelerator=self.accelerator,
            instance_family=self.instance_family,
            neuron_cores=self.neuron_cores,
            image_tag=self.image_tag,
            neuron_sdk=self.neuron_sdk,
            gpus=self.gpus,
            gpu_model=self.gpu_model,
            compute_capability=self.compute_capability,
            gpu_driver=self.gpu_driver,
            architecture=self.architecture,
        )
        return (current, *self.alternatives)


@dataclass(frozen=True)
class Catalog:
    services: dict[str, CatalogService]
    block_severity: str  # an image finding at or above this severity rejects a version

    def to_json(self) -> str:
        return json.dumps(
            {"block_severity": self.block_severity, "services": [asdict(s) for s in self.services.values()]},
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Catalog:
        data = json.loads(text)
        services = [
            CatalogService(
                **{key: value for key, value in entry.items() if key != "alternatives"},
                alternatives=tuple(CatalogTarget(**target) for target in entry.get("alternatives", [])),
            )
            for entry in data["services"]
        ]
        return cls(services={s.name: s for s in services}, block_severity=data["block_severity"])

    @property
    def repositories(self) -> list[str]:
        """Distinct image repositories, in the order the services name them."""
        return list(dict.fromkeys(service.repository for service in self.services.values()))

    def blocking_severities(self) -> tuple[str, ...]:
        return SEVERITIES[SEVERITIES.index(self.block_severity) :]
