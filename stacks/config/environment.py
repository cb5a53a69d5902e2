"""Typed configuration of one Tessera environment.

A YAML file per environment (``config/<env>.yaml``) is parsed once, here, into frozen pydantic
models; app.py hands the resulting ``EnvironmentConfig`` down to every stack and construct.
Unknown keys are errors, so a typo never silently falls back to a default. Every problem is
reported as ``<field path>: <what was wrong>``, one line each.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, model_validator

from stacks.config.accelerator_pools import AcceleratorPool, GpuPoolConfig
from stacks.config.artifacts import ArtifactsConfig
from stacks.config.base import StrictModel, duplicates, raise_if_any
from stacks.config.cluster import ClusterConfig
from stacks.config.errors import ConfigError, format_validation_error
from stacks.config.instance_types import GpuInstanceType
from stacks.config.network import NetworkConfig
from stacks.config.observability import ObservabilityConfig
from stacks.config.pipeline import PipelineConfig
from stacks.config.services import (
    EKS_SERVICE_CIDRS,
    AcceleratorSpec,
    FunctionsConfig,
    LoadBalancerConfig,
    RegistryConfig,
    ServiceSpec,
)
from stacks.config.stack_groups import MAIN_STACK_GROUP, stack_group_problems
from stacks.config.yaml_loader import load_yaml_mapping
from tessera_shared.constants import ENVIRONMENT_NAME_PATTERN, GENERAL_POOL, parameter_prefix

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
DEFAULT_ENVIRONMENT = "dev"

ENVIRONMENT_PATTERN = ENVIRONMENT_NAME_PATTERN
TAG_VALUE_PATTERN = r"^[A-Za-z0-9 _.:/=+\-@]{1,256}$"

TagValue = Annotated[str, Field(pattern=TAG_VALUE_PATTERN)]


# The stacks of one environment, `Tessera-<env>-<Component>` (stacks/tessera_app.py builds exactly these).
STACK_COMPONENTS = ("Network", "Artifacts", "Cluster", "Services", "Registry", "Observability", "Rollout")


def stack_name(environment: str, component: str) -> str:
    return f"Tessera-{environment}-{component}"


class TagsConfig(StrictModel):
    """Cost-allocation tags put on every resource; the `environment` tag comes from the environment name."""

    project: TagValue = Field("tessera", description="Project tag value.")
    cost_center: TagValue = Field(description="Cost centre that pays for the environment (tag `cost-center`).")
    owner: TagValue = Field(description="Team or person accountable for the environment (tag `owner`).")

    def as_dict(self, environment: str) -> dict[str, str]:
        return {
            "project": self.project,
            "environment": environment,
            "cost-center": self.cost_center,
            "owner": self.owner,
        }


@dataclass(frozen=True)
class ServiceTarget:
    """One target a service is allowed to run on: the accelerator spec, the pool it resolves to (None: the
    Graviton `general` pool), and the serving image built for it. The first target is the current one."""

    accelerator: AcceleratorSpec
    pool: AcceleratorPool | None
    image_tag: str
    neuron_sdk: str | None
    is_current: bool

    @property
    def name(self) -> str:
        """The pool's name: what the registry records a version fits and the rollout places it by."""
        return self.pool.name if self.pool is not None else GENERAL_POOL


@dataclass(frozen=True)
class PlacedService:
    """A service with the accelerator pool it runs on (None: the Graviton `general` pool)."""

    spec: ServiceSpec
    pool: AcceleratorPool | None
    targets: tuple[ServiceTarget, ...] = ()  # every allowed target, the current one first

    @property
    def name(self) -> str:
        return self.spec.name


