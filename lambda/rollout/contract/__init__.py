"""The rollout contract: typed models of what a rollout is asked to do and how far it has got.

- `ServiceSettings`: a service's rollout settings, rendered at synth by the Rollout stack into SSM and
  read by Prepare.
- `Policy` / `Analysis` / `ExtraMetric`: how traffic moves and how the canary is judged (the service's
  policy with this rollout's overrides applied; see rollout.policy).
- `Plan`: everything one rollout needs, fixed when it starts (Prepare's result, `$.plan`).
- `Progress`: where the rollout is (`$.progress`), replaced by each step.
- `outcomes`: the judge's `Verdict` and a rollout's `Outcome`; `records`: the rollout record and its audit
  entries, as the registry table stores them and the CLI reads them.

Every model has a JSON round trip (`to_json` / `from_json`) that rejects unknown and missing fields by
name. Plans carry `contract_version`: a rollout that started under older code keeps running after a
deploy of newer code, as long as newer code only adds fields with defaults or reads the older names in
one place (version 1's pool counts: `_pool_from_version_1`); a plan from newer code than this is refused
rather than half-understood. The state machine takes its JSON paths from these
models (`json_path`), so a renamed field cannot silently leave a path dangling.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from rollout.contract.outcomes import Verdict
from tessera_shared.constants import AUTOSCALER_KINDS, HPA_KIND

CONTRACT_VERSION = 2  # 2: PoolCapacity's counts named for the pool's unit

T = TypeVar("T", bound="Model")


class ContractError(ValueError):
    """A payload that does not fit the contract: names the field and what was expected."""


class Model:
    """JSON round trip for the frozen dataclasses below."""

    def to_json(self) -> dict[str, Any]:
        # Every subclass is a frozen dataclass; this mixin itself is not, which is all mypy sees here.
        return {item.name: _plain(getattr(self, item.name)) for item in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_json(cls: type[T], data: object, *, where: str = "") -> T:
        return _build(cls, data, where or cls.__name__)


@dataclass(frozen=True)
class ExtraMetric(Model):
    name: str
    namespace: str
    metric_name: str
    statistic: str
    dimensions: dict[str, str]
    threshold: float
    direction: str
    max_ratio_vs_stable: float | None = None


@dataclass(frozen=True)
class Analysis(Model):
    max_5xx_rate_percent: float
    max_5xx_ratio_vs_stable: float
    max_p99_seconds: float
    max_p99_ratio_vs_stable: float
    min_requests: int
    max_bake_extensions: int
    alarms: list[str] = field(default_factory=list)
    extra_metrics: list[ExtraMetric] = field(default_factory=list)
    # Continuous judgement within a bake (rollout.steps.judge_interval); defaults keep older plans valid.
    interval_seconds: int = 60
    metric_delay_seconds: int = 120
    consecutive_failures: int = 2
    min_requests_per_interval: int = 20
    # Canary cost per million requests at most this times stable's (rollout.judge); None: not judged.
    max_cost_ratio_vs_stable: float | None = None
    # The serving runtime's figures (rollout.runtime_judge), judged only when the plan has `runtime_metrics`.
    max_ttft_p99_seconds: float = 30.0
    max_ttft_p50_ratio_vs_stable: float = 1.2
    max_ttft_p99_ratio_vs_stable: float = 1.2
    max_tpot_p99_ratio_vs_stable: float = 1.2
    max_e2e_p99_ratio_vs_stable: float = 1.2
    max_runtime_error_rate_percent: float = 1.0
    min_runtime_samples: int = 100
    min_runtime_samples_per_interval: int = 10


@dataclass(frozen=True)
class Policy(Model):
    steps: list[int]
    warmup_seconds: int
    bake_seconds: int
    poll_seconds: int
    manual_approval: bool
    approval_timeout_seconds: int
    ready_timeout_seconds: int
    analysis: Analysis


@dataclass(frozen=True)
class RuntimeMetrics(Model):
    """Where the judge reads a service's serving-runtime metrics: the environment's Prometheus workspace, queried
    with SigV4 (rollout.prometheus), and whose metric names apply (tessera_shared.runtime_metrics)."""

    query_url: str  # https://aps-workspaces.<region>.amazonaws.com/workspaces/<id>/api/v1/query
    region: str
    runtime: str = "vllm"


@dataclass(frozen=True)
class InstanceCapacity(Model):
    name: str
    accelerators: int  # per node, in the pool's unit


@dataclass(frozen=True)
class PoolCapacity(Model):
    """The accelerator pool a service runs on, as far as preflight's capacity check needs it: its
    Karpenter limits and the types Karpenter may launch (rollout.capacity does the arithmetic). Every count is
    in the pool's `unit`: NeuronCores on a Neuron pool, GPUs on a GPU pool."""

    name: str
    max_nodes: int
    accelerator_limit: int | None  # Karpenter's limit on the pool's unit; None: no limit
    per_pod: int  # accelerators each pod requests
    instance_types: list[InstanceCapacity]
    unit: str = "NeuronCore"

    @classmethod
    def from_json(cls, data: object, *, where: str = "") -> PoolCapacity:
        return _build(cls, _pool_from_version_1(data), where or cls.__name__)


