"""KEDA objects (stacks/services/kubernetes_objects.py): every rendered ScaledObject and TriggerAuthentication
validates against the vendored KEDA 2.20.2 CRD schemas, and each ScaledObject scales what config says on the
metric the catalogue documents."""

from __future__ import annotations

import copy

import jsonschema
import pytest
import yaml

from stacks.config.environment import EnvironmentConfig, config_path_for, load_config, parse_config
from stacks.config.observability import RUNTIME_SIGNALS
from stacks.services.scaling_objects import CLOUDWATCH_AUTHENTICATION, scaling_objects
from tessera_shared import metrics
from tests import crd_schemas
from tests.conftest import variant_config
from tests.stacks.metrics_config import metrics_config
from tools.render_manifests import rendered_objects

SCHEMAS = {kind: crd_schemas.schema(kind) for kind in ("ScaledObject", "TriggerAuthentication")}


def test_the_vendored_version_is_the_one_served_and_stored() -> None:
    for kind in SCHEMAS:
        served = crd_schemas.served_version(kind)
        assert served["served"]
        assert served["storage"]


def _all(config: EnvironmentConfig) -> list[dict]:
    return [obj for objects in rendered_objects(config).values() for obj in objects]


def _scaled_objects(config: EnvironmentConfig) -> dict[str, dict]:
    return {obj["metadata"]["name"]: obj for obj in _all(config) if obj["kind"] == "ScaledObject"}


def _with_scaling(**scaling_by_service: dict) -> EnvironmentConfig:
    data = yaml.safe_load(config_path_for("dev").read_text())
    for service in data["services"]:
        service.pop("scaling", None)
        if service["name"] in scaling_by_service:
            service["scaling"] = scaling_by_service[service["name"]]
    return parse_config(data, source="test")


@pytest.mark.parametrize("name", ["dev", "prod", "variant", "metrics", "kv-cache"])
def test_every_keda_object_matches_the_crd(name: str) -> None:
    configs = {
        "variant": variant_config,
        # the serving runtime's queue and KV-cache through the Prometheus workspace
        "metrics": metrics_config,
        "kv-cache": lambda: metrics_config(scaling={"signal": "kv_cache_usage_percent", "target": 75}),
    }
    config = configs[name]() if name in configs else load_config(config_path_for(name))
    custom = [obj for obj in _all(config) if obj["kind"] in SCHEMAS]
    runtime_signals = any(s.scaling and s.scaling.signal in RUNTIME_SIGNALS for s in config.services)
    assert [obj["kind"] for obj in custom].count("TriggerAuthentication") == 1 + runtime_signals
    assert len([obj for obj in custom if obj["kind"] == "ScaledObject"]) == sum(1 for s in config.services if s.scaling)
    for obj in custom:
        jsonschema.validate(obj, SCHEMAS[obj["kind"]])


def test_the_schema_is_strict() -> None:
    scaled = copy.deepcopy(next(iter(_scaled_objects(load_config(config_path_for("dev"))).values())))
    scaled["spec"]["minReplicas"] = 1  # an HPA field, not a ScaledObject one
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, SCHEMAS["ScaledObject"])


def test_scaled_object_replaces_the_stable_hpa_and_adopts_it() -> None:
    config = load_config(config_path_for("dev"))
    scaled = _scaled_objects(config)
    assert sorted(scaled) == ["assistant-stable", "gateway-stable"]
    for service in config.services:
        objects = rendered_objects(config)[f"{service.name}.yaml"]
        kinds = [obj["kind"] for obj in objects]
        if service.scaling is None:
            assert "ScaledObject" not in kinds
            continue
        assert "HorizontalPodAutoscaler" not in kinds
        obj = scaled[f"{service.name}-stable"]
        spec = obj["spec"]
        # The stable Deployment only: the canary stays the rollout's to size.
        assert spec["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": f"{service.name}-stable",
        }
        # Never to zero: minReplicaCount is set (KEDA's default is 0) from replicas.min, and no idle count.
        assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (service.replicas.min, service.replicas.max)
        assert spec["minReplicaCount"] >= 1
        assert "idleReplicaCount" not in spec
        # KEDA's HPA keeps the old HPA's name, and the webhook allows the hand-over only with the annotation.
        assert spec["advanced"]["horizontalPodAutoscalerConfig"]["name"] == f"{service.name}-stable"
        assert obj["metadata"]["annotations"] == {"scaledobject.keda.sh/transfer-hpa-ownership": "true"}
        assert obj["metadata"]["namespace"] == "inference"


def test_neuroncore_trigger_reads_the_stable_service_by_published_dimensions() -> None:
    # dev's assistant may move to a GPU and so scales on requests; the Inferentia service has NeuronCores only.
    config = _with_scaling(embeddings={"signal": "neuroncore_utilization", "target": 70})
    [trigger] = _scaled_objects(config)["embeddings-stable"]["spec"]["triggers"]
    assert trigger["type"] == "aws-cloudwatch"
    assert trigger["metricType"] == "Value"  # an average already: replicas scale by value / target
    meta = trigger["metadata"]
    source = metrics.POD_NEURONCORE_UTILIZATION
    assert (meta["namespace"], meta["metricName"]) == ("ContainerInsights", "pod_neuroncore_utilization")
    assert tuple(meta["dimensionName"].split(";")) == source.dimensions == ("ClusterName", "Namespace", "Service")
    assert meta["dimensionValue"] == "tessera-dev;inference;embeddings-stable"
    assert meta["targetMetricValue"] == "70"
    assert (meta["metricStat"], meta["metricStatPeriod"], meta["metricEndTimeOffset"]) == ("Average", "60", "60")
    assert int(meta["metricCollectionTime"]) % int(meta["metricStatPeriod"]) == 0  # KEDA's own rule
    assert meta["minMetricValue"] == "0"
    assert trigger["authenticationRef"] == {"name": CLOUDWATCH_AUTHENTICATION}


def test_requests_trigger_divides_the_stable_groups_requests_by_the_pod_target() -> None:
    [trigger] = _scaled_objects(load_config(config_path_for("dev")))["gateway-stable"]["spec"]["triggers"]
    assert trigger["metricType"] == "AverageValue"
    meta = trigger["metadata"]
    assert (meta["namespace"], meta["metricName"], meta["metricStat"]) == ("AWS/ApplicationELB", "RequestCount", "Sum")
    assert meta["dimensionName"] == "TargetGroup;LoadBalancer"
    assert meta["dimensionValue"] == "<targetgroup/gateway-stable>;<app/load-balancer>"
    assert meta["targetMetricValue"] == "600"


def test_cpu_signal_uses_keda_cpu_trigger_on_the_serving_container() -> None:
    config = _with_scaling(embeddings={"signal": "cpu", "target": 60})
    [trigger] = _scaled_objects(config)["embeddings-stable"]["spec"]["triggers"]
    assert trigger == {
        "type": "cpu",
        "metricType": "Utilization",
        "metadata": {"value": "60", "containerName": "server"},
    }


def test_trigger_authentication_uses_the_operators_own_identity() -> None:
    [auth] = (obj for obj in scaling_objects() if obj["kind"] == "TriggerAuthentication")
    assert auth["metadata"] == {
        "name": CLOUDWATCH_AUTHENTICATION,
        "namespace": "inference",
        "labels": {"app.kubernetes.io/part-of": "tessera"},
    }
    assert auth["spec"] == {"podIdentity": {"provider": "aws", "identityOwner": "keda"}}