class EnvironmentConfig(StrictModel):
    """Everything that differs between two Tessera environments."""

    name: str = Field(pattern=ENVIRONMENT_PATTERN, description="Environment name; stacks are `Tessera-<name>-*`.")
    account: str | None = Field(
        None, pattern=r"^\d{12}$", description="AWS account id; omitted = environment-agnostic synth."
    )
    region: str | None = Field(
        None,
        pattern=r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$",
        description="AWS region; omitted = environment-agnostic synth.",
    )
    tags: TagsConfig
    removal_policy: Literal["retain", "destroy"] = Field(
        "retain",
        description="What happens to stateful resources (keys, repositories, buckets, tables) when a stack is deleted.",
    )
    network: NetworkConfig
    artifacts: ArtifactsConfig = ArtifactsConfig()
    cluster: ClusterConfig = ClusterConfig()
    load_balancer: LoadBalancerConfig = LoadBalancerConfig()
    registry: RegistryConfig = RegistryConfig()
    functions: FunctionsConfig = FunctionsConfig()
    observability: ObservabilityConfig = ObservabilityConfig()
    services: list[ServiceSpec] = Field(min_length=1, description="The inference services of this environment.")
    pipeline: PipelineConfig | None = Field(
        None,
        description="A delivery pipeline whose home is this file: synthesizing it builds the pipeline stack, which "
        "deploys the environments it names (docs/delivery.md). Omitted: this environment's stacks, as always.",
    )

    @model_validator(mode="after")
    def _cross_field_rules(self) -> EnvironmentConfig:
        problems = duplicates("services", [service.name for service in self.services], field="name")
        problems += duplicates("services", [service.route.key for service in self.services], field="route")
        problems += duplicates("services", [str(service.port) for service in self.services], field="port")
        problems += stack_group_problems(self.services)
        problems += self._placement_problems()
        problems += self._call_problems()
        problems += self._egress_problems()
        if self.network.availability_zones is not None:
            if self.region is None:
                problems.append("network.availability_zones: set `region` too, AZ names belong to one region")
            else:
                problems.extend(
                    f"network.availability_zones[{index}]: {zone!r} is not in region {self.region!r}"
                    for index, zone in enumerate(self.network.availability_zones)
                    if not zone.startswith(self.region)
                )
        problems.extend(self._efa_zone_problems())
        problems.extend(self._plain_http_problems())
        raise_if_any(problems)
        return self

    def _placement_problems(self) -> list[str]:
        """Each accelerator target of a service (its current one and every alternative) must name an accelerator
        that has exactly one pool, and its cores or GPUs must fit one node of it."""
        problems = []
        for index, service in enumerate(self.services):
            wanted = [(f"services[{index}].accelerator", service.accelerator)] + [
                (f"services[{index}].alternative_accelerators[{n}]", alternative)
                for n, alternative in enumerate(service.alternative_accelerators)
            ]
            for path, accelerator in wanted:
                if accelerator.type == "cpu":
                    continue
                candidates = self._pools_matching(accelerator)
                if not candidates:
                    names = ", ".join(f"{p.name} ({p.accelerator})" for p in self.cluster.accelerator_pools) or "none"
                    named = f" named {accelerator.pool!r}" if accelerator.pool else ""
                    problems.append(
                        f"{path}: no {accelerator.type} pool{named} in cluster.accelerator_pools (pools: {names})"
                    )
                elif len(candidates) > 1:
                    names = ", ".join(pool.name for pool in candidates)
                    problems.append(f"{path}.pool: several {accelerator.type} pools ({names}); name one")
                else:
                    problems.extend(_fit_problems(path, service, accelerator, candidates[0]))
        return problems

    def _call_problems(self) -> list[str]:
        """A service may call only other, non-public services of this environment, each named once."""
        names = {service.name for service in self.services}
        public = {service.name for service in self.services if service.public}
        problems = []
        for index, service in enumerate(self.services):
            path = f"services[{index}].calls"
            problems += duplicates(path, service.calls)
            for position, callee in enumerate(service.calls):
                if callee == service.name:
                    problems.append(f"{path}[{position}]: a service does not call itself through the load balancer")
                elif callee not in names:
                    problems.append(
                        f"{path}[{position}]: no service named {callee!r} (services: {', '.join(sorted(names))})"
                    )
                elif callee in public:
                    problems.append(
                        f"{path}[{position}]: {callee!r} is public, routed only on the outside load balancer; "
                        "services call each other through the internal one"
                    )
        return problems

    def _egress_problems(self) -> list[str]:
        """Declared egress is for addresses outside the cluster: one inside the VPC would name pods and nodes, one
        inside a Service ClusterIP range the API server and webhooks."""
        closed = [("the VPC", self.network.vpc_cidr)] + [("EKS's Service ClusterIPs", c) for c in EKS_SERVICE_CIDRS]
        problems = []
        for index, service in enumerate(self.services):
            for position, cidr in enumerate(service.egress):
                network = ipaddress.IPv4Network(cidr)
                problems += [
                    f"services[{index}].egress[{position}]: {cidr} lies in {what} ({inside}); pods reach other "
                    "services through `calls`, and nothing else inside"
                    for what, inside in closed
                    if network.subnet_of(ipaddress.IPv4Network(inside))
                ]
        return problems

    def _plain_http_problems(self) -> list[str]:
        """Production (retained state) serves HTTPS unless config opts out by name."""
        load_balancer = self.load_balancer
        if self.is_retained and not load_balancer.is_https and not load_balancer.allow_plain_http_in_production:
            return [
                "load_balancer.certificate_arn: required where removal_policy is retain (production); "
                "set an ACM certificate ARN, or load_balancer.allow_plain_http_in_production: true to serve plain HTTP"
            ]
        return []

    def _pools_matching(self, wanted: AcceleratorSpec) -> list[AcceleratorPool]:
        return [
            pool
            for pool in self.cluster.accelerator_pools
            if pool.accelerator == wanted.type and wanted.pool in (None, pool.name)
        ]

    def pool_for(self, service: ServiceSpec) -> AcceleratorPool | None:
        """The accelerator pool a service runs on first; None for cpu services (general pool)."""
        return self._pool_of(service.accelerator)

    def _pool_of(self, accelerator: AcceleratorSpec) -> AcceleratorPool | None:
        return self._pools_matching(accelerator)[0] if accelerator.type != "cpu" else None

    def allowed_targets(self, service: ServiceSpec) -> tuple[ServiceTarget, ...]:
        """Every target the service may run on, the current one first, each resolved to its pool."""
        current = ServiceTarget(
            accelerator=service.accelerator,
            pool=self._pool_of(service.accelerator),
            image_tag=service.image.tag,
            neuron_sdk=service.image.neuron_sdk,
            is_current=True,
        )
        return (
            current,
            *(
                ServiceTarget(
                    accelerator=alternative,
                    pool=self._pool_of(alternative),
                    image_tag=alternative.image_tag,
                    neuron_sdk=alternative.neuron_sdk,
                    is_current=False,
                )
                for alternative in service.alternative_accelerators
            ),
        )

    @property
    def artifacts_key_users(self) -> list[str]:
        """Roles besides this environment's own that use the artifacts key: the cluster's operators and those named
        for the key alone."""
        cluster = self.cluster
        return [*cluster.admin_role_arns, *cluster.read_only_role_arns, *self.artifacts.key_user_arns]

    @property
    def has_gpu_pool(self) -> bool:
        return any(isinstance(pool, GpuPoolConfig) for pool in self.cluster.accelerator_pools)

    @property
    def stack_groups(self) -> dict[str, tuple[PlacedService, ...]]:
        """The services of each stack group, the main group first (when it has any), then in order of appearance."""
        groups: dict[str, list[PlacedService]] = {MAIN_STACK_GROUP: []}
        for placed in self.placed_services:
            groups.setdefault(placed.spec.stack_group, []).append(placed)
        return {group: tuple(members) for group, members in groups.items() if members}

    @property
    def placed_services(self) -> tuple[PlacedService, ...]:
        return tuple(
            PlacedService(spec=service, pool=self.pool_for(service), targets=self.allowed_targets(service))
            for service in self.services
        )

    def _efa_zone_problems(self) -> list[str]:
        """A pool pinned to one zone (EFA, a reservation or a capacity block) must name a zone the VPC has."""
        zones = self.network.availability_zones
        problems = []
        for index, pool in enumerate(self.cluster.accelerator_pools):
            pinned = [("efa.availability_zone", pool.efa.availability_zone)] if pool.efa else []
            if pool.capacity.availability_zone is not None:
                pinned.append(("capacity.availability_zone", pool.capacity.availability_zone))
            for field, zone in pinned:
                path = f"cluster.accelerator_pools[{index}].{field}"
                if zones is None:
                    problems.append(f"{path}: set network.availability_zones (and region) to pin a pool to a zone")
                elif zone not in zones:
                    problems.append(f"{path}: {zone!r} is not one of network.availability_zones")
        return problems

    @property
    def is_retained(self) -> bool:
        return self.removal_policy == "retain"

    @property
    def parameter_prefix(self) -> str:
        """SSM parameter path under which the stacks publish what later stacks and tools need."""
        return parameter_prefix(self.name)

    def stack_name(self, component: str) -> str:
        return stack_name(self.name, component)

    @property
    def image_repositories(self) -> list[str]:
        """Distinct ECR repositories, in the order the services name them."""
        return list(dict.fromkeys(service.image.repository for service in self.services))