def _pool_from_version_1(data: object) -> object:
    """Contract version 1 named a pool's counts after NeuronCores even on a GPU pool (`max_neuron_cores`,
    `cores_per_pod`, an instance's `cores`, and an unused `devices`); a plan written then still reads."""
    if not isinstance(data, dict) or "max_neuron_cores" not in data:
        return data
    renamed = {_POOL_V1_NAMES.get(key, key): value for key, value in data.items()}
    types = renamed.get("instance_types")
    if isinstance(types, list):
        renamed["instance_types"] = [
            {"name": item.get("name"), "accelerators": item.get("cores")} if isinstance(item, dict) else item
            for item in types
        ]
    return renamed


_POOL_V1_NAMES = {"max_neuron_cores": "accelerator_limit", "cores_per_pod": "per_pod"}


@dataclass(frozen=True)
class TrackPlacement(Model):
    """Where a track's pods run: the fields the rollout engine writes to move a track onto a target."""

    pool: str  # the pool's name (`general` for cpu)
    node_selector: dict[str, str]
    tolerations: list[dict[str, str]]
    resources: dict[str, str]  # accelerator resources of the serving container (requests = limits)
    scheduler_name: str | None = None


@dataclass(frozen=True)
class RolloutTarget(Model):
    """One target a service is allowed to run on: where its pods go there, and the pool's capacity."""

    name: str  # the pool's name, as the registry records the target a version fits
    accelerator: str
    placement: TrackPlacement
    pool: PoolCapacity | None  # None: the general pool (no accelerator limits to check)


@dataclass(frozen=True)
class ServiceSettings(Model):
    """One service's rollout settings (SSM `/tessera/<env>/rollout/services/<service>`)."""

    service: str
    namespace: str
    stable_deployment: str
    canary_deployment: str
    stable_autoscaler: str
    rule_arn: str
    stable_target_group: str
    canary_target_group: str
    load_balancer: str
    image_repository_uri: str
    model_bucket: str
    model_prefix: str
    pool: PoolCapacity | None
    policy: Policy
    targets: list[RolloutTarget] = field(default_factory=list)  # every allowed target, the current one first
    stable_autoscaler_kind: str = HPA_KIND  # or a KEDA ScaledObject, for a service that scales on `scaling`
    service_alarm: str | None = None  # the service's composite alarm, watched besides the policy's alarms
    stable_floor: int | None = None  # the floor config gives stable's autoscaler (replicas.min): its value at rest
    runtime_metrics: RuntimeMetrics | None = None  # None: the service has no metrics endpoint (load balancer only)

    def __post_init__(self) -> None:
        _check_autoscaler_kind("ServiceSettings", self.stable_autoscaler_kind)


@dataclass(frozen=True)
class Plan(Model):
    service: str
    version: str
    execution: str
    started_at: str
    namespace: str
    stable_deployment: str
    canary_deployment: str
    stable_autoscaler: str
    rule_arn: str
    stable_tg: str
    canary_tg: str
    load_balancer: str
    image: str  # <registry>/<repository>@sha256:..., the image registration recorded
    image_repository: str
    image_digest: str
    model_uri: str
    stable_version: str | None
    pool: PoolCapacity | None  # the pool the version runs on (its target's), for preflight's capacity check
    policy: Policy
    stable_autoscaler_kind: str = HPA_KIND
    service_alarm: str | None = None
    contract_version: int = CONTRACT_VERSION
    # Where the version runs: the target the registry found it fits. Canary takes it at deploy, stable at
    # promotion. None (a version registered before targets were recorded): placements are left as they are.
    placement: TrackPlacement | None = None
    stable_floor: int | None = None  # the settings' floor: what Preflight expects at rest
    runtime_metrics: RuntimeMetrics | None = None  # the settings': the canary is judged on the runtime's figures too

    @property
    def watched_alarms(self) -> list[str]:
        """The alarms whose ALARM state rolls the canary back: the service's own (overrides cannot drop it)
        and the policy's."""
        service = [self.service_alarm] if self.service_alarm else []
        return [*service, *(name for name in self.policy.analysis.alarms if name != self.service_alarm)]

    def __post_init__(self) -> None:
        _check_autoscaler_kind("Plan", self.stable_autoscaler_kind)
        if self.contract_version > CONTRACT_VERSION:
            raise ContractError(
                f"Plan.contract_version: {self.contract_version} was written by newer rollout code "
                f"than this ({CONTRACT_VERSION}); deploy the newer code first"
            )


