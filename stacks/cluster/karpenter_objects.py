"""Karpenter's `EC2NodeClass` and `NodePool` for each Tessera pool, as pure functions of config.

No CDK here: the Cluster stack passes deploy-time values (role name, security group id) as CDK token
strings, tests pass plain strings and validate the output against the vendored Karpenter CRDs.

- One EC2NodeClass per pool: AL2023 pinned by alias (Karpenter picks the arm64, Neuron or NVIDIA variant
  of that release by instance type: its al2023 AMI family resolves the `nvidia` variant for types with
  GPUs and `neuron` for types with Neuron devices, pkg/providers/amifamily/al2023.go at v1.14.1), private
  subnets by the discovery tag, the cluster security group, IMDSv2 with hop limit 1, an encrypted gp3 root
  volume, and RAID0 over the instance store where every type has one (kubelet and containerd then live
  there, so emptyDir volumes such as the model cache use NVMe).
- One NodePool per pool: the pool's types, arch and capacity type, Tessera's labels, the Neuron taint
  on Neuron pools and the `nvidia.com/gpu` taint on GPU pools, a zone when a reservation or EFA pins one,
  limits, and disruption settings.
  General nodes are consolidated when underused; accelerator nodes only when empty, one at a time
  (the budget), and they do not expire unless config says so (expiry ignores budgets).
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks.config.accelerator_pools import AcceleratorPool, GpuPoolConfig
from stacks.config.cluster import GeneralPoolConfig
from stacks.config.node_disk import NodeDisk
from tessera_shared.constants import (
    ACCELERATOR_LABEL,
    ACCELERATOR_POOL_ARCHITECTURE,
    GENERAL_POOL,
    GENERAL_POOL_ARCHITECTURE,
    GPU_TAINT_KEY,
    GPU_TAINT_VALUE,
    KARPENTER_DISCOVERY_TAG,
    NEURON_TAINT_KEY,
    NEURON_TAINT_VALUE,
    POOL_LABEL,
)

NODE_CLASS_API = "karpenter.k8s.aws/v1"
NODE_POOL_API = "karpenter.sh/v1"
CAPACITY_TYPE_KEY = "karpenter.sh/capacity-type"
ROOT_DEVICE = "/dev/xvda"
CAPACITY_TYPES = {
    "on_demand": ["on-demand"],
    "spot": ["spot"],
    "reservation": ["reserved"],
    "capacity_block": ["reserved"],
}


@dataclass(frozen=True)
class NodeClassContext:
    """Deploy-time values every node class shares (CDK tokens in the stack)."""

    cluster_name: str
    node_role_name: str
    security_group_id: str
    ami_alias: str


def general_pool_objects(pool: GeneralPoolConfig, context: NodeClassContext) -> list[dict]:
    node_class = _node_class(GENERAL_POOL, pool, context, instance_store=False)
    node_pool = _node_pool(
        GENERAL_POOL,
        labels={POOL_LABEL: GENERAL_POOL, ACCELERATOR_LABEL: "cpu"},
        requirements=[
            _requirement("node.kubernetes.io/instance-type", pool.instance_types),
            _requirement("kubernetes.io/arch", [GENERAL_POOL_ARCHITECTURE]),
            _requirement(CAPACITY_TYPE_KEY, ["on-demand"]),
        ],
        taints=[],
        expire_after=pool.expire_after,
        limits={"nodes": str(pool.max_nodes)},
        disruption={
            "consolidationPolicy": "WhenEmptyOrUnderutilized",
            "consolidateAfter": pool.consolidate_after,
            "budgets": [{"nodes": "10%"}],
        },
    )
    return [node_class, node_pool]


def accelerator_pool_objects(
    pool: AcceleratorPool, context: NodeClassContext, *, placement_group: str | None = None
) -> list[dict]:
    node_class = _node_class(pool.name, pool, context, instance_store=pool.has_instance_store)
    if pool.capacity.is_reserved:
        node_class["spec"]["capacityReservationSelectorTerms"] = [{"id": pool.capacity.reservation_id}]
    if placement_group is not None:
        node_class["spec"]["placementGroupSelector"] = {"name": placement_group}
    requirements = [
        _requirement("node.kubernetes.io/instance-type", pool.instance_types),
        _requirement("kubernetes.io/arch", [ACCELERATOR_POOL_ARCHITECTURE]),
        _requirement(CAPACITY_TYPE_KEY, CAPACITY_TYPES[pool.capacity.type]),
    ]
    if pool.zone is not None:
        requirements.append(_requirement("topology.kubernetes.io/zone", [pool.zone]))
    limits = {"nodes": str(pool.max_nodes)}
    if pool.accelerator_limit is not None:
        limits[pool.resource] = str(pool.accelerator_limit)
    gpu = isinstance(pool, GpuPoolConfig)
    taint = (GPU_TAINT_KEY, GPU_TAINT_VALUE) if gpu else (NEURON_TAINT_KEY, NEURON_TAINT_VALUE)
    node_pool = _node_pool(
        pool.name,
        labels={POOL_LABEL: pool.name, ACCELERATOR_LABEL: pool.accelerator},
        requirements=requirements,
        taints=[{"key": taint[0], "value": taint[1], "effect": "NoSchedule"}],
        expire_after=pool.expire_after,
        limits=limits,
        disruption={
            # A serving pod reloads its model for minutes when moved: only empty nodes go, one at a time.
            "consolidationPolicy": "WhenEmpty",
            "consolidateAfter": pool.consolidate_after,
            "budgets": [{"nodes": pool.disruption_budget}],
        },
    )
    return [node_class, node_pool]


def node_pools_allow_spot(objects: list[dict]) -> bool:
    """Whether any NodePool lets Karpenter buy Spot (then EC2 needs its Spot service-linked role). Read from the
    rendered objects, not config, so every pool counts; Tessera always renders the capacity type as `In`."""
    return any(
        requirement["key"] == CAPACITY_TYPE_KEY and "spot" in requirement["values"]
        for obj in objects
        if obj["kind"] == "NodePool"
        for requirement in obj["spec"]["template"]["spec"]["requirements"]
    )


def _node_class(name: str, disk: NodeDisk, context: NodeClassContext, *, instance_store: bool) -> dict:
    spec: dict = {
        "role": context.node_role_name,
        "amiSelectorTerms": [{"alias": context.ami_alias}],
        "subnetSelectorTerms": [{"tags": {KARPENTER_DISCOVERY_TAG: context.cluster_name}}],
        "securityGroupSelectorTerms": [{"id": context.security_group_id}],
        "metadataOptions": {
            "httpEndpoint": "enabled",
            "httpProtocolIPv6": "disabled",
            "httpPutResponseHopLimit": 1,  # pods get AWS credentials from Pod Identity, never from the node
            "httpTokens": "required",
        },
        "blockDeviceMappings": [
            {
                "deviceName": ROOT_DEVICE,
                "rootVolume": True,
                "ebs": {
                    "volumeSize": f"{disk.disk_size_gib}Gi",
                    "volumeType": "gp3",
                    "iops": disk.disk_iops,
                    "throughput": disk.disk_throughput_mibps,
                    "encrypted": True,
                    "deleteOnTermination": True,
                },
            }
        ],
        "tags": {POOL_LABEL: name},
    }
    if instance_store:
        spec["instanceStorePolicy"] = "RAID0"
    return {"apiVersion": NODE_CLASS_API, "kind": "EC2NodeClass", "metadata": {"name": name}, "spec": spec}


def _node_pool(
    name: str,
    *,
    labels: dict[str, str],
    requirements: list[dict],
    taints: list[dict],
    expire_after: str,
    limits: dict[str, str],
    disruption: dict,
) -> dict:
    template_spec: dict = {
        "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": name},
        "requirements": requirements,
        "expireAfter": expire_after,
    }
    if taints:
        template_spec["taints"] = taints
    return {
        "apiVersion": NODE_POOL_API,
        "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {
            "template": {"metadata": {"labels": labels}, "spec": template_spec},
            "limits": limits,
            "disruption": disruption,
        },
    }


def _requirement(key: str, values: list[str]) -> dict:
    return {"key": key, "operator": "In", "values": list(values)}
