"""`tessera cost`: what an environment's pools cost a month at their floor and ceiling, and what a million
requests cost each service over the last day on its chip and, estimated, on each target it may move to.

Where each figure comes from (every price is on demand, from the vendored table tessera_shared/prices.json,
whose date is printed; a missing price or no traffic gives no figure and says why):

- Pools, from the environment's config file: floor = the nodes a pool keeps (the system and scheduler node
  groups' fixed counts; 0 for Karpenter pools) x its cheapest type; ceiling = the most nodes its limits
  allow (max_nodes, and the pool's max_neuron_cores or max_gpus / the type's cores or GPUs) x the dearest
  type; x 730 hours. A spot pool's figures are upper bounds.
- A service over the last 24 hours: pod-hours = the sum of its target groups' (stable and canary) hourly
  average HealthyHostCount, requests = their RequestCount (CloudWatch, AWS/ApplicationELB); cost = pod-hours
  x one pod's hourly price / requests x 1e6. One pod's hourly price is its share of the cheapest type of its
  pool that fits it (NeuronCores, GPUs, or vCPUs for cpu services: by the type's vCPUs, a little under the
  share of allocatable vCPUs the rollout's own figure uses) x that type's price.
- A target the service may run on: one pod's hourly price there / the requests per pod-hour a past rollout's
  canary served there x 1e6; "not measured yet" until a rollout has run there. A measurement is a whole-bake
  judgement of a past rollout (an item of its own, `JUDGEMENT#...` in the registry table) whose `canary`
  carries `target` (the target's pool name) and `cost` (the canary's requests, pods and hours). For a service
  with runtime metrics the same judgements give output tokens per pod-hour, and so a cost per million output
  tokens beside the cost per million requests.

The targets of a service are the ones its config allows (`accelerator` and `alternative_accelerators`), the
current one first.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollout.contract import ServiceSettings
from rollout.cost import CPU_RESOURCE, Node, Pod, pod_share, quantity
from rollout.ledger import Ledger
from rollout.metrics import arn_dimension
from stacks.config.instance_types import NEURON_INSTANCE_TYPES
from tessera_cli.environment import Environment
from tessera_cli.errors import EXIT_OK, EXIT_USAGE, CliError
from tessera_cli.measured import measured_throughput
from tessera_cli.output import Printer
from tessera_cli.rollout import service_settings
from tessera_shared import metrics
from tessera_shared.prices import HOURS_PER_MONTH, PriceTable, price_table

if TYPE_CHECKING:  # the config models (pydantic) are imported when the command runs, not with the CLI
    from stacks.config.accelerator_pools import AcceleratorPool
    from stacks.config.environment import EnvironmentConfig
    from stacks.config.services import ServiceSpec

DAY = timedelta(hours=24)
HOUR_SECONDS = 3600
NOT_MEASURED = "not measured yet"
HELP = f"""{__doc__.rstrip()}

Refresh the price table with `make prices`.

examples:
  tessera cost                               # dev, region from the config or the AWS config
  tessera --env prod --region us-east-2 cost
  tessera cost --json --config config/prod.yaml

--json prints one document: {{"environment", "region", "prices": {{"as_of", "source"}}, "hours_per_month",
"pools": [{{"name", "kind", "instance_types", "floor_nodes", "ceiling_nodes", "monthly_usd_at_floor",
"monthly_usd_at_ceiling", "spot", "reason"}}], "services": [{{"name", "target", "pool", "last_day":
{{"requests", "pod_hours", "pod_usd_per_hour", "cost_per_million_requests", "upper_bound", "reason"}},
"targets": [{{"target", "pool", "pod_usd_per_hour", "requests_per_pod_hour", "cost_per_million_requests",
"output_tokens_per_pod_hour", "cost_per_million_output_tokens", "upper_bound", "reason"}}]}}]}} (USD; a
figure that cannot be made honestly is null, with the reason;
upper_bound: spot capacity charged at the on-demand price).

exit codes: 0 shown; 1 a service's rollout settings are unreadable; 2 no region, or the config is invalid;
4 environment unreachable (AWS error, missing SSM parameter)"""


# -- targets -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """Where a service's pods could run: the pool, the resource a pod is charged by, how much of it one
    pod takes, and how much of it each of the pool's types has."""

    name: str  # the accelerator target, e.g. "trainium", "gpu", "cpu"
    pool: str
    resource: str  # aws.amazon.com/neuroncore, nvidia.com/gpu or cpu
    per_pod: float
    units_by_type: dict[str, float]  # instance type -> that resource per node
    spot: bool = False


