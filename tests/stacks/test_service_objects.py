"""Policy tests over every workload Tessera renders, for every shipped environment.

The objects come from the same pure functions the Services stack applies (stacks/services/kubernetes_objects.py),
rendered with review placeholders by tools/render_manifests.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from stacks.config.environment import EnvironmentConfig, config_path_for, load_config
from stacks.config.instance_types import NEURON_INSTANCE_TYPES
from tessera_shared.constants import NEURON_SCHEDULER_NAME
from tools.render_manifests import main as render_main
from tools.render_manifests import rendered_objects

ENVIRONMENTS = ["dev", "prod"]
TGB_SCHEMA = json.loads((Path(__file__).parent / "data" / "targetgroupbinding-v1beta1.schema.json").read_text())


@pytest.fixture(scope="module", params=ENVIRONMENTS)
def config(request: pytest.FixtureRequest) -> EnvironmentConfig:
    return load_config(config_path_for(request.param))


def _objects(config: EnvironmentConfig, service: str | None = None) -> list[dict]:
    files = rendered_objects(config)
    if service is not None:
        return files[f"{service}.yaml"]
    return [obj for objects in files.values() for obj in objects]


def _of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [obj for obj in objects if obj["kind"] == kind]


def _deployments(config: EnvironmentConfig) -> list[dict]:
    return _of_kind(_objects(config), "Deployment")


def test_every_core_object_passes_strict_validation(config: EnvironmentConfig) -> None:
    version = config.cluster.kubernetes_version
    core = [obj for obj in _objects(config) if obj["kind"] != "TargetGroupBinding"]
    assert len(core) > 20
    for obj in core:
        kubernetes_validate.validate(obj, version, strict=True)


def test_target_group_bindings_match_the_controller_crd(config: EnvironmentConfig) -> None:
    bindings = _of_kind(_objects(config), "TargetGroupBinding")
    assert len(bindings) == 2 * len(config.services)
    for binding in bindings:
        jsonschema.validate(binding, TGB_SCHEMA)
        assert binding["spec"]["targetType"] == "ip"


def test_crd_schema_is_strict() -> None:
    binding = _of_kind(_objects(load_config(config_path_for("dev"))), "TargetGroupBinding")[0]
    binding["spec"]["networking"] = {"ingress": []}
    jsonschema.validate(binding, TGB_SCHEMA)
    binding["spec"]["targetGroupArn"] = "typo"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(binding, TGB_SCHEMA)


def test_each_service_has_its_full_set_of_objects(config: EnvironmentConfig) -> None:
    for service in config.services:
        kinds = sorted(obj["kind"] for obj in _objects(config, service.name))
        assert kinds == sorted(
            ["ServiceAccount", "NetworkPolicy", "HorizontalPodAutoscaler"]
            + ["Deployment", "Service", "TargetGroupBinding", "PodDisruptionBudget"] * 2
        )
        names = {obj["metadata"]["name"] for obj in _of_kind(_objects(config, service.name), "Deployment")}
        assert names == {f"{service.name}-stable", f"{service.name}-canary"}


def test_namespace_enforces_restricted_pod_security(config: EnvironmentConfig) -> None:
    [namespace] = rendered_objects(config)["namespace.yaml"]
    assert namespace["metadata"]["name"] == "inference"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespace["metadata"]["labels"]["elbv2.k8s.aws/pod-readiness-gate-inject"] == "enabled"


def test_tracks_differ_only_in_track_version_and_replicas(config: EnvironmentConfig) -> None:
    for service in config.services:
        stable, canary = (
            next(d for d in _of_kind(_objects(config, service.name), "Deployment") if d["metadata"]["name"].endswith(t))
            for t in ("-stable", "-canary")
        )
        assert "replicas" not in stable["spec"]  # the HPA owns the stable track's size
        assert canary["spec"]["replicas"] == 0

        def normalized(deployment: dict) -> str:
            text = json.dumps(deployment, sort_keys=True)
            return text.replace("canary", "TRACK").replace("stable", "TRACK")

        canary_without_replicas = json.loads(json.dumps(canary))
        del canary_without_replicas["spec"]["replicas"]
        assert normalized(stable) == normalized(canary_without_replicas)


def test_pods_are_hardened(config: EnvironmentConfig) -> None:
    for deployment in _deployments(config):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        [container] = pod["containers"]
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        }
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        assert mounts == {"/tmp": "tmp", "/models": "model-cache"}  # noqa: S108 - emptyDir mount point
        assert all("emptyDir" in volume for volume in pod["volumes"])
        assert "hostNetwork" not in pod
        assert "privileged" not in json.dumps(pod)


def test_probes_and_startup_allowance(config: EnvironmentConfig) -> None:
    for service in config.services:
        for deployment in _of_kind(_objects(config, service.name), "Deployment"):
            [container] = deployment["spec"]["template"]["spec"]["containers"]
            startup = container["startupProbe"]
            allowed = startup["periodSeconds"] * startup["failureThreshold"]
            assert allowed >= service.startup_allowance_minutes * 60
            assert allowed < service.startup_allowance_minutes * 60 + startup["periodSeconds"]
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert container[probe]["httpGet"] == {"path": service.health_path, "port": "http"}
            assert deployment["spec"]["progressDeadlineSeconds"] > allowed


def test_drain_before_termination(config: EnvironmentConfig) -> None:
    drain = config.load_balancer.deregistration_delay_seconds
    for deployment in _deployments(config):
        pod = deployment["spec"]["template"]["spec"]
        pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pre_stop > drain
        assert pod["terminationGracePeriodSeconds"] > pre_stop


def test_requests_equal_limits_with_neuron_cores(config: EnvironmentConfig) -> None:
    for service in config.services:
        for deployment in _of_kind(_objects(config, service.name), "Deployment"):
            resources = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
            assert resources["requests"] == resources["limits"]
            assert resources["requests"]["cpu"] == service.resources.cpu
            assert resources["requests"]["memory"] == service.resources.memory
            cores = resources["requests"].get("aws.amazon.com/neuroncore")
            assert cores == (str(service.accelerator.neuron_cores) if service.is_neuron else None)


def test_neuron_services_land_only_on_their_accelerator_pool(config: EnvironmentConfig) -> None:
    for service in config.services:
        pool = config.pool_for(service)
        for deployment in _of_kind(_objects(config, service.name), "Deployment"):
            pod = deployment["spec"]["template"]["spec"]
            if pool is None:
                assert pod["nodeSelector"] == {"tessera.dev/pool": "general", "kubernetes.io/arch": "arm64"}
                assert "tolerations" not in pod
                assert "schedulerName" not in pod
                continue
            assert pod["nodeSelector"] == {
                "tessera.dev/accelerator": service.accelerator.type,
                "tessera.dev/pool": pool.name,
            }
            assert pod["tolerations"] == [
                {"key": "aws.amazon.com/neuron", "operator": "Exists", "effect": "NoSchedule"}
            ]
            largest = max(spec.cores for spec in pool.instance_specs)
            partial = service.accelerator.neuron_cores < largest
            assert pod.get("schedulerName") == (NEURON_SCHEDULER_NAME if partial else None)


def test_dev_scheduling_cases() -> None:
    """assistant takes a whole trn1.2xlarge; embeddings one of inf2's two cores (needs the extension)."""
    config = load_config(config_path_for("dev"))
    by_service = {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in _deployments(config)}
    assert NEURON_INSTANCE_TYPES["trn1.2xlarge"].cores == 2
    assert "schedulerName" not in by_service["assistant-stable"]
    assert by_service["embeddings-stable"]["schedulerName"] == NEURON_SCHEDULER_NAME
    assert by_service["gateway-stable"]["nodeSelector"]["kubernetes.io/arch"] == "arm64"


