"""What a service with `metrics` changes outside the Cluster stack's workspace: KEDA scales it on the runtime's
queue through the workspace (SigV4 with the operator's own Pod Identity role), its NetworkPolicy admits the
collector on the metrics port, and the rollout judge may query the workspace and publish its figures."""

from __future__ import annotations

import pytest

from stacks.services.render_inputs import PROMETHEUS_PLACEHOLDER
from stacks.services.scaling_objects import PROMETHEUS_AUTHENTICATION
from tessera_shared.metrics import JUDGED
from tests.kubernetes_objects import json_property, manifest_objects, track_objects
from tests.stacks.metrics_config import metrics_config
from tests.stacks.test_observability import _dashboards, _plain_metrics
from tests.synth import SynthesizedEnvironment, synthesize
from tools.render_manifests import rendered_objects

WORKSPACE = "AWS::APS::Workspace"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedEnvironment:
    return synthesize(metrics_config(), tmp_path_factory.mktemp("cdk.out.metrics-access"))


def _import_of(env: SynthesizedEnvironment, attribute: str) -> dict:
    """How a later stack refers to the Cluster stack's workspace attribute (CDK's cross-stack output)."""
    [(workspace_id, _)] = env.resources("Cluster", WORKSPACE).items()
    outputs = env.template_json("Cluster")["Outputs"]
    [name] = [
        k
        for k, o in outputs.items()
        if k.startswith("PublishOutput") and o["Value"] == {"Fn::GetAtt": [workspace_id, attribute]}
    ]
    return {
        "Fn::GetStackOutput": {"StackName": "Tessera-dev-Cluster", "Region": {"Ref": "AWS::Region"}, "OutputName": name}
    }


def _scaled_object(objects: list[dict], name: str) -> dict:
    [scaled] = [obj for obj in objects if obj["kind"] == "ScaledObject" and obj["metadata"]["name"] == name]
    return scaled


# -- KEDA ----------------------------------------------------------------------------------------------------------


def test_queue_trigger_queries_the_stable_pods_waiting_requests_per_pod() -> None:
    [trigger] = _scaled_object(rendered_objects(metrics_config())["assistant.yaml"], "assistant-stable")["spec"][
        "triggers"
    ]
    assert trigger == {
        "type": "prometheus",
        "metricType": "AverageValue",  # the sum over stable's pods, divided by the pod count by the HPA
        "metadata": {
            "serverAddress": PROMETHEUS_PLACEHOLDER,
            "query": 'sum(vllm:num_requests_waiting{namespace="inference",service="assistant",track="stable"})',
            "threshold": "8",
            "awsRegion": "<region>",
        },
        "authenticationRef": {"name": PROMETHEUS_AUTHENTICATION},
    }


def test_kv_cache_trigger_is_already_an_average_percentage() -> None:
    config = metrics_config(scaling={"signal": "kv_cache_usage_percent", "target": 75})
    [trigger] = _scaled_object(rendered_objects(config)["assistant.yaml"], "assistant-stable")["spec"]["triggers"]
    assert trigger["metricType"] == "Value"
    assert trigger["metadata"]["query"] == (
        'avg(vllm:kv_cache_usage_perc{namespace="inference",service="assistant",track="stable"}) * 100'
    )
    assert trigger["metadata"]["threshold"] == "75"


def test_the_prometheus_authentication_is_the_operators_own_identity_only_where_needed() -> None:
    def authentications(objects: list[dict]) -> dict[str, dict]:
        return {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "TriggerAuthentication"}

    with_queue = authentications(rendered_objects(metrics_config())["namespace.yaml"])
    # No authModes beside pod identity: KEDA 2.20.2's prometheus scaler refuses the two together.
    assert with_queue[PROMETHEUS_AUTHENTICATION] == {"podIdentity": {"provider": "aws", "identityOwner": "keda"}}
    cpu_only = metrics_config(scaling={"signal": "cpu", "target": 60})
    assert PROMETHEUS_AUTHENTICATION not in authentications(rendered_objects(cpu_only)["namespace.yaml"])


def test_the_deployed_trigger_points_at_the_workspace_without_a_trailing_slash(env: SynthesizedEnvironment) -> None:
    tracks = env.resources("Services", "Custom::TesseraServiceTracks")
    owned = [obj for resource in tracks.values() for obj in track_objects(resource)]
    [trigger] = _scaled_object(owned, "assistant-stable")["spec"]["triggers"]
    address = trigger["metadata"]["serverAddress"]
    # https://aps-workspaces.<region>.<suffix>/workspaces/<id>: KEDA appends /api/v1/query itself.
    parts = address["Fn::Join"][1]
    assert parts[0] == "https://aps-workspaces."
    assert parts[-2:] == ["/workspaces/", _import_of(env, "WorkspaceId")]
    assert trigger["metadata"]["awsRegion"] == {"Ref": "AWS::Region"}
    names = {o["metadata"]["name"] for o in manifest_objects(env, "Services") if o["kind"] == "TriggerAuthentication"}
    assert names == {"tessera-cloudwatch", PROMETHEUS_AUTHENTICATION}


