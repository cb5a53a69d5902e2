"""Issue 22, problem 5: a Session Manager shell on a node bypasses Kubernetes RBAC, so nodes get
AmazonSSMManagedInstanceCore only where config asks (`cluster.node_session_manager`); and no add-on runs that
nothing uses (the EBS CSI driver: no Tessera workload claims a volume)."""

from __future__ import annotations

import json

from tests.synth import SynthesizedEnvironment

SSM = "AmazonSSMManagedInstanceCore"


def _node_roles(env: SynthesizedEnvironment) -> list[dict]:
    roles = env.resources("Cluster", "AWS::IAM::Role").values()
    return [r for r in roles if "ec2.amazonaws.com" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])]


def test_nodes_have_no_session_manager_unless_config_asks(dev: SynthesizedEnvironment) -> None:
    roles = _node_roles(dev)
    assert len(roles) == 2  # the managed node groups' and Karpenter's
    assert all(SSM not in json.dumps(role["Properties"].get("ManagedPolicyArns", [])) for role in roles)


def test_nodes_have_session_manager_where_config_asks(variant: SynthesizedEnvironment) -> None:
    assert variant.config.cluster.node_session_manager
    roles = _node_roles(variant)
    assert len(roles) == 2
    assert all(SSM in json.dumps(role["Properties"]["ManagedPolicyArns"]) for role in roles)


def test_no_ebs_csi_driver(dev: SynthesizedEnvironment) -> None:
    addons = [a["Properties"]["AddonName"] for a in dev.resources("Cluster", "AWS::EKS::Addon").values()]
    assert addons
    assert "aws-ebs-csi-driver" not in addons
    claims = [
        obj for obj in json.dumps(dev.template_json("Services")).split('\\"kind\\":') if "PersistentVolumeClaim" in obj
    ]
    assert claims == []
