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

from stacks.config.accelerator_pools import NeuronPoolConfig
from stacks.config.environment import EnvironmentConfig, config_path_for, load_config, parse_config
from stacks.services.model_loader import loader_config_map
from stacks.services.placement import neuron_request
from tessera_shared.constants import NEURON_SCHEDULER_NAME
from tools.render_manifests import main as render_main
from tools.render_manifests import rendered_objects

ENVIRONMENTS = ["dev", "prod"]
TGB_SCHEMA = json.loads((Path(__file__).parent / "data" / "targetgroupbinding-v1beta1.schema.json").read_text())
# Custom resources, validated against their controllers' CRDs (here and in test_scaling_objects.py).
CUSTOM_KINDS = {"TargetGroupBinding", "ScaledObject", "TriggerAuthentication"}


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
    core = [obj for obj in _objects(config) if obj["kind"] not in CUSTOM_KINDS]
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
        autoscaler = "ScaledObject" if service.scaling else "HorizontalPodAutoscaler"
        assert kinds == sorted(
            ["ServiceAccount", "NetworkPolicy", autoscaler]
            + ["Deployment", "Service", "TargetGroupBinding", "PodDisruptionBudget"] * 2
        )
        names = {obj["metadata"]["name"] for obj in _of_kind(_objects(config, service.name), "Deployment")}
        assert names == {f"{service.name}-stable", f"{service.name}-canary"}


def test_namespace_enforces_restricted_pod_security(config: EnvironmentConfig) -> None:
    [namespace] = _of_kind(rendered_objects(config)["namespace.yaml"], "Namespace")
    assert namespace["metadata"]["name"] == "inference"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespace["metadata"]["labels"]["elbv2.k8s.aws/pod-readiness-gate-inject"] == "enabled"


def test_tracks_differ_only_in_track_version_replicas_and_disruption(config: EnvironmentConfig) -> None:
    for service in config.services:
        stable, canary = (
            next(d for d in _of_kind(_objects(config, service.name), "Deployment") if d["metadata"]["name"].endswith(t))
            for t in ("-stable", "-canary")
        )
        assert "replicas" not in stable["spec"]  # the HPA (KEDA's, with scaling) owns the stable track's size
        assert canary["spec"]["replicas"] == 0

        def normalized(deployment: dict) -> str:
            text = json.dumps(deployment, sort_keys=True)
            return text.replace("canary", "TRACK").replace("stable", "TRACK")

        canary_without_replicas = json.loads(json.dumps(canary))
        del canary_without_replicas["spec"]["replicas"]
        # Canary pods exist only during a rollout: Karpenter leaves their nodes alone (issue 12, disruption).
        annotations = canary_without_replicas["spec"]["template"]["metadata"].pop("annotations")
        assert annotations == {"karpenter.sh/do-not-disrupt": "true"}
        assert normalized(stable) == normalized(canary_without_replicas)


def test_pods_are_hardened(config: EnvironmentConfig) -> None:
    for deployment in _deployments(config):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        [container] = pod["containers"]
        [loader] = pod["initContainers"]
        for each in (container, loader):
            assert each["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "runAsNonRoot": True,
                "capabilities": {"drop": ["ALL"]},
            }
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        assert {"/tmp": "tmp", "/models": "model-cache"}.items() <= mounts.items()  # noqa: S108 - emptyDir mount
        assert set(mounts) <= {"/tmp", "/models", "/dev/shm"}  # noqa: S108 - emptyDir mount points
        # Every volume is the pod's own emptyDir, but the loader's script, read-only from its ConfigMap.
        assert [v["name"] for v in pod["volumes"] if "emptyDir" not in v] == ["model-loader"]
        assert {m["mountPath"]: m.get("readOnly") for m in loader["volumeMounts"] if m["name"] == "model-loader"} == {
            "/opt/tessera": True
        }
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


def test_requests_equal_limits(config: EnvironmentConfig) -> None:
    for service in config.services:
        for deployment in _of_kind(_objects(config, service.name), "Deployment"):
            resources = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
            assert resources["requests"] == resources["limits"]
            assert resources["requests"]["cpu"] == service.resources.cpu
            assert resources["requests"]["memory"] == service.resources.memory