def test_spread_across_zones_and_nodes(config: EnvironmentConfig) -> None:
    for deployment in _deployments(config):
        constraints = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert {c["topologyKey"] for c in constraints} == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        for constraint in constraints:
            assert constraint["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_disruption_budgets_cover_each_track(config: EnvironmentConfig) -> None:
    budgets = _of_kind(_objects(config), "PodDisruptionBudget")
    selectors = [b["spec"]["selector"]["matchLabels"] for b in budgets]
    for deployment in _deployments(config):
        assert deployment["spec"]["selector"]["matchLabels"] in selectors
    assert all(b["spec"]["maxUnavailable"] == 1 for b in budgets)


def test_autoscaler_scales_the_stable_track_within_config(config: EnvironmentConfig) -> None:
    for service in config.services:
        [hpa] = _of_kind(_objects(config, service.name), "HorizontalPodAutoscaler")
        assert hpa["spec"]["scaleTargetRef"]["name"] == f"{service.name}-stable"
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (service.replicas.min, service.replicas.max)
        [metric] = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"]["averageUtilization"] == service.cpu_target_percent


def test_network_policy_admits_only_the_load_balancer_and_the_namespace(config: EnvironmentConfig) -> None:
    for service in config.services:
        [policy] = _of_kind(_objects(config, service.name), "NetworkPolicy")
        spec = policy["spec"]
        assert spec["podSelector"]["matchLabels"] == {"tessera.dev/service": service.name}
        assert spec["policyTypes"] == ["Ingress"]
        from_load_balancer, from_namespace = spec["ingress"]
        assert all("ipBlock" in peer for peer in from_load_balancer["from"])
        assert from_load_balancer["ports"] == [{"protocol": "TCP", "port": service.port}]
        assert from_namespace == {"from": [{"podSelector": {}}]}


def test_model_version_reaches_the_container(config: EnvironmentConfig) -> None:
    for service in config.services:
        for deployment in _of_kind(_objects(config, service.name), "Deployment"):
            env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
            assert env["MODEL_VERSION"] == service.model.version
            assert env["MODEL_NAME"] == service.model.name
            assert env["MODEL_S3_URI"].endswith(f"/models/{service.name}/{service.model.version}/")
            assert env["MODEL_S3_URI"].startswith(f"s3://tessera-{config.name}-models-")
            assert env["MODEL_CACHE_DIR"] == "/models"
            assert env["TRACK"] in ("stable", "canary")
            for key, value in service.env.items():
                assert env[key] == value


def test_make_manifests_writes_one_file_per_service(tmp_path: Path) -> None:
    assert render_main(["dev", str(tmp_path)]) == 0
    files = sorted(path.name for path in (tmp_path / "dev").iterdir())
    assert files == ["assistant.yaml", "embeddings.yaml", "gateway.yaml", "namespace.yaml"]
    documents = list(yaml.safe_load_all((tmp_path / "dev" / "gateway.yaml").read_text()))
    assert documents[0]["kind"] == "ServiceAccount"


def test_make_manifests_reports_a_bad_environment(capsys: pytest.CaptureFixture[str]) -> None:
    assert render_main(["nowhere"]) == 1
    assert "file not found" in capsys.readouterr().err