AllowedTargets = Callable[["ServiceSpec", "EnvironmentConfig"], list[Target]]


def standard_vcpus(instance_type: str) -> int | None:
    """vCPUs of a Neuron type (from the instance table) or of a general-purpose, compute or memory type by
    EC2's size names (medium 1, large 2, xlarge 4, Nxlarge 4N); None for anything else (metal, ...)."""
    if instance_type in NEURON_INSTANCE_TYPES:
        return NEURON_INSTANCE_TYPES[instance_type].vcpus
    size = instance_type.partition(".")[2]
    if match := re.fullmatch(r"(\d*)xlarge", size):
        return 4 * int(match.group(1) or 1)
    return {"medium": 1, "large": 2}.get(size)


def configured_targets(service: ServiceSpec, config: EnvironmentConfig) -> list[Target]:
    """Every target the service's config allows (EnvironmentConfig.allowed_targets), the current one first:
    a pod there is charged by its NeuronCores, GPUs or (on the general pool) vCPUs."""
    targets = []
    for allowed in config.allowed_targets(service):
        accelerator, pool = allowed.accelerator, allowed.pool
        if pool is None:
            general = config.cluster.general_pool
            units = {name: float(v) for name in general.instance_types if (v := standard_vcpus(name)) is not None}
            targets.append(Target(accelerator.type, allowed.name, CPU_RESOURCE, quantity(service.resources.cpu), units))
        else:
            units = {name: float(count) for name, count in pool.accelerators_per_node.items()}
            per_pod = float(accelerator.per_pod)
            targets.append(Target(accelerator.type, pool.name, pool.resource, per_pod, units, _spot(pool)))
    return targets


def _spot(pool: AcceleratorPool) -> bool:
    return pool.capacity.type == "spot"


def current_target(service: ServiceSpec, config: EnvironmentConfig) -> list[Target]:
    """The one target a service has today: the chip and pool its config places it on."""
    return configured_targets(service, config)[:1]


def pod_hourly(target: Target, prices: PriceTable, region: str) -> tuple[float | None, str | None]:
    """One pod's hourly price on the target: its share of the cheapest type that fits it (rollout.cost's share
    rule), or None and why."""
    best: float | None = None
    unpriced = []
    for instance_type, units in target.units_by_type.items():
        if units < target.per_pod:
            continue
        price = prices.hourly(region, instance_type)
        if price is None:
            unpriced.append(instance_type)
            continue
        share, _ = pod_share(
            Pod("pod", instance_type, {target.resource: target.per_pod}),
            Node(instance_type, instance_type, None, {target.resource: units}),
        )
        if share is not None:
            best = share * price if best is None else min(best, share * price)
    if unpriced:  # an unpriced type might be the cheapest: no figure rather than a wrong one
        return None, f"no on-demand price for {', '.join(unpriced)} in {region}"
    if best is None:
        return None, f"no type of pool {target.pool} fits one pod"
    return best, None


# -- pools -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Pool:
    name: str
    kind: str
    types: list[str]
    floor: int  # nodes the pool keeps
    ceiling: dict[str, int]  # instance type -> the most nodes of it the pool's limits allow
    spot: bool = False


def _pools(config: EnvironmentConfig) -> list[_Pool]:
    from stacks.config.accelerator_pools import node_ceiling
    from stacks.services.placement import needs_neuron_scheduler  # the CLI imports the stacks lazily

    cluster = config.cluster
    system, scheduler, general = cluster.system_pool, cluster.scheduler_pool, cluster.general_pool
    pools = [
        _Pool(
            "system",
            "managed node group",
            system.instance_types,
            system.nodes,
            dict.fromkeys(system.instance_types, system.nodes),
        )
    ]
    if needs_neuron_scheduler(config):  # the same rule the app builder gives the Cluster stack
        pools.append(
            _Pool(
                "scheduler",
                "managed node group",
                scheduler.instance_types,
                scheduler.nodes,
                dict.fromkeys(scheduler.instance_types, scheduler.nodes),
            )
        )
    pools.append(
        _Pool(
            "general", "karpenter", general.instance_types, 0, dict.fromkeys(general.instance_types, general.max_nodes)
        )
    )
    for pool in cluster.accelerator_pools:
        ceiling = {name: node_ceiling(pool, name) for name in pool.instance_types}
        pools.append(_Pool(pool.name, "karpenter", pool.instance_types, 0, ceiling, pool.capacity.type == "spot"))
    return pools