def parse_config(data: object, *, source: str) -> EnvironmentConfig:
    """Validate already-loaded YAML data; raises ConfigError listing every problem."""
    try:
        return EnvironmentConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(source, format_validation_error(error, EnvironmentConfig)) from None


def load_config(path: str | Path) -> EnvironmentConfig:
    """Read and validate one environment file; raises ConfigError with one line per problem."""
    path = Path(path)
    return parse_config(load_yaml_mapping(path), source=str(path))


def config_path_for(environment: str) -> Path:
    return CONFIG_DIR / f"{environment}.yaml"


def _fit_problems(path: str, service: ServiceSpec, accelerator: AcceleratorSpec, pool: AcceleratorPool) -> list[str]:
    """A target's cores or GPUs must fit the pool's largest node, and the model cache that node's local storage."""
    problems = []
    node = pool.largest_instance
    if isinstance(node, GpuInstanceType):
        if accelerator.gpus > node.gpus:
            problems.append(
                f"{path}.gpus: {accelerator.gpus} exceeds the {node.gpus} GPUs of {node.name} in pool {pool.name!r}"
            )
    else:
        cores = accelerator.neuron_cores
        if cores > node.cores:
            problems.append(
                f"{path}.neuron_cores: {cores} exceeds the {node.cores} NeuronCores of {node.name} "
                f"in pool {pool.name!r}"
            )
    path = path.split(".", 1)[0]  # the model cache belongs to the service
    cache = service.resources.model_cache_bytes
    if cache:
        room_gb = node.instance_store_gb if pool.has_instance_store else pool.disk_size_gib * 1.073741824
        where = "instance store" if pool.has_instance_store else "root volume (disk_size_gib)"
        if cache / 1e9 > room_gb * 0.9:
            problems.append(
                f"{path}.resources.model_cache: {service.resources.model_cache} does not fit 90% of the "
                f"{room_gb:.0f} GB {where} of {node.name} in pool {pool.name!r}"
            )
    return problems
