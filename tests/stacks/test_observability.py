"""Observability stack: dashboards per environment and per service that read the services' real target groups
and the Container Insights dimension sets of the metric catalogue, alarms per service with their thresholds
from config, the environment's alarms, and the alerts topic CloudWatch can publish to."""

from __future__ import annotations

import json
import re

import pytest

from stacks.config.environment import EnvironmentConfig
from stacks.observability.names import service_alarm_names
from tessera_shared import metrics
from tests.synth import SynthesizedEnvironment

CATALOGUE = {(m.namespace, m.name, frozenset(m.dimensions)) for m in metrics.ALL}


def _text(value: object) -> str:
    """A template string with each CloudFormation reference shown as <what it refers to>."""
    if isinstance(value, str):
        return value
    parts = []
    for part in value["Fn::Join"][1]:
        if isinstance(part, str):
            parts.append(part)
        elif "Fn::GetStackOutput" in part:
            parts.append(f"<{part['Fn::GetStackOutput']['StackName']}:{part['Fn::GetStackOutput']['OutputName']}>")
        elif "Fn::GetAtt" in part:
            parts.append(f"<{part['Fn::GetAtt'][0]}>")
        else:
            parts.append(f"<{part['Ref']}>")
    return "".join(parts)


def _dashboards(env: SynthesizedEnvironment) -> dict[str, dict]:
    return {
        res["Properties"]["DashboardName"]: json.loads(_text(res["Properties"]["DashboardBody"]))
        for res in env.resources("Observability", "AWS::CloudWatch::Dashboard").values()
    }


def _alarms(env: SynthesizedEnvironment) -> dict[str, dict]:
    return {
        res["Properties"]["AlarmName"]: res["Properties"]
        for res in env.resources("Observability", "AWS::CloudWatch::Alarm").values()
    }


def _read(alarm: dict) -> list[dict]:
    """The metrics an alarm reads: {namespace, name, dimensions, stat, period}, whichever form CDK chose."""
    if "MetricName" in alarm:
        found = [(alarm, alarm["Statistic"], alarm["Period"])]
    else:
        found = [
            (m["MetricStat"]["Metric"], m["MetricStat"]["Stat"], m["MetricStat"]["Period"])
            for m in alarm["Metrics"]
            if "MetricStat" in m
        ]
    return [
        {
            "namespace": metric["Namespace"],
            "name": metric["MetricName"],
            "dimensions": {d["Name"]: d["Value"] for d in metric["Dimensions"]},
            "stat": stat,
            "period": period,
        }
        for metric, stat, period in found
    ]


def _metric_lines(dashboard: dict) -> list[list]:
    return [line for widget in dashboard["widgets"] for line in widget["properties"].get("metrics", [])]


