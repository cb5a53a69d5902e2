"""Karpenter's EC2NodeClass and NodePool per pool (stacks/cluster/karpenter_objects.py): every rendered
object validates against the vendored Karpenter 1.14.1 CRD schemas, and each pool says what config says."""

from __future__ import annotations

import copy

import jsonschema
import pytest

from stacks.cluster.karpenter_objects import NodeClassContext, accelerator_pool_objects, general_pool_objects
from stacks.config.environment import EnvironmentConfig, config_path_for, load_config
from tests import crd_schemas
from tests.conftest import variant_config

CONTEXT = NodeClassContext(
    cluster_name="tessera-test",
    node_role_name="Tessera-test-Cluster-KarpenterNodeRole",
    security_group_id="sg-0123456789abcdef0",
    ami_alias="al2023@v20260903",
)


SCHEMAS = {kind: crd_schemas.schema(kind) for kind in ("NodePool", "EC2NodeClass")}


def _configs() -> dict[str, EnvironmentConfig]:
    return {"dev": load_config(config_path_for("dev")), "prod": load_config(config_path_for("prod"))} | {
        "variant": variant_config()
    }


def _rendered(config: EnvironmentConfig) -> dict[tuple[str, str], dict]:
    """(kind, pool name) -> object."""
    objects = general_pool_objects(config.cluster.general_pool, CONTEXT)
    for pool in config.cluster.accelerator_pools:
        placement_group = "pg-training" if pool.efa else None
        objects += accelerator_pool_objects(pool, CONTEXT, placement_group=placement_group)
    return {(obj["kind"], obj["metadata"]["name"]): obj for obj in objects}


@pytest.mark.parametrize("environment", ["dev", "prod", "variant"])
def test_every_rendered_object_matches_the_karpenter_crds(environment: str) -> None:
    config = _configs()[environment]
    rendered = _rendered(config)
    assert len(rendered) == 2 * (1 + len(config.cluster.accelerator_pools))
    for obj in rendered.values():
        jsonschema.validate(obj, SCHEMAS[obj["kind"]])


def test_the_crd_schema_catches_mistakes() -> None:
    pool = copy.deepcopy(_rendered(_configs()["dev"])[("NodePool", "trainium")])
    pool["spec"]["disruption"]["consolidationPolicy"] = "WhenIdle"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(pool, SCHEMAS["NodePool"])
    node_class = copy.deepcopy(_rendered(_configs()["dev"])[("EC2NodeClass", "trainium")])
    node_class["spec"]["instanceStorePolicy"] = "RAID1"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(node_class, SCHEMAS["EC2NodeClass"])
    node_class = copy.deepcopy(_rendered(_configs()["dev"])[("EC2NodeClass", "trainium")])
    node_class["spec"]["blockDevice"] = node_class["spec"].pop("blockDeviceMappings")  # a typo the server would drop
    with pytest.raises(jsonschema.ValidationError, match="blockDevice"):
        jsonschema.validate(node_class, SCHEMAS["EC2NodeClass"])


def test_node_classes_pin_the_ami_and_keep_pods_off_instance_metadata() -> None:
    for (kind, _), obj in _rendered(_configs()["dev"]).items():
        if kind != "EC2NodeClass":
            continue
        spec = obj["spec"]
        assert spec["amiSelectorTerms"] == [{"alias": "al2023@v20260903"}]
        assert spec["metadataOptions"]["httpTokens"] == "required"
        assert spec["metadataOptions"]["httpPutResponseHopLimit"] == 1
        assert spec["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "tessera-test"}}]
        [root] = spec["blockDeviceMappings"]
        assert root["rootVolume"] is True
        assert root["ebs"]["volumeType"] == "gp3"
        assert root["ebs"]["encrypted"] is True


def test_disk_throughput_and_iops_come_from_config() -> None:
    root = _rendered(_configs()["prod"])[("EC2NodeClass", "inferentia")]["spec"]["blockDeviceMappings"][0]["ebs"]
    assert (root["volumeSize"], root["throughput"], root["iops"]) == ("500Gi", 1000, 6000)


def test_instance_store_is_raid0_only_where_every_type_has_one() -> None:
    """Issue 12 case 10: the model cache lands on local NVMe (trn1) instead of the gp3 root volume."""
    rendered = _rendered(_configs()["dev"])
    assert rendered[("EC2NodeClass", "trainium")]["spec"]["instanceStorePolicy"] == "RAID0"
    assert "instanceStorePolicy" not in rendered[("EC2NodeClass", "inferentia")]["spec"]
    assert "instanceStorePolicy" not in rendered[("EC2NodeClass", "general")]["spec"]


def test_accelerator_pools_are_tainted_labelled_and_limited() -> None:
    """Issue 12 cases 3 and 5: no node-group sizes; mixed sizes in one pool with a node limit."""
    rendered = _rendered(_configs()["prod"])
    pool = rendered[("NodePool", "inferentia")]["spec"]
    template = pool["template"]
    assert template["metadata"]["labels"] == {"tessera.dev/pool": "inferentia", "tessera.dev/accelerator": "inferentia"}
    assert template["spec"]["taints"] == [{"key": "aws.amazon.com/neuron", "value": "true", "effect": "NoSchedule"}]
    requirements = {r["key"]: r["values"] for r in template["spec"]["requirements"]}
    assert requirements["node.kubernetes.io/instance-type"] == ["inf2.24xlarge", "inf2.48xlarge"]
    assert requirements["kubernetes.io/arch"] == ["amd64"]
    assert requirements["karpenter.sh/capacity-type"] == ["on-demand"]
    assert pool["limits"] == {"nodes": "20", "aws.amazon.com/neuroncore": "320"}
    assert template["spec"]["nodeClassRef"] == {
        "group": "karpenter.k8s.aws",
        "kind": "EC2NodeClass",
        "name": "inferentia",
    }


def test_accelerator_nodes_go_only_when_empty_one_at_a_time_and_never_expire() -> None:
    """Issue 12 case 4: nodes scale down (no local-storage rule); serving nodes are not consolidated."""
    rendered = _rendered(_configs()["prod"])
    trainium = rendered[("NodePool", "trainium")]["spec"]
    assert trainium["disruption"] == {
        "consolidationPolicy": "WhenEmpty",
        "consolidateAfter": "30m",
        "budgets": [{"nodes": "1"}],
    }
    assert trainium["template"]["spec"]["expireAfter"] == "Never"
    general = rendered[("NodePool", "general")]["spec"]
    assert general["disruption"]["consolidationPolicy"] == "WhenEmptyOrUnderutilized"
    assert general["template"]["spec"]["expireAfter"] == "720h"
    assert "taints" not in general["template"]["spec"]
    assert {r["key"]: r["values"] for r in general["template"]["spec"]["requirements"]}["kubernetes.io/arch"] == [
        "arm64"
    ]


def test_spot_pool_buys_spot() -> None:
    requirements = _rendered(_configs()["dev"])[("NodePool", "inferentia")]["spec"]["template"]["spec"]["requirements"]
    assert {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]} in requirements


