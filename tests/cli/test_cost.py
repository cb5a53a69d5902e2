"""`tessera cost` through main(), on moto (SSM settings, CloudWatch metrics, the rollout ledger), against
figures worked out by hand from the vendored price table (us-east-1, 2026-07-20)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from rollout.contract import Plan, ServiceSettings
from rollout.contract.outcomes import Verdict
from rollout.contract.records import AuditEntry, AuditKind
from rollout.ledger import Ledger
from stacks.config.environment import config_path_for, load_config
from stacks.rollout.settings import RoutingArns, rollout_settings
from tessera_cli.cost import (
    Target,
    configured_targets,
    current_target,
    pool_costs,
    standard_vcpus,
)
from tessera_cli.errors import EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE
from tessera_cli.main import main
from tessera_cli.measured import measured_throughput
from tessera_shared.prices import price_table
from tests.fake_aws import create_registry_table, use_fake_credentials

REGION = "us-east-1"
TABLE = "tessera-dev-registry"
ACCOUNT_ARN = f"arn:aws:elasticloadbalancing:{REGION}:123456789012"
LOAD_BALANCER = f"{ACCOUNT_ARN}:loadbalancer/app/tessera-dev/50dc6c495c0c9188"


def _target_group(service: str, track: str) -> str:
    return f"{ACCOUNT_ARN}:targetgroup/{service}-{track}/73e2d6bc24d8a067"


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The dev environment as the CLI finds it: its rollout settings and table name in SSM, the table."""
    use_fake_credentials(monkeypatch, REGION)
    config = load_config(config_path_for("dev"))
    with mock_aws():
        ssm = boto3.client("ssm", region_name=REGION)
        ssm.put_parameter(Name="/tessera/dev/artifacts/registry-table-name", Value=TABLE, Type="String")
        for placed in config.placed_services:
            routing = RoutingArns(
                rule=f"{ACCOUNT_ARN}:listener-rule/app/tessera-dev/50dc6c495c0c9188/1/2",
                stable_target_group=_target_group(placed.name, "stable"),
                canary_target_group=_target_group(placed.name, "canary"),
                load_balancer=LOAD_BALANCER,
            )
            settings = rollout_settings(
                placed, environment="dev", routing=routing, image_registry="registry", model_bucket="models"
            )
            ssm.put_parameter(
                Name=f"/tessera/dev/rollout/services/{placed.name}",
                Value=json.dumps(settings.to_json()),
                Type="String",
            )
        create_registry_table(boto3.client("dynamodb", region_name=REGION), TABLE)
        yield


def _put(metric: str, service: str, track: str, value: float, minutes_ago: int) -> None:
    boto3.client("cloudwatch", region_name=REGION).put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[
            {
                "MetricName": metric,
                "Dimensions": [
                    {"Name": "TargetGroup", "Value": _target_group(service, track).split(":", 5)[5]},
                    {"Name": "LoadBalancer", "Value": "app/tessera-dev/50dc6c495c0c9188"},
                ],
                "Timestamp": datetime.now(UTC) - timedelta(minutes=minutes_ago),
                "Value": value,
            }
        ],
    )