def _plain_metrics(dashboard: dict, *, shown_only: bool = False) -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, name, dimensions) of every metric line, or only of those drawn (not an expression's inputs);
    a "." field repeats the line before."""
    found, previous = [], []
    for line in _metric_lines(dashboard):
        fields = [field for field in line if not isinstance(field, dict)]
        options = line[-1] if isinstance(line[-1], dict) else {}
        if not fields or (shown_only and options.get("visible") is False):
            continue  # a math expression, a Metrics Insights query or a hidden input
        fields = [
            prev if field == "." else field
            for field, prev in zip(fields, previous + [None] * len(fields), strict=False)
        ]
        previous = fields
        namespace, name, *pairs = fields
        found.append((namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True))))
    return found


def _target_group_output(service: str, track: str) -> re.Pattern:
    return re.compile(rf"^<Tessera-dev-Services:.*{service.capitalize()}{track.capitalize()}TargetGroup.*FullName")


def test_one_dashboard_per_environment_and_per_service(dev: SynthesizedEnvironment) -> None:
    assert sorted(_dashboards(dev)) == [
        "tessera-dev",
        "tessera-dev-assistant",
        "tessera-dev-embeddings",
        "tessera-dev-gateway",
    ]


def test_every_dashboard_metric_is_in_the_catalogue_with_its_published_dimensions(dev: SynthesizedEnvironment) -> None:
    for name, dashboard in _dashboards(dev).items():
        used = _plain_metrics(dashboard)
        assert used, name
        for namespace, metric, dimensions in used:
            assert (namespace, metric, frozenset(dimensions)) in CATALOGUE, (name, metric, dimensions)


def test_service_dashboard_puts_both_real_target_groups_side_by_side(dev: SynthesizedEnvironment) -> None:
    for service in ("assistant", "embeddings", "gateway"):
        dashboard = _dashboards(dev)[f"tessera-dev-{service}"]
        titles = {widget["properties"].get("title") for widget in dashboard["widgets"]}
        assert {
            "Requests per minute",
            "Target 5xx per minute",
            "Connection errors per minute (resets, timeouts)",
            "p50 response time",
            "p90 response time",
            "p99 response time",
            "Pod restarts",
        } <= titles
        groups = [
            dims["TargetGroup"]
            for namespace, name, dims in _plain_metrics(dashboard, shown_only=True)
            if (namespace, name) == ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count")
        ]
        assert len(groups) == 2
        stable, canary = groups
        assert _target_group_output(service, "stable").match(stable)
        assert _target_group_output(service, "canary").match(canary)


def test_neuron_utilization_is_read_per_track_by_service_dimension(dev: SynthesizedEnvironment) -> None:
    dashboards = _dashboards(dev)
    neuron = [
        dims
        for namespace, name, dims in _plain_metrics(dashboards["tessera-dev-assistant"])
        if name == "pod_neuroncore_utilization"
    ]
    assert neuron == [
        {"ClusterName": "tessera-dev", "Namespace": "inference", "Service": "assistant-stable"},
        {"ClusterName": "tessera-dev", "Namespace": "inference", "Service": "assistant-canary"},
    ]
    # The cpu service has no NeuronCores to show.
    assert all(name != "pod_neuroncore_utilization" for _, name, _ in _plain_metrics(dashboards["tessera-dev-gateway"]))


def test_environment_dashboard_breaks_neuron_nodes_down_with_metrics_insights(dev: SynthesizedEnvironment) -> None:
    queries = [
        line[0]["expression"]
        for line in _metric_lines(_dashboards(dev)["tessera-dev"])
        if isinstance(line[0], dict) and line[0].get("expression", "").startswith("SELECT")
    ]
    assert queries == [
        'SELECT AVG(node_neuroncore_utilization) FROM SCHEMA("ContainerInsights", ClusterName, InstanceId, NodeName) '
        "WHERE ClusterName = 'tessera-dev' GROUP BY NodeName",
        'SELECT SUM(node_neuron_execution_errors_total) FROM SCHEMA("ContainerInsights", ClusterName, InstanceId, '
        "NodeName) WHERE ClusterName = 'tessera-dev' GROUP BY NodeName",
    ]


def test_environment_dashboard_shows_rollout_executions_of_the_state_machine(dev: SynthesizedEnvironment) -> None:
    states = [m for m in _plain_metrics(_dashboards(dev)["tessera-dev"]) if m[0] == "AWS/States"]
    assert [name for _, name, _ in states] == [
        "ExecutionsStarted",
        "ExecutionsSucceeded",
        "ExecutionsFailed",
        "ExecutionsAborted",
        "ExecutionsTimedOut",
    ]
    assert all(dims["StateMachineArn"].endswith(":stateMachine:tessera-dev-rollout") for _, _, dims in states)


@pytest.mark.parametrize("service", ["assistant", "embeddings", "gateway"])
def test_service_alarms_take_their_thresholds_from_config(dev: SynthesizedEnvironment, service: str) -> None:
    spec = next(s for s in dev.config.services if s.name == service)
    names = service_alarm_names("dev", service)
    alarms = _alarms(dev)
    five_xx = alarms[names.five_xx_rate]
    assert five_xx["Threshold"] == spec.alarms.five_xx_rate_percent
    assert (five_xx["EvaluationPeriods"], five_xx["DatapointsToAlarm"]) == (5, 3)
    [expression] = [m["Expression"] for m in five_xx["Metrics"] if "Expression" in m]
    assert f">= {spec.alarms.min_requests_per_minute}," in expression
    read = {m["MetricStat"]["Metric"]["MetricName"] for m in five_xx["Metrics"] if "MetricStat" in m}
    assert read == {"HTTPCode_Target_5XX_Count", "TargetConnectionErrorCount", "RequestCount"}

    p99 = alarms[names.p99_latency]
    assert p99["Threshold"] == spec.alarms.p99_latency_seconds
    stats = {m["MetricStat"]["Stat"] for m in p99["Metrics"] if "MetricStat" in m}
    assert stats == {"p99"}

    healthy = alarms[names.no_healthy_targets]
    [metric] = _read(healthy)
    assert (metric["name"], metric["stat"], healthy["Threshold"]) == ("HealthyHostCount", "Minimum", 1)
    assert healthy["ComparisonOperator"] == "LessThanThreshold"
    assert healthy["TreatMissingData"] == "breaching"
    assert _target_group_output(service, "stable").match(
        _text({"Fn::Join": ["", [metric["dimensions"]["TargetGroup"]]]})
    )

    pending = alarms[names.pods_pending]
    assert pending["EvaluationPeriods"] == pending["DatapointsToAlarm"] == spec.startup_allowance_minutes
    assert [metric["dimensions"] for metric in _read(pending)] == [
        {"ClusterName": "tessera-dev", "Namespace": "inference", "PodName": f"{service}-{track}"}
        for track in ("stable", "canary")
    ]
    for name in names.metric_alarms:
        assert "AlarmActions" not in alarms[name]  # the composite pages, once


def test_gateway_overrides_its_p99_threshold(dev: SynthesizedEnvironment) -> None:
    alarms = _alarms(dev)
    assert alarms["tessera-dev-gateway-p99-latency"]["Threshold"] == 2
    assert alarms["tessera-dev-assistant-p99-latency"]["Threshold"] == 10


def test_composite_alarm_per_service_notifies_the_alerts_topic(dev: SynthesizedEnvironment) -> None:
    resources = dev.template_json("Observability")["Resources"]
    [topic_id] = dev.resources("Observability", "AWS::SNS::Topic")
    composites = {
        res["Properties"]["AlarmName"]: res["Properties"]
        for res in dev.resources("Observability", "AWS::CloudWatch::CompositeAlarm").values()
    }
    assert sorted(composites) == ["tessera-dev-assistant", "tessera-dev-embeddings", "tessera-dev-gateway"]
    alarm_ids = {
        res["Properties"]["AlarmName"]: lid for lid, res in resources.items() if res["Type"] == "AWS::CloudWatch::Alarm"
    }
    for service, composite in composites.items():
        assert composite["AlarmActions"] == composite["OKActions"] == [{"Ref": topic_id}]
        rule = _text(composite["AlarmRule"])
        children = service_alarm_names("dev", service.removeprefix("tessera-dev-")).metric_alarms
        assert rule == "(" + " OR ".join(f'ALARM("<{alarm_ids[name]}>")' for name in children) + ")"


def test_environment_alarms(dev: SynthesizedEnvironment) -> None:
    alarms = _alarms(dev)
    neuron = alarms["tessera-dev-neuron-execution-errors"]
    assert _read(neuron) == [
        {
            "namespace": "ContainerInsights",
            "name": "node_neuron_execution_errors_total",
            "dimensions": {"ClusterName": "tessera-dev"},
            "stat": "Sum",
            "period": 300,
        }
    ]
    assert neuron["Threshold"] == 10
    load_balancer = alarms["tessera-dev-load-balancer-5xx-rate"]
    assert {metric["name"] for metric in _read(load_balancer)} == {"HTTPCode_ELB_5XX_Count", "RequestCount"}
    assert all(set(metric["dimensions"]) == {"LoadBalancer"} for metric in _read(load_balancer))
    assert load_balancer["Threshold"] == 5
    for alarm in (neuron, load_balancer):
        assert len(alarm["AlarmActions"]) == 1


def test_alerts_topic_is_encrypted_with_a_key_cloudwatch_may_use(dev: SynthesizedEnvironment) -> None:
    resources = dev.template_json("Observability")["Resources"]
    [topic] = dev.resources("Observability", "AWS::SNS::Topic").values()
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = resources[key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    cloudwatch = [s for s in key["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert [sorted(s["Action"]) for s in cloudwatch] == [["kms:Decrypt", "kms:GenerateDataKey*"]]
    [policy] = dev.resources("Observability", "AWS::SNS::TopicPolicy").values()
    statements = {s.get("Sid"): s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert statements["CloudWatchAlarms"]["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert statements["CloudWatchAlarms"]["Condition"] == {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    }


def test_alarm_names_are_published_for_the_rollout(dev: SynthesizedEnvironment) -> None:
    parameters = {
        res["Properties"]["Name"]: res["Properties"]["Value"]
        for res in dev.resources("Observability", "AWS::SSM::Parameter").values()
    }
    for service in ("assistant", "embeddings", "gateway"):
        assert parameters[f"/tessera/dev/observability/services/{service}/alarm"] == f"tessera-dev-{service}"


def test_prod_alarms_follow_prod_config(prod: SynthesizedEnvironment) -> None:
    config: EnvironmentConfig = prod.config
    alarms = _alarms(prod)
    for service in config.services:
        names = service_alarm_names("prod", service.name)
        assert alarms[names.pods_pending]["EvaluationPeriods"] == service.startup_allowance_minutes
        assert alarms[names.five_xx_rate]["Threshold"] == service.alarms.five_xx_rate_percent