def pool_costs(config: EnvironmentConfig, prices: PriceTable, region: str) -> list[dict]:
    rows = []
    for pool in _pools(config):
        listed = {name: prices.hourly(region, name) for name in pool.types}
        hourly = {name: price for name, price in listed.items() if price is not None}
        missing = [name for name in pool.types if name not in hourly]
        row = {
            "name": pool.name,
            "kind": pool.kind,
            "instance_types": pool.types,
            "floor_nodes": pool.floor,
            "ceiling_nodes": max(pool.ceiling.values()),
            "spot": pool.spot,
            "monthly_usd_at_floor": None,
            "monthly_usd_at_ceiling": None,
            "reason": None,
        }
        if missing:
            row["reason"] = f"no on-demand price for {', '.join(missing)} in {region}"
        else:
            row["monthly_usd_at_floor"] = round(pool.floor * min(hourly.values()) * HOURS_PER_MONTH, 2)
            ceiling = max(nodes * hourly[name] for name, nodes in pool.ceiling.items())
            row["monthly_usd_at_ceiling"] = round(ceiling * HOURS_PER_MONTH, 2)
        rows.append(row)
    return rows


# -- services ----------------------------------------------------------------------------------------
def last_day(cloudwatch: Any, settings: ServiceSettings, *, end: datetime) -> tuple[int, float, int]:
    """(requests, pod-hours, hours with HealthyHostCount data) of both tracks over the 24 hours before end."""
    load_balancer = arn_dimension(settings.load_balancer)
    queries: list[dict[str, Any]] = []
    for track, arn in (("stable", settings.stable_target_group), ("canary", settings.canary_target_group)):
        dimensions = metrics.REQUEST_COUNT.dimensions_map(TargetGroup=arn_dimension(arn), LoadBalancer=load_balancer)
        for metric, stat in ((metrics.REQUEST_COUNT, "Sum"), (metrics.HEALTHY_HOSTS, "Average")):
            queries.append(
                {
                    "Id": f"{track}_{metric.name.lower()}",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": metric.namespace,
                            "MetricName": metric.name,
                            "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                        },
                        "Period": HOUR_SECONDS,
                        "Stat": stat,
                    },
                }
            )
    values: dict[str, list[float]] = {query["Id"]: [] for query in queries}
    request: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": end - DAY, "EndTime": end}
    while True:
        response = cloudwatch.get_metric_data(**request)
        for result in response["MetricDataResults"]:
            values[result["Id"]].extend(result.get("Values", []))
        if not response.get("NextToken"):
            break
        request["NextToken"] = response["NextToken"]
    requests = round(sum(values["stable_requestcount"]) + sum(values["canary_requestcount"]))
    # Each hourly average of healthy targets is that hour's pod-hours.
    pod_hours = sum(values["stable_healthyhostcount"]) + sum(values["canary_healthyhostcount"])
    hours = max(len(values["stable_healthyhostcount"]), len(values["canary_healthyhostcount"]))
    return requests, pod_hours, hours


def _per_million(usd_per_pod_hour: float | None, requests_per_pod_hour: float | None) -> float | None:
    if usd_per_pod_hour is None or not requests_per_pod_hour:
        return None
    return round(usd_per_pod_hour / requests_per_pod_hour * 1e6, 6)


def service_cost(
    service: ServiceSpec,
    config: EnvironmentConfig,
    *,
    env: Environment,
    prices: PriceTable,
    region: str,
    end: datetime,
    allowed_targets: AllowedTargets,
) -> dict:
    [current] = current_target(service, config)
    hourly, reason = pod_hourly(current, prices, region)
    settings = service_settings(env, service.name)
    requests, pod_hours, _ = last_day(env.client("cloudwatch"), settings, end=end)
    cost = None
    if reason is None and requests <= 0:
        reason = "no requests in the last 24 hours"
    elif reason is None and pod_hours <= 0:
        reason = "no HealthyHostCount data in the last 24 hours"
    elif reason is None and hourly is not None:
        cost = round(pod_hours * hourly / requests * 1e6, 6)
    judgements = Ledger(env.client("dynamodb"), env.parameter("artifacts/registry-table-name")).every_judgement(
        service.name
    )
    targets = []
    for target in allowed_targets(service, config):
        target_hourly, target_reason = pod_hourly(target, prices, region)
        throughput = measured_throughput(judgements, target.pool)
        tokens = measured_throughput(judgements, target.pool, per="output_tokens")
        targets.append(
            {
                "target": target.name,
                "pool": target.pool,
                "pod_usd_per_hour": None if target_hourly is None else round(target_hourly, 6),
                "requests_per_pod_hour": None if throughput is None else round(throughput, 3),
                "cost_per_million_requests": _per_million(target_hourly, throughput),
                "output_tokens_per_pod_hour": None if tokens is None else round(tokens, 3),
                "cost_per_million_output_tokens": _per_million(target_hourly, tokens),
                "upper_bound": target.spot,
                "reason": target_reason or (NOT_MEASURED if throughput is None else None),
            }
        )
    return {
        "name": service.name,
        "target": current.name,
        "pool": current.pool,
        "last_day": {
            "requests": requests,
            "pod_hours": round(pod_hours, 3),
            "pod_usd_per_hour": None if hourly is None else round(hourly, 6),
            "cost_per_million_requests": cost,
            "upper_bound": current.spot,
            "reason": reason if cost is None else None,
        },
        "targets": targets,
    }


