"""The managed Prometheus workspace and collector (stacks/cluster/managed_prometheus.py, scrape_config.py): the scrape
configuration built from config, the workspace and scraper in the Cluster stack, how the collector reaches the pods,
and who may query the workspace. An environment with no service that has `metrics` has none of it."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

from stacks.cluster.scrape_config import scrape_configuration, scrape_configuration_yaml
from stacks.config.environment import EnvironmentConfig, config_path_for, parse_config
from stacks.config.errors import ConfigError
from tessera_shared.runtime_metrics import SERIES_LABELS
from tests.kubernetes_objects import manifest_objects
from tests.stacks.metrics_config import metrics_config, no_metrics_config
from tests.synth import SynthesizedEnvironment, synthesize
from tests.test_cloudformation_checks import cfn_lint

SCRAPER = "AWS::APS::Scraper"
WORKSPACE = "AWS::APS::Workspace"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedEnvironment:
    return synthesize(metrics_config(), tmp_path_factory.mktemp("cdk.out.metrics"))


def _job(config: EnvironmentConfig, interval: int = 30) -> dict:
    [job] = scrape_configuration(config.services, interval_seconds=interval)["scrape_configs"]
    return job


# -- the scrape configuration (pure) ------------------------------------------------------------------------------


def test_one_job_per_service_with_metrics_scraping_its_pods_in_the_inference_namespace() -> None:
    config = metrics_config()
    parsed = yaml.safe_load(scrape_configuration_yaml(config.services, interval_seconds=45))
    assert parsed["global"] == {"scrape_interval": "45s"}
    [job] = parsed["scrape_configs"]  # embeddings and gateway declare no metrics
    assert job["job_name"] == "tessera-assistant"
    assert (job["scrape_interval"], job["metrics_path"], job["scheme"]) == ("45s", "/metrics", "http")
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["inference"]}}]
    keeps = [(r["source_labels"], r["regex"]) for r in job["relabel_configs"] if r["action"] == "keep"]
    assert keeps == [
        (["__meta_kubernetes_pod_label_tessera_dev_service"], "assistant"),
        (["__meta_kubernetes_pod_container_name"], "server"),  # not the model-loader init container
        (["__meta_kubernetes_pod_phase"], "Running"),
    ]


def test_the_address_is_the_pod_ip_and_the_metrics_port() -> None:
    [address] = [r for r in _job(metrics_config())["relabel_configs"] if r.get("target_label") == "__address__"]
    assert address == {
        "source_labels": ["__meta_kubernetes_pod_ip"],
        "regex": "(.+)",
        "target_label": "__address__",
        "replacement": "$1:8000",  # the service's port: vLLM serves its metrics there
        "action": "replace",
    }
    own_port = _job(metrics_config(metrics={"port": 9100, "path": "/stats"}))
    assert [r["replacement"] for r in own_port["relabel_configs"] if r.get("target_label") == "__address__"] == [
        "$1:9100"
    ]
    assert own_port["metrics_path"] == "/stats"


def test_series_get_the_labels_the_judge_and_keda_select_tracks_by() -> None:
    copied = {
        r["target_label"]: r["source_labels"]
        for r in _job(metrics_config())["relabel_configs"]
        if r["action"] == "replace" and r["target_label"] != "__address__"
    }
    assert copied == {label: [meta] for label, meta in SERIES_LABELS.items()}
    assert set(copied) == {"namespace", "pod", "service", "track"}


def test_only_the_runtimes_series_are_kept() -> None:
    assert _job(metrics_config())["metric_relabel_configs"] == [
        {"source_labels": ["__name__"], "regex": "vllm:.*", "action": "keep"}
    ]


def test_no_service_with_metrics_is_refused() -> None:
    with pytest.raises(ValueError, match="nothing to scrape"):
        scrape_configuration(no_metrics_config().services, interval_seconds=30)


def test_an_interval_under_the_managed_collectors_minimum_is_refused_by_config() -> None:
    data = yaml.safe_load(config_path_for("dev").read_text())
    data.setdefault("observability", {})["scrape_interval_seconds"] = 15
    with pytest.raises(ConfigError, match="scrape_interval_seconds: 15 must be >= 30"):
        parse_config(data, source="test")


# -- the Cluster stack ---------------------------------------------------------------------------------------------


def test_workspace_per_environment_with_aws_owned_encryption(env: SynthesizedEnvironment) -> None:
    [workspace] = env.resources("Cluster", WORKSPACE).values()
    assert workspace["Properties"]["Alias"] == "tessera-dev"
    # A managed collector writes to a customer-managed-key workspace only through a RoleConfiguration of our own
    # (stacks/cluster/managed_prometheus.py): the workspace keeps the service's encryption.
    assert "KmsKeyArn" not in workspace["Properties"]


def test_scraper_reads_the_cluster_from_its_private_subnets_into_the_workspace(env: SynthesizedEnvironment) -> None:
    resources = env.template_json("Cluster")["Resources"]
    [(workspace_id, _)] = env.resources("Cluster", WORKSPACE).items()
    [scraper] = env.resources("Cluster", SCRAPER).values()
    props = scraper["Properties"]
    assert props["Alias"] == "tessera-dev"
    assert props["Destination"] == {"AmpConfiguration": {"WorkspaceArn": {"Fn::GetAtt": [workspace_id, "Arn"]}}}
    source = props["Source"]["EksConfiguration"]
    [cluster_id] = env.resources("Cluster", "AWS::EKS::Cluster")
    assert source["ClusterArn"] == {"Fn::GetAtt": [cluster_id, "Arn"]}
    # The cluster's own subnets (the user guide asks for them): every private subnet, at least two AZs.
    cluster_subnets = resources[cluster_id]["Properties"]["ResourcesVpcConfig"]["SubnetIds"]
    assert source["SubnetIds"] == cluster_subnets
    assert len(source["SubnetIds"]) >= 2
    [group] = source["SecurityGroupIds"]
    assert resources[group["Fn::GetAtt"][0]]["Type"] == "AWS::EC2::SecurityGroup"
    assert "RoleConfiguration" not in props  # the service-linked role writes to the workspace
    assert cluster_id in scraper["DependsOn"]


def test_the_template_carries_the_scrape_configuration_base64_encoded(env: SynthesizedEnvironment) -> None:
    [scraper] = env.resources("Cluster", SCRAPER).values()
    blob = scraper["Properties"]["ScrapeConfiguration"]["ConfigurationBlob"]
    assert isinstance(blob, str)  # no CloudFormation reference inside: encoded at synth
    assert yaml.safe_load(base64.b64decode(blob)) == scrape_configuration(env.config.services, interval_seconds=30)


def test_collector_reaches_only_the_api_and_the_metrics_ports(env: SynthesizedEnvironment) -> None:
    [scraper] = env.resources("Cluster", SCRAPER).values()
    [group] = scraper["Properties"]["Source"]["EksConfiguration"]["SecurityGroupIds"]
    [cluster_id] = env.resources("Cluster", "AWS::EKS::Cluster")
    cluster_group = {"Fn::GetAtt": [cluster_id, "ClusterSecurityGroupId"]}
    inline = env.resources("Cluster", "AWS::EC2::SecurityGroup")[group["Fn::GetAtt"][0]]["Properties"]
    assert "SecurityGroupEgress" not in inline  # no allow-all outbound rule: only the two rules below
    egress = [
        (p["DestinationSecurityGroupId"], p["FromPort"], p["ToPort"])
        for p in (r["Properties"] for r in env.resources("Cluster", "AWS::EC2::SecurityGroupEgress").values())
        if p["GroupId"] == group
    ]
    assert sorted(egress, key=lambda rule: rule[1]) == [(cluster_group, 443, 443), (cluster_group, 8000, 8000)]
    ingress = [
        (p["FromPort"], p["ToPort"])
        for p in (r["Properties"] for r in env.resources("Cluster", "AWS::EC2::SecurityGroupIngress").values())
        if p.get("SourceSecurityGroupId") == group
    ]
    assert sorted(ingress) == [(443, 443), (8000, 8000)]


def test_no_access_entry_or_rbac_of_our_own_for_the_collector(env: SynthesizedEnvironment) -> None:
    """On a cluster with authentication mode API, creating the scraper creates its access entry and access policy
    (AMP user guide, "Configure Amazon EKS for scraper access with access entries"): one of ours for the same role
    would collide, and the aps-collector ClusterRole is the aws-auth ConfigMap clusters' way."""
    resources = env.template_json("Cluster")["Resources"]
    [cluster_id] = env.resources("Cluster", "AWS::EKS::Cluster")
    assert resources[cluster_id]["Properties"]["AccessConfig"]["AuthenticationMode"] == "API"
    [scraper_id] = env.resources("Cluster", SCRAPER)
    for entry in env.resources("Cluster", "AWS::EKS::AccessEntry").values():
        assert scraper_id not in json.dumps(entry["Properties"]["PrincipalArn"])
    names = {obj["metadata"]["name"] for obj in manifest_objects(env, "Cluster") if "metadata" in obj}
    assert not {name for name in names if name.startswith("aps-collector")}


