"""A simulated `cdk deploy` of every environment (tests/deploy/world.py): the synthesized templates walked in
dependency order with random orders among what is ready, each custom resource called with what CloudFormation
sends, Kubernetes objects applied into a cluster double that refuses what the API server refuses. Then an
update with a changed config, and `cdk destroy`."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
import yaml

from stacks.config.environment import config_path_for, parse_config
from tessera_shared.constants import NAMESPACE
from tests.deploy.world import CloudAssembly, SimulatedDeploy, simulated_deploy
from tests.fake_aws import use_fake_credentials
from tests.kubernetes_objects import manifest_objects
from tests.synth import SynthesizedEnvironment, synthesize

SEEDS = (11, 12, 13)
COMPONENTS = ("Network", "Artifacts", "Cluster", "Services", "Registry", "Observability", "Rollout")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each simulated deploy gets a fresh moto account; these credentials keep real ones out of reach."""
    use_fake_credentials(monkeypatch)


def declared(env: SynthesizedEnvironment) -> set[tuple[str, str, str]]:
    """(kind, namespace, name) of every Kubernetes object the templates declare."""
    return {
        (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        for component in COMPONENTS
        for obj in manifest_objects(env, component)
    }


def in_cluster(sim: SimulatedDeploy) -> set[tuple[str, str, str]]:
    objects = sim.cluster.objects() + sim.api.stored_objects(NAMESPACE)
    return {(obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]) for obj in objects}


def deployed(env: SynthesizedEnvironment, seed: int) -> Iterator[SimulatedDeploy]:
    with simulated_deploy(seed=seed, kubernetes_version=env.config.cluster.kubernetes_version) as sim:
        sim.deploy(CloudAssembly.read(env.outdir))
        yield sim


@pytest.mark.usefixtures("aws")
@pytest.mark.parametrize("environment", ["dev", "prod", "variant"])
def test_every_environment_deploys_in_any_order(environment: str, request: pytest.FixtureRequest) -> None:
    env: SynthesizedEnvironment = request.getfixturevalue(environment)
    for seed in SEEDS:
        for sim in deployed(env, seed):
            assert sim.unordered_reliances() == []
            assert declared(env) <= in_cluster(sim), f"seed {seed}: declared objects missing from the cluster"
            spot = any(pool.capacity.type == "spot" for pool in env.config.cluster.accelerator_pools)
            spot_roles = boto3.client("iam").list_roles(PathPrefix="/aws-service-role/spot.amazonaws.com/")["Roles"]
            assert len(spot_roles) == (1 if spot else 0)  # the AwsCustomResource's call ran, where a pool buys Spot
            for placed in env.config.placed_services:
                # The canary waits at 0; stable's size is its autoscaler's (the API server's default until then).
                assert sim.api.deployment(NAMESPACE, f"{placed.name}-canary")["spec"]["replicas"] == 0
                assert sim.api.deployment(NAMESPACE, f"{placed.name}-stable")["spec"]["replicas"] >= 1


def without_scaling(service: str) -> SynthesizedEnvironment:
    """dev, with one service's KEDA scaling dropped (it falls back to the CPU HPA)."""
    data = yaml.safe_load(config_path_for("dev").read_text())
    [spec] = [s for s in data["services"] if s["name"] == service]
    del spec["scaling"]
    return parse_config(data, source="dev-without-scaling")


@pytest.fixture(scope="module")
def dev_changed(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedEnvironment:
    return synthesize(without_scaling("assistant"), tmp_path_factory.mktemp("cdk.out.dev-changed"))


@pytest.mark.usefixtures("aws")
def test_a_config_change_updates_the_cluster_to_exactly_what_it_renders(
    dev: SynthesizedEnvironment, dev_changed: SynthesizedEnvironment
) -> None:
    for sim in deployed(dev, SEEDS[0]):
        assert ("ScaledObject", NAMESPACE, "assistant-stable") in in_cluster(sim)

        sim.deploy(CloudAssembly.read(dev_changed.outdir))

        assert sim.unordered_reliances() == []
        assert in_cluster(sim) == declared(dev_changed) | in_cluster_by_default(sim)
        assert ("HorizontalPodAutoscaler", NAMESPACE, "assistant-stable") in in_cluster(sim)


def in_cluster_by_default(sim: SimulatedDeploy) -> set[tuple[str, str, str]]:
    """What exists without Tessera's manifests: EKS's namespaces, what the charts made (CRDs, namespaces)."""
    return {key for key in in_cluster(sim) if key[0] in ("CustomResourceDefinition",)} | {
        ("Namespace", "", name) for name in ("default", "kube-system", "kube-public", "kube-node-lease", "keda")
    }


@pytest.mark.usefixtures("aws")
@pytest.mark.parametrize("seed", SEEDS)
def test_destroy_removes_every_object_it_made(dev: SynthesizedEnvironment, seed: int) -> None:
    for sim in deployed(dev, seed):
        sim.destroy(CloudAssembly.read(dev.outdir))

        assert sim.api.stored_objects(NAMESPACE) == []
        left = {key for key in in_cluster(sim) if key[0] != "CustomResourceDefinition"}
        assert left == {
            ("Namespace", "", name) for name in ("default", "kube-system", "kube-public", "kube-node-lease", "keda")
        }