def _record_rollout(service: str, canary: dict) -> None:
    """A past rollout of `service` as the rollout engine's ledger records it, with one whole-bake judgement."""
    raw = boto3.client("ssm", region_name=REGION).get_parameter(Name=f"/tessera/dev/rollout/services/{service}")
    settings = ServiceSettings.from_json(json.loads(raw["Parameter"]["Value"]))
    plan = Plan(
        service=service,
        version="v2",
        execution="exec-1",
        started_at="2026-11-20T10:00:00+00:00",
        namespace=settings.namespace,
        stable_deployment=settings.stable_deployment,
        canary_deployment=settings.canary_deployment,
        stable_autoscaler=settings.stable_autoscaler,
        rule_arn=settings.rule_arn,
        stable_tg=settings.stable_target_group,
        canary_tg=settings.canary_target_group,
        load_balancer=settings.load_balancer,
        image=f"{settings.image_repository_uri}@sha256:{'0' * 64}",
        image_repository=settings.image_repository_uri,
        image_digest=f"sha256:{'0' * 64}",
        model_uri="s3://models/models/assistant/v2/",
        stable_version="v1",
        pool=settings.pool,
        policy=settings.policy,
    )
    ledger = Ledger(boto3.client("dynamodb", region_name=REGION), TABLE)
    ledger.locks.take(plan, seen=None)  # the lock and the record, as AcquireLock takes them
    ledger.locks.finish(plan.service, execution=plan.execution, outcome="PROMOTED")
    judgement = AuditEntry(
        kind=AuditKind.JUDGEMENT, step=0, extension=0, verdict=Verdict.PASS, details={"canary": canary}
    )
    ledger.record_decision(plan, judgement)
    ledger.record_decision(plan, AuditEntry(kind=AuditKind.PROMOTE_STABLE))


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_cost_per_pool_and_per_service_from_metrics_and_past_rollouts(
    deployed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # assistant: 60,000 + 12,000 requests; healthy targets average 2 (one hour) and 3 (another): 5 pod-hours.
    _put("RequestCount", "assistant", "stable", 60_000, minutes_ago=90)
    _put("RequestCount", "assistant", "canary", 12_000, minutes_ago=30)
    for minutes_ago in (100, 80):
        _put("HealthyHostCount", "assistant", "stable", 2, minutes_ago=minutes_ago)
    _put("HealthyHostCount", "assistant", "stable", 3, minutes_ago=30)
    # A past rollout's canary on trainium: 36,000 requests by 2 pods in half an hour = 36,000 per pod-hour.
    judgement = {"requests": 36000, "target": "trainium", "cost": {"requests": 36000, "pods": 2, "hours": 0.5}}
    _record_rollout("assistant", judgement)
    code, out = _run(capsys, "cost", "--json", "--region", REGION)
    assert code == EXIT_OK
    report = json.loads(out)
    assert report["prices"]["as_of"] == "2026-07-20"
    pools = {pool["name"]: pool for pool in report["pools"]}
    # system: 2 x m7g.large $0.0816/h x 730 h = $119.136.
    assert (pools["system"]["monthly_usd_at_floor"], pools["system"]["monthly_usd_at_ceiling"]) == (119.14, 119.14)
    # general: Karpenter keeps no node; at most 6 x c7g.xlarge $0.145/h x 730 h = $635.10.
    assert (pools["general"]["monthly_usd_at_floor"], pools["general"]["monthly_usd_at_ceiling"]) == (0.0, 635.1)
    # trainium: at most 4 x trn1.2xlarge $1.34375/h x 730 h = $3,923.75.
    assert pools["trainium"]["monthly_usd_at_ceiling"] == 3923.75
    # inferentia (spot): at most 4 x inf2.8xlarge $1.96786/h x 730 h = $5,746.15, an upper bound.
    assert pools["inferentia"]["monthly_usd_at_ceiling"] == 5746.15
    assert pools["inferentia"]["spot"]
    services = {service["name"]: service for service in report["services"]}
    day = services["assistant"]["last_day"]
    # 2 of trn1.2xlarge's 2 cores: $1.34375 per pod-hour; 5 pod-hours = $6.71875 for 72,000 requests.
    assert (day["requests"], day["pod_hours"], day["pod_usd_per_hour"]) == (72_000, 5.0, 1.34375)
    assert day["cost_per_million_requests"] == pytest.approx(93.315972, rel=1e-6)
    # Every target dev's config allows the assistant, the current one first: Trainium, measured by the past
    # rollout, and its GPU pool, on which no rollout has run yet.
    trainium, gpu = services["assistant"]["targets"]
    assert (trainium["target"], trainium["pool"], gpu["target"], gpu["pool"]) == ("trainium", "trainium", "gpu", "gpu")
    # $1.34375 per pod-hour / 36,000 requests per pod-hour x 1e6 = $37.326389.
    assert trainium["requests_per_pod_hour"] == 36_000
    assert trainium["cost_per_million_requests"] == pytest.approx(37.326389, rel=1e-6)
    assert trainium["reason"] is None
    # 1 of g6.2xlarge's 1 L4 GPU: $0.9776 per pod-hour, and no throughput to divide it by.
    assert (gpu["pod_usd_per_hour"], gpu["requests_per_pod_hour"], gpu["cost_per_million_requests"]) == (
        0.9776,
        None,
        None,
    )
    assert gpu["reason"] == "not measured yet"
    # embeddings: 1 of inf2.xlarge's 2 cores = $0.3791 per pod-hour, but no traffic and no past rollout.
    embeddings = services["embeddings"]
    assert embeddings["last_day"]["cost_per_million_requests"] is None
    assert embeddings["last_day"]["reason"] == "no requests in the last 24 hours"
    assert embeddings["targets"][0]["pod_usd_per_hour"] == 0.3791
    assert embeddings["targets"][0]["reason"] == "not measured yet"
    # gateway: 500m of c7g.xlarge's 4 vCPUs: 1/8 x $0.145 = $0.018125 per pod-hour.
    assert services["gateway"]["last_day"]["pod_usd_per_hour"] == 0.018125


def test_text_output_names_the_price_date_and_the_missing_figures(
    deployed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(capsys, "--region", REGION, "cost")
    assert code == EXIT_OK
    assert "on-demand prices as of 2026-07-20" in out
    assert "system (m7g.large; 2-2 nodes): $119.14 / $119.14" in out
    assert "inferentia (inf2.xlarge, inf2.8xlarge; 0-4 nodes): $0.00 / $5,746.15 (spot: at most)" in out
    assert "assistant on trainium (pool trainium): no requests in the last 24 hours" in out
    assert "trainium (pool trainium): $1.34 per pod-hour; not measured yet" in out
    assert "gpu (pool gpu): $0.98 per pod-hour; not measured yet" in out


def test_a_region_the_environment_is_not_in_is_unreachable(deployed: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(capsys, "cost", "--json", "--region", "eu-west-1")
    assert code == EXIT_UNREACHABLE
    assert "SSM parameter /tessera/dev/rollout/services/assistant not found" in json.loads(out)["error"]


def test_pools_in_a_region_without_prices_have_no_figure_and_say_why() -> None:
    rows = pool_costs(load_config(config_path_for("dev")), price_table(), "eu-west-1")
    assert all(row["monthly_usd_at_ceiling"] is None for row in rows)
    assert rows[0]["reason"] == "no on-demand price for m7g.large in eu-west-1"


def test_without_a_region_it_stops_before_any_aws_call(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    code = main(["cost"])
    assert code == EXIT_USAGE
    assert "no region" in capsys.readouterr().err


def test_measured_throughput_pools_judgements_of_one_target_only() -> None:
    canaries = [
        {"target": "trainium", "cost": {"requests": 1000, "pods": 1, "hours": 1}},
        {"target": "trainium", "cost": {"requests": 2000, "pods": 2, "hours": 0.5}},
        {"target": "gpu", "cost": {"requests": 9000, "pods": 1, "hours": 1}},
        {"requests": 500},  # a judgement from before cost was recorded
    ]
    judgements = [
        AuditEntry(kind=AuditKind.JUDGEMENT, step=step, extension=0, details={"canary": canary})
        for step, canary in enumerate(canaries)
    ]
    # (1,000 + 2,000) requests / (1 + 1) pod-hours.
    assert measured_throughput(judgements, "trainium") == 1500
    assert measured_throughput(judgements, "inferentia") is None


def test_the_current_target_of_each_dev_service() -> None:
    config = load_config(config_path_for("dev"))
    by_name = {service.name: service for service in config.services}
    assert current_target(by_name["assistant"], config) == [
        Target("trainium", "trainium", "aws.amazon.com/neuroncore", 2.0, {"trn1.2xlarge": 2.0})
    ]
    [gateway] = current_target(by_name["gateway"], config)
    assert (gateway.resource, gateway.per_pod, gateway.units_by_type) == ("cpu", 0.5, {"c7g.xlarge": 4.0})
    assert gateway.pool == "general"  # the pool the judge records a cpu track ran on


def test_the_allowed_targets_of_a_service_come_from_its_config() -> None:
    config = load_config(config_path_for("dev"))
    assistant = next(service for service in config.services if service.name == "assistant")
    assert configured_targets(assistant, config) == [
        Target("trainium", "trainium", "aws.amazon.com/neuroncore", 2.0, {"trn1.2xlarge": 2.0}),
        Target("gpu", "gpu", "nvidia.com/gpu", 1.0, {"g6.2xlarge": 1.0}),
    ]


@pytest.mark.parametrize(
    ("instance_type", "vcpus"),
    [("c7g.large", 2), ("c7g.xlarge", 4), ("m7g.2xlarge", 8), ("m7i.48xlarge", 192), ("c7g.metal", None)],
)
def test_standard_vcpus(instance_type: str, vcpus: int | None) -> None:
    assert standard_vcpus(instance_type) == vcpus


def test_help_says_how_each_figure_is_made_without_sending_operators_to_the_source(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, shown = _run(capsys, "cost", "--help")
    assert code == 0
    for figure in ("floor =", "ceiling =", "pod-hours =", "not measured yet"):
        assert figure in shown
    assert ".py" not in shown


def test_output_tokens_per_pod_hour_come_from_the_judgements_runtime_figures() -> None:
    canaries = [
        {"target": "trainium", "cost": {"requests": 1000, "pods": 1, "hours": 1}, "runtime": {"output_tokens": 4e5}},
        {"target": "trainium", "cost": {"requests": 1000, "pods": 1, "hours": 1}},  # a service without metrics then
        {"target": "trainium", "cost": {"requests": 2000, "pods": 2, "hours": 0.5}, "runtime": {"output_tokens": 2e5}},
    ]
    judgements = [
        AuditEntry(kind=AuditKind.JUDGEMENT, step=step, extension=0, details={"canary": canary})
        for step, canary in enumerate(canaries)
    ]
    # (400,000 + 200,000) output tokens / (1 + 1) pod-hours; the judgement without them is left out.
    assert measured_throughput(judgements, "trainium", per="output_tokens") == 300_000
    assert measured_throughput(judgements, "trainium") == 4000 / 3