def test_workspace_values_are_published_for_later_stacks_and_operators(env: SynthesizedEnvironment) -> None:
    [(workspace_id, _)] = env.resources("Cluster", WORKSPACE).items()
    parameters = {
        p["Properties"].get("Name"): p["Properties"]["Value"]
        for p in env.resources("Cluster", "AWS::SSM::Parameter").values()
    }
    assert parameters["/tessera/dev/prometheus/workspace-arn"] == {"Fn::GetAtt": [workspace_id, "Arn"]}
    assert parameters["/tessera/dev/prometheus/endpoint"] == {"Fn::GetAtt": [workspace_id, "PrometheusEndpoint"]}


def test_an_environment_without_metrics_has_no_workspace_nor_collector(tmp_path: Path) -> None:
    """Nor query or publish permissions, nor the Prometheus TriggerAuthentication."""
    without = synthesize(no_metrics_config(), tmp_path)
    for path in without.template_paths:
        text = Path(path).read_text()
        for absent in ("AWS::APS::", "aps:QueryMetrics", "cloudwatch:PutMetricData", "tessera-prometheus"):
            assert absent not in text, (path.name, absent)


@pytest.mark.long_scenario  # prod (metrics on) gets both in make test; this 7 s synth in `make faults`
def test_the_environment_with_metrics_passes_cfn_lint_and_cdk_nag(env: SynthesizedEnvironment) -> None:
    """dev, prod and variant declare no metrics: tests/test_cloudformation_checks.py and test_nag.py never see
    these resources."""
    linted = cfn_lint(env.template_paths)
    assert linted.returncode == 0, linted.stdout
    report = env.outdir / "validation-report.json"
    reports = json.loads(report.read_text())["pluginReports"] if report.exists() else []
    assert [r for r in reports if r["conclusion"] != "success"] == []