def _pod(config: EnvironmentConfig, deployment: str) -> dict:
    return next(d for d in _deployments(config) if d["metadata"]["name"] == deployment)["spec"]["template"]["spec"]


def test_neuron_pods_take_whole_devices_or_one_core_without_the_extension(config: EnvironmentConfig) -> None:
    """Issue 12 case 2: the shipped services need neither the scheduler extension nor its kube-scheduler.
    assistant's 2 cores are one trn1 device; embeddings takes a single inf2 core."""
    assistant = _pod(config, "assistant-stable")
    requests = assistant["containers"][0]["resources"]["requests"]
    assert requests["aws.amazon.com/neuron"] == "1"
    assert "aws.amazon.com/neuroncore" not in requests
    embeddings = _pod(config, "embeddings-stable")
    assert embeddings["containers"][0]["resources"]["requests"]["aws.amazon.com/neuroncore"] == "1"
    for pod in (assistant, embeddings, _pod(config, "gateway-stable")):
        assert "schedulerName" not in pod


@pytest.mark.parametrize(
    ("cores", "instance_type", "expected", "scheduler"),
    [
        (1, "inf2.24xlarge", {"aws.amazon.com/neuroncore": 1}, None),
        (2, "inf2.24xlarge", {"aws.amazon.com/neuron": 1}, None),
        (12, "inf2.24xlarge", {"aws.amazon.com/neuron": 6}, None),
        (3, "trn1.32xlarge", {"aws.amazon.com/neuroncore": 3}, NEURON_SCHEDULER_NAME),
        (8, "trn2.48xlarge", {"aws.amazon.com/neuron": 2}, None),
        (6, "trn2.48xlarge", {"aws.amazon.com/neuroncore": 6}, NEURON_SCHEDULER_NAME),
    ],
)
def test_neuron_request_shapes(cores: int, instance_type: str, expected: dict, scheduler: str | None) -> None:
    pool = NeuronPoolConfig(name="pool", kind="neuron", instance_types=[instance_type], max_nodes=1)
    assert neuron_request(cores, pool) == (expected, scheduler)


def test_shared_memory_is_memory_backed_and_sized_from_config(config: EnvironmentConfig) -> None:
    """Issue 12 case 10: /dev/shm beyond the runtime's 64 MiB, counted against the pod's memory."""
    for service in config.services:
        pod = _pod(config, f"{service.name}-stable")
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        if service.resources.shm is None:
            assert "shm" not in volumes
            continue
        assert volumes["shm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": service.resources.shm}
        assert {"name": "shm", "mountPath": "/dev/shm"} in pod["containers"][0]["volumeMounts"]  # noqa: S108


def test_model_cache_is_requested_as_ephemeral_storage(config: EnvironmentConfig) -> None:
    """Issue 12 case 10: Karpenter places the pod where local storage (RAID0 NVMe on trn1) holds the cache."""
    pod = _pod(config, "assistant-stable")
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["model-cache"]["emptyDir"] == {"sizeLimit": "100Gi"}
    requests = pod["containers"][0]["resources"]["requests"]
    assert requests["ephemeral-storage"] == f"{100 * 1024 + 2 * 1024}Mi"  # the cache plus /tmp and logs


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
    for service in (service for service in config.services if service.scaling is None):
        [hpa] = _of_kind(_objects(config, service.name), "HorizontalPodAutoscaler")
        assert hpa["spec"]["scaleTargetRef"]["name"] == f"{service.name}-stable"
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (service.replicas.min, service.replicas.max)
        [metric] = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"]["averageUtilization"] == service.cpu_target_percent


def test_network_policy_admits_only_the_load_balancer(config: EnvironmentConfig) -> None:
    """The shape; tests/security/test_network_isolation.py evaluates who may reach whom. A service with `metrics`
    also admits the managed Prometheus collector (the cluster's private subnets) on its metrics port."""
    for service in config.services:
        [policy] = _of_kind(_objects(config, service.name), "NetworkPolicy")
        spec = policy["spec"]
        assert spec["podSelector"]["matchLabels"] == {"tessera.dev/service": service.name}
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        from_load_balancer, *from_collector = spec["ingress"]
        assert from_load_balancer == {
            "from": [{"ipBlock": {"cidr": "<load-balancer-subnet-cidr>"}}],
            "ports": [{"protocol": "TCP", "port": service.port}],
        }
        metrics = service.metrics
        assert from_collector == (
            [
                {
                    "from": [{"ipBlock": {"cidr": "<private-subnet-cidr>"}}],
                    "ports": [{"protocol": "TCP", "port": metrics.port or service.port}],
                }
            ]
            if metrics
            else []
        )
        to_load_balancer = [
            rule for rule in spec["egress"] if {"ipBlock": {"cidr": "<load-balancer-subnet-cidr>"}} in rule["to"]
        ]
        assert len(to_load_balancer) == (1 if service.calls else 0)
        ports = {callee.name: callee.port for callee in config.services}
        assert all(
            rule["ports"] == [{"protocol": "TCP", "port": ports[callee]} for callee in service.calls]
            for rule in to_load_balancer
        )