def test_capacity_block_pool_selects_its_reservation_in_its_zone() -> None:
    """Issue 12 case 9: a capacity block lives in one zone; the pool launches only there."""
    rendered = _rendered(_configs()["variant"])
    node_class = rendered[("EC2NodeClass", "reserved")]["spec"]
    assert node_class["capacityReservationSelectorTerms"] == [{"id": "cr-0123456789abcdef0"}]
    requirements = {
        r["key"]: r["values"] for r in rendered[("NodePool", "reserved")]["spec"]["template"]["spec"]["requirements"]
    }
    assert requirements["karpenter.sh/capacity-type"] == ["reserved"]
    assert requirements["topology.kubernetes.io/zone"] == ["us-east-1a"]
    assert rendered[("NodePool", "reserved")]["spec"]["limits"] == {"nodes": "1", "aws.amazon.com/neuroncore": "64"}


def test_efa_pool_is_pinned_to_its_zone_and_placement_group() -> None:
    rendered = _rendered(_configs()["variant"])
    assert rendered[("EC2NodeClass", "training")]["spec"]["placementGroupSelector"] == {"name": "pg-training"}
    requirements = {
        r["key"]: r["values"] for r in rendered[("NodePool", "training")]["spec"]["template"]["spec"]["requirements"]
    }
    assert requirements["topology.kubernetes.io/zone"] == ["us-east-1b"]
    dev = _rendered(_configs()["dev"])
    assert all("topology.kubernetes.io/zone" not in str(obj) for obj in dev.values())


def test_gpu_pool_is_tainted_for_gpu_pods_and_limited_in_gpus() -> None:
    """Issue 15: a GPU pool renders like the Neuron pools, with the NVIDIA taint, Tessera's labels and its GPU limit;
    its node class carries the same pinned alias, from which Karpenter picks the release's NVIDIA variant."""
    rendered = _rendered(_configs()["dev"])
    spec = rendered[("NodePool", "gpu")]["spec"]
    template = spec["template"]
    assert template["metadata"]["labels"] == {"tessera.dev/pool": "gpu", "tessera.dev/accelerator": "gpu"}
    assert template["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    requirements = {r["key"]: r["values"] for r in template["spec"]["requirements"]}
    assert requirements["node.kubernetes.io/instance-type"] == ["g6.2xlarge"]
    assert requirements["kubernetes.io/arch"] == ["amd64"]
    assert spec["limits"] == {"nodes": "2", "nvidia.com/gpu": "2"}
    assert spec["disruption"]["consolidationPolicy"] == "WhenEmpty"
    node_class = rendered[("EC2NodeClass", "gpu")]["spec"]
    assert node_class["amiSelectorTerms"] == [{"alias": "al2023@v20260903"}]
    assert node_class["instanceStorePolicy"] == "RAID0"  # g6.2xlarge has local NVMe
    # The Neuron pools keep the Neuron taint: a GPU pod never lands there, nor a Neuron pod on a GPU node.
    neuron_taints = rendered[("NodePool", "trainium")]["spec"]["template"]["spec"]["taints"]
    assert [taint["key"] for taint in neuron_taints] == ["aws.amazon.com/neuron"]