# -- the command -------------------------------------------------------------------------------------
def add_command(parser: argparse.ArgumentParser) -> None:
    parser.description = HELP
    parser.add_argument("--config", type=Path, help="environment config file (default config/<env>.yaml)")
    parser.set_defaults(run=show_cost)


def show_cost(
    args: argparse.Namespace,
    printer: Printer,
    *,
    allowed_targets: AllowedTargets = configured_targets,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    from stacks.config.environment import config_path_for, load_config
    from stacks.config.errors import ConfigError

    try:
        config = load_config(args.config or config_path_for(args.env))
    except ConfigError as error:
        raise CliError(str(error), EXIT_USAGE) from None
    env = Environment(args.env, args.region)
    region = args.region or config.region or env.region_name
    if not region:
        raise CliError("no region: pass --region, or set region in the config or the AWS config", EXIT_USAGE)
    prices = price_table()
    basis = prices.regions.get(region)
    end = now().replace(second=0, microsecond=0)
    report = {
        "environment": config.name,
        "region": region,
        "prices": {"as_of": basis.as_of, "source": basis.source} if basis else None,
        "hours_per_month": HOURS_PER_MONTH,
        "pools": pool_costs(config, prices, region),
        "services": [
            service_cost(
                service, config, env=env, prices=prices, region=region, end=end, allowed_targets=allowed_targets
            )
            for service in config.services
        ],
    }
    printer.result(report, describe(report))
    return EXIT_OK


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}"


def describe(report: dict) -> str:
    basis = report["prices"]
    lines = [
        f"environment {report['environment']}, region {report['region']}: on-demand prices "
        + (f"as of {basis['as_of']}" if basis else "unknown in this region (run `make prices`)")
        + f", {report['hours_per_month']} h a month",
        "pools (monthly, at floor / at ceiling):",
    ]
    for pool in report["pools"]:
        note = " (spot: at most)" if pool["spot"] else ""
        figures = (
            f"{_usd(pool['monthly_usd_at_floor'])} / {_usd(pool['monthly_usd_at_ceiling'])}{note}"
            if pool["reason"] is None
            else pool["reason"]
        )
        lines.append(
            f"  {pool['name']} ({', '.join(pool['instance_types'])}; {pool['floor_nodes']}-{pool['ceiling_nodes']} "
            f"nodes): {figures}"
        )
    lines.append("services (per million requests, last 24 h on the current chip; then each target):")
    for service in report["services"]:
        day = service["last_day"]
        figure = (
            f"{_usd(day['cost_per_million_requests'])} ({day['requests']:,} requests, {day['pod_hours']} pod-hours)"
            if day["reason"] is None
            else day["reason"]
        )
        lines.append(f"  {service['name']} on {service['target']} (pool {service['pool']}): {figure}")
        for target in service["targets"]:
            pod = _usd(target["pod_usd_per_hour"]) + " per pod-hour"
            if target["cost_per_million_requests"] is not None:
                estimate = (
                    f"{target['requests_per_pod_hour']:,} requests per pod-hour measured: "
                    f"{_usd(target['cost_per_million_requests'])} per million"
                )
                if target["cost_per_million_output_tokens"] is not None:
                    estimate += f", {_usd(target['cost_per_million_output_tokens'])} per million output tokens"
            else:
                estimate = target["reason"]
            lines.append(f"    {target['target']} (pool {target['pool']}): {pod}; {estimate}")
    return "\n".join(lines)