def test_namespace_denies_by_default(config: EnvironmentConfig) -> None:
    [deny] = _of_kind(rendered_objects(config)["namespace.yaml"], "NetworkPolicy")
    assert deny["metadata"]["namespace"] == "inference"
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


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
    assert files == ["assistant.yaml", "embeddings.yaml", "gateway.yaml", "namespace.yaml", "rollout-access.yaml"]
    documents = list(yaml.safe_load_all((tmp_path / "dev" / "gateway.yaml").read_text()))
    assert documents[0]["kind"] == "ServiceAccount"


def test_make_manifests_reports_a_bad_environment(capsys: pytest.CaptureFixture[str]) -> None:
    assert render_main(["nowhere"]) == 1
    assert "file not found" in capsys.readouterr().err


def _gpu_first_dev() -> EnvironmentConfig:
    """dev with the assistant running on its GPU target first (Trainium as its alternative)."""
    data = yaml.safe_load(config_path_for("dev").read_text())
    assistant = next(service for service in data["services"] if service["name"] == "assistant")
    assistant["accelerator"] = {"type": "gpu", "gpus": 1, "pool": "gpu"}
    assistant["image"] = {"repository": assistant["image"]["repository"], "tag": "vllm-0.16.0-cuda12.8"}
    assistant["alternative_accelerators"] = [
        {"type": "trainium", "neuron_cores": 2, "image_tag": "vllm-0.16.0-neuronx-sdk2.31.1", "neuron_sdk": "2.31.1"}
    ]
    return parse_config(data, source="test")


def test_gpu_pods_request_gpus_and_land_only_on_their_gpu_pool() -> None:
    config = _gpu_first_dev()
    objects = _objects(config, "assistant")
    for deployment in _of_kind(objects, "Deployment"):
        kubernetes_validate.validate(deployment, config.cluster.kubernetes_version, strict=True)
        pod = deployment["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"tessera.dev/accelerator": "gpu", "tessera.dev/pool": "gpu"}
        assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        assert "schedulerName" not in pod
        resources = pod["containers"][0]["resources"]
        assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == "1"
        assert not any(name.startswith("aws.amazon.com/neuron") for name in resources["requests"])


def test_the_model_loader_runs_before_the_server_in_the_same_image(config: EnvironmentConfig) -> None:
    """Issue 21, What to build 2: init containers run, in order, to completion before any container starts; a
    loader that exits non-zero keeps the pod from ever running its server."""
    script = (Path(__file__).resolve().parents[2] / "model_loader" / "load_model.py").read_text()
    for deployment in _deployments(config):
        pod = deployment["spec"]["template"]["spec"]
        [loader] = pod["initContainers"]
        [server] = pod["containers"]
        assert loader["name"] == "model-loader"
        assert loader["image"] == server["image"]
        assert loader["command"] == ["python3", "/opt/tessera/load_model.py"]
        loader_env = {e["name"]: e["value"] for e in loader["env"]}
        server_env = {e["name"]: e["value"] for e in server["env"]}
        for name in ("MODEL_S3_URI", "SERVICE_NAME", "MODEL_VERSION", "MODEL_CACHE_DIR"):
            assert loader_env[name] == server_env[name]
        cache = next(m for m in loader["volumeMounts"] if m["mountPath"] == "/models")
        assert cache["name"] == "model-cache"
        [volume] = [v for v in pod["volumes"] if v["name"] == "model-loader"]
        assert volume["configMap"]["name"] == "tessera-model-loader"
    assert loader_config_map()["data"] == {"load_model.py": script}