@dataclass(frozen=True)
class StableSnapshot(Model):
    """What stable ran before the rollout: rollback puts it back if promotion had started."""

    image: str
    model_version: str
    model_uri: str
    replicas: int
    autoscaler_min: int | None  # the autoscaler's own floor (HPA minReplicas, ScaledObject minReplicaCount)
    placement: TrackPlacement | None = None  # where stable ran: rollback puts it back there


@dataclass(frozen=True)
class Progress(Model):
    deployed: bool = False  # the canary Deployment runs the new version
    step: int = 0
    replicas: int = 0  # canary pods wanted at this step
    stable_replicas: int = 0  # stable's size when the canary was last sized
    extensions: int = 0
    deadline: str | None = None  # of the readiness loop in progress
    warm_until: str | None = None
    bake_until: str | None = None
    step_started_at: str | None = None
    verdict: Verdict | None = None
    reasons: list[str] = field(default_factory=list)
    waiting: bool = False  # a warm-up or bake loop goes round again
    interval: int = 0  # the step's next analysis interval to judge
    failing_intervals: int = 0  # consecutive failing intervals (an interval short of requests neither adds nor resets)
    wait_seconds: int = 1  # the bake's next Wait: a poll, or less when an interval or the bake's end falls due sooner
    done: bool = False
    promotion_started: bool = False
    stable: StableSnapshot | None = None

    def replace(self, **changes: Any) -> Progress:
        return dataclasses.replace(self, **changes)


def json_path(model: type[Model], *names: str, root: str) -> str:
    """`$.<root>.<names...>`, checked against the model's fields (and nested models')."""
    current: Any = model
    for name in names:
        hints = _hints(current)
        if name not in hints:
            raise ContractError(f"{current.__name__} has no field {name!r}")
        current = _model_in(hints[name])
    return "$." + ".".join((root, *names))


# -- models to JSON and back ------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """JSON values: nested models through their own to_json, enums as their values."""
    if isinstance(value, Model):
        return value.to_json()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _build(model: type[T], data: object, where: str) -> T:
    if not isinstance(data, dict):
        raise ContractError(f"{where}: expected an object, got {type(data).__name__}")
    hints = _hints(model)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise ContractError(f"{where}: unknown field(s) {unknown}; expected {sorted(hints)}")
    values: dict[str, object] = {}
    for item in dataclasses.fields(model):  # type: ignore[arg-type]  # T is bound to Model: always a dataclass
        if item.name not in data:
            if item.default is not dataclasses.MISSING or item.default_factory is not dataclasses.MISSING:
                continue
            if not _optional(hints[item.name]):  # stores like DynamoDB's drop null attributes
                raise ContractError(f"{where}.{item.name}: required")
            values[item.name] = None
            continue
        values[item.name] = _value(hints[item.name], data[item.name], f"{where}.{item.name}")
    try:
        return model(**values)
    except (TypeError, ValueError) as error:
        raise ContractError(f"{where}: {error}") from None


def _value(hint: Any, value: object, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        [hint] = [option for option in options if option is not type(None)]
        origin = typing.get_origin(hint)
    if hint is Any:  # free-form evidence, kept as it came
        return value
    if isinstance(hint, type) and issubclass(hint, Model):
        return hint.from_json(value, where=where)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return _member(hint, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ContractError(f"{where}: expected a list, got {type(value).__name__}")
        [item] = typing.get_args(hint)
        return [_value(item, entry, f"{where}[{index}]") for index, entry in enumerate(value)]
    if origin is dict:
        if typing.get_args(hint)[1] is Any:
            if not isinstance(value, dict):
                raise ContractError(f"{where}: expected an object, got {type(value).__name__}")
            return dict(value)
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ContractError(f"{where}: expected an object of strings")
        return dict(value)
    return _scalar(hint, value, where)


def _member(enum: type[Enum], value: object, where: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        raise ContractError(f"{where}: expected one of {[member.value for member in enum]}, got {value!r}") from None


def _scalar(hint: Any, value: object, where: str) -> Any:
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
        str: isinstance(value, str),
    }
    if not ok.get(hint, False):
        raise ContractError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")
    return float(value) if hint is float and isinstance(value, int | float) else value


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(model: type) -> dict[str, Any]:
    """A dataclass's resolved field types, read once per class."""
    if model not in _HINTS:
        _HINTS[model] = typing.get_type_hints(model)
    return _HINTS[model]


def _optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


def _model_in(hint: Any) -> Any:
    for option in (hint, *typing.get_args(hint)):
        if isinstance(option, type) and issubclass(option, Model):
            return option
    return None


def _check_autoscaler_kind(model: str, kind: str) -> None:
    if kind not in AUTOSCALER_KINDS:
        raise ContractError(f"{model}.stable_autoscaler_kind: expected one of {list(AUTOSCALER_KINDS)}, got {kind!r}")
