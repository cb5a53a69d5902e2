"""Point 5: every Pod Identity role trusts only this cluster (its ARN names the account) and the one namespace and
service account its association names (session-tag conditions, as the EKS user guide shows)."""

from __future__ import annotations

import json

import pytest

from tests.synth import SynthesizedEnvironment

POD_IDENTITY = "pods.eks.amazonaws.com"
COMPONENTS = ("Cluster", "Services")


def _pod_identity_roles(env: SynthesizedEnvironment, component: str) -> dict[str, dict]:
    return {
        logical_id: role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        for logical_id, role in env.resources(component, "AWS::IAM::Role").items()
        if POD_IDENTITY in json.dumps(role["Properties"]["AssumeRolePolicyDocument"])
    }


def _associations(env: SynthesizedEnvironment, component: str) -> dict[str, tuple[str, str]]:
    """Role logical id -> (namespace, service account), from associations and add-on properties."""
    found = {}
    template = env.template_json(component)["Resources"]
    for resource in template.values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::EKS::PodIdentityAssociation":
            found[properties["RoleArn"]["Fn::GetAtt"][0]] = (properties["Namespace"], properties["ServiceAccount"])
        for association in (
            properties.get("PodIdentityAssociations", []) if resource["Type"] == "AWS::EKS::Addon" else []
        ):
            found[association["RoleArn"]["Fn::GetAtt"][0]] = ("kube-system", association["ServiceAccount"])
    return found


@pytest.mark.parametrize("component", COMPONENTS)
def test_pod_identity_roles_trust_one_service_account_of_this_cluster(
    component: str, dev: SynthesizedEnvironment
) -> None:
    roles = _pod_identity_roles(dev, component)
    associations = _associations(dev, component)
    assert roles
    for logical_id, statements in roles.items():
        [statement] = statements
        assert sorted(statement["Action"]) == ["sts:AssumeRole", "sts:TagSession"]
        conditions = statement.get("Condition", {}).get("StringEquals", {})
        cluster_arn = json.dumps(conditions.get("aws:RequestTag/eks-cluster-arn"))
        assert '{"Ref": "AWS::AccountId"}' in cluster_arn, logical_id
        assert f":cluster/{dev.stacks.cluster.cluster_name}" in cluster_arn, logical_id
        if logical_id in associations:
            namespace, service_account = associations[logical_id]
            assert conditions.get("aws:RequestTag/kubernetes-namespace") == namespace, logical_id
            assert conditions.get("aws:RequestTag/kubernetes-service-account") == service_account, logical_id
        else:
            # Roles whose association CDK renders elsewhere (the L2 ServiceAccount) still name one account.
            assert conditions.get("aws:RequestTag/kubernetes-namespace"), logical_id
            assert conditions.get("aws:RequestTag/kubernetes-service-account"), logical_id