def test_keda_operator_may_query_only_the_workspace(env: SynthesizedEnvironment) -> None:
    resources = env.template_json("Cluster")["Resources"]
    [(workspace_id, _)] = env.resources("Cluster", WORKSPACE).items()
    [association] = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::EKS::PodIdentityAssociation" and r["Properties"]["ServiceAccount"] == "keda-operator"
    ]
    role_id = association["RoleArn"]["Fn::GetAtt"][0]
    [policy] = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in r["Properties"]["Roles"]
    ]
    assert policy["PolicyDocument"]["Statement"] == [
        {"Action": "cloudwatch:GetMetricData", "Effect": "Allow", "Resource": "*"},
        {"Action": "aps:QueryMetrics", "Effect": "Allow", "Resource": {"Fn::GetAtt": [workspace_id, "Arn"]}},
    ]


# -- the collector through the NetworkPolicy ----------------------------------------------------------------------


def test_network_policy_admits_the_collector_on_the_metrics_port_only(env: SynthesizedEnvironment) -> None:
    policies = {
        o["metadata"]["name"]: o["spec"]
        for o in manifest_objects(env, "Services")
        if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] != "default-deny"
    }
    private = [subnet.ipv4_cidr_block for subnet in env.stacks.network.vpc.private_subnets]
    assert len(private) >= 2
    collector = [{"ipBlock": {"cidr": cidr}} for cidr in private]
    assistant = policies["assistant"]["ingress"]
    assert [rule for rule in assistant if rule["from"] == collector] == [
        {"from": collector, "ports": [{"protocol": "TCP", "port": 8000}]}
    ]
    # Services without metrics keep the load balancer as their only caller.
    for name in ("embeddings", "gateway"):
        assert len(policies[name]["ingress"]) == 1
        [rule] = policies[name]["ingress"]
        assert not {peer["ipBlock"]["cidr"] for peer in rule["from"]} & set(private)


# -- the rollout judge ------------------------------------------------------------------------------------------


def _rollout_statements(env: SynthesizedEnvironment) -> dict[str, dict]:
    policies = env.resources("Rollout", "AWS::IAM::Policy")
    return {
        statement["Sid"]: statement
        for policy in policies.values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "Sid" in statement
    }


def test_rollout_function_queries_the_workspace_and_publishes_to_its_namespace_only(
    env: SynthesizedEnvironment,
) -> None:
    statements = _rollout_statements(env)
    assert statements["QueryRuntimeMetrics"] == {
        "Sid": "QueryRuntimeMetrics",
        "Action": "aps:QueryMetrics",
        "Effect": "Allow",
        "Resource": _import_of(env, "Arn"),
    }
    assert statements["PublishJudgedFigures"] == {
        "Sid": "PublishJudgedFigures",
        "Action": "cloudwatch:PutMetricData",
        "Condition": {"StringEquals": {"cloudwatch:namespace": "Tessera/Rollouts"}},
        "Effect": "Allow",
        "Resource": "*",
    }


def test_rollout_settings_name_the_workspace_for_services_with_metrics(env: SynthesizedEnvironment) -> None:
    parameters = {
        p["Properties"]["Name"]: p["Properties"]["Value"]
        for p in env.resources("Rollout", "AWS::SSM::Parameter").values()
        if "Name" in p["Properties"]
    }
    assistant = json_property(parameters["/tessera/dev/rollout/services/assistant"])
    assert assistant["runtime_metrics"]["query_url"] == {
        "Fn::Join": ["", [_import_of(env, "PrometheusEndpoint"), "api/v1/query"]]
    }
    assert assistant["runtime_metrics"]["region"] == {"Ref": "AWS::Region"}
    embeddings = json_property(parameters["/tessera/dev/rollout/services/embeddings"])
    assert embeddings.get("runtime_metrics") is None


# -- the dashboards --------------------------------------------------------------------------------------------


def test_service_dashboard_graphs_the_judged_figures_per_track_beside_todays(env: SynthesizedEnvironment) -> None:
    dashboards = _dashboards(env)
    assistant = dashboards["tessera-dev-assistant"]
    judged = [(name, dims) for namespace, name, dims in _plain_metrics(assistant) if namespace == "Tessera/Rollouts"]
    expected = [
        *((m.name, {"Service": "assistant", "Track": t}) for t in ("stable", "canary") for m in (JUDGED[0], JUDGED[1])),
        *((m.name, {"Service": "assistant", "Track": t}) for m in JUDGED[2:] for t in ("stable", "canary")),
    ]
    assert sorted(judged, key=str) == sorted(expected, key=str)  # every judged figure, both tracks, once each
    titles = [w["properties"].get("title") for w in assistant["widgets"]]
    assert {"p99 response time", "Time to first token (p50, p99)", "Time per output token (p99)"} <= set(titles)
    assert titles.index("p99 response time") < titles.index("Time to first token (p50, p99)")  # beside today's
    texts = [w["properties"]["markdown"] for w in assistant["widgets"] if w["type"] == "text"]
    assert any("Published by the rollout judge" in text and "between rollouts" in text for text in texts)
    # Services without metrics keep today's dashboard.
    for name in ("embeddings", "gateway"):
        assert all(ns != "Tessera/Rollouts" for ns, _, _ in _plain_metrics(dashboards[f"tessera-dev-{name}"]))
