"""Cluster stack: EKS control plane, access, add-ons, node pools and platform charts.

cdk-nag's EKS rules only look at the old aws_eks cluster class, so endpoint access, control-plane
logging and secrets encryption are asserted here.
"""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match

from stacks.cluster.node_pools import NEURON_AMI_TYPE
from stacks.config.cluster import AddonVersions
from stacks.config.instance_types import NEURON_INSTANCE_TYPES
from tests.synth import SynthesizedEnvironment

AUTOSCALER_TEMPLATE_PREFIX = "k8s.io/cluster-autoscaler/node-template"


def _cluster(env: SynthesizedEnvironment) -> dict:
    [cluster] = env.resources("Cluster", "AWS::EKS::Cluster").values()
    return cluster["Properties"]


def _nodegroups(env: SynthesizedEnvironment) -> dict[str, dict]:
    """Node groups by their `tessera.dev/pool` label."""
    return {
        group["Properties"]["Labels"]["tessera.dev/pool"]: group["Properties"]
        for group in env.resources("Cluster", "AWS::EKS::Nodegroup").values()
    }


def _launch_template(env: SynthesizedEnvironment, nodegroup: dict) -> dict:
    logical_id = nodegroup["LaunchTemplate"]["Id"]["Ref"]
    return env.template_json("Cluster")["Resources"][logical_id]["Properties"]["LaunchTemplateData"]


def _helm_releases(env: SynthesizedEnvironment) -> dict[str, dict]:
    return {
        chart["Properties"]["Release"]: chart["Properties"]
        for chart in env.resources("Cluster", "Custom::AWSCDK-EKS-HelmChart").values()
    }


def _values_text(release: dict) -> str:
    """Helm values as JSON text, with CloudFormation references reduced to placeholders."""
    values = release["Values"]
    if isinstance(values, str):
        return values
    return "".join(part if isinstance(part, str) else "<ref>" for part in values["Fn::Join"][1])


def test_cluster_version_and_api_authentication(dev: SynthesizedEnvironment) -> None:
    cluster = _cluster(dev)
    assert cluster["Version"] == "1.34"
    assert cluster["Name"] == "tessera-dev"
    assert cluster["AccessConfig"] == {"AuthenticationMode": "API", "BootstrapClusterCreatorAdminPermissions": False}
    assert cluster["BootstrapSelfManagedAddons"] is False


def test_no_default_capacity_and_no_auto_mode(dev: SynthesizedEnvironment) -> None:
    cluster = _cluster(dev)
    assert cluster.get("ComputeConfig", {}).get("Enabled") is not True
    assert len(dev.resources("Cluster", "AWS::EKS::Nodegroup")) == 4  # system, general and the two accelerator pools


def test_all_control_plane_logs_are_on(dev: SynthesizedEnvironment) -> None:
    types = {entry["Type"] for entry in _cluster(dev)["Logging"]["ClusterLogging"]["EnabledTypes"]}
    assert types == {"api", "audit", "authenticator", "controllerManager", "scheduler"}


def test_secrets_are_envelope_encrypted_with_a_rotating_key(dev: SynthesizedEnvironment) -> None:
    [encryption] = _cluster(dev)["EncryptionConfig"]
    assert encryption["Resources"] == ["secrets"]
    key_id = encryption["Provider"]["KeyArn"]["Fn::GetAtt"][0]
    key = dev.template_json("Cluster")["Resources"][key_id]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True


def test_dev_endpoint_is_public_and_private_with_an_allow_list(dev: SynthesizedEnvironment) -> None:
    vpc_config = _cluster(dev)["ResourcesVpcConfig"]
    assert vpc_config["EndpointPrivateAccess"] is True
    assert vpc_config["EndpointPublicAccess"] is True
    assert vpc_config["PublicAccessCidrs"] == ["203.0.113.0/24"]


def test_prod_endpoint_is_private_only(prod: SynthesizedEnvironment) -> None:
    vpc_config = _cluster(prod)["ResourcesVpcConfig"]
    assert vpc_config["EndpointPrivateAccess"] is True
    assert vpc_config["EndpointPublicAccess"] is False
    assert "PublicAccessCidrs" not in vpc_config


def test_kubectl_provider_runs_in_the_private_subnets(dev: SynthesizedEnvironment) -> None:
    functions = dev.resources("Cluster", "AWS::Lambda::Function")
    kubectl = [f for f in functions.values() if "kubectl" in f["Properties"].get("Description", "")]
    assert len(kubectl) == 1
    vpc_config = kubectl[0]["Properties"]["VpcConfig"]
    assert len(vpc_config["SubnetIds"]) == 3
    assert all(
        "PrivateSubnet" in str(subnet) or "Fn::GetStackOutput" in str(subnet) for subnet in vpc_config["SubnetIds"]
    )
    layers = dev.resources("Cluster", "AWS::Lambda::LayerVersion")
    assert any("kubectl" in layer["Properties"].get("Description", "").lower() for layer in layers.values())


def test_only_configured_roles_get_access(dev: SynthesizedEnvironment) -> None:
    entries = dev.resources("Cluster", "AWS::EKS::AccessEntry").values()
    # dev names no admin or read-only roles: the kubectl provider's role is the only entry.
    assert len(entries) == 1


def test_admin_and_read_only_roles_get_their_policies(variant: SynthesizedEnvironment) -> None:
    entries = [entry["Properties"] for entry in variant.resources("Cluster", "AWS::EKS::AccessEntry").values()]
    by_principal = {entry["PrincipalArn"]: entry for entry in entries if isinstance(entry["PrincipalArn"], str)}
    admin = by_principal["arn:aws:iam::111122223333:role/platform-admin"]
    viewer = by_principal["arn:aws:iam::111122223333:role/oncall-viewer"]
    assert ":cluster-access-policy/AmazonEKSClusterAdminPolicy" in json.dumps(admin["AccessPolicies"][0]["PolicyArn"])
    assert ":cluster-access-policy/AmazonEKSViewPolicy" in json.dumps(viewer["AccessPolicies"][0]["PolicyArn"])
    assert admin["AccessPolicies"][0]["AccessScope"] == {"Type": "cluster"}


def test_managed_addons_are_pinned_from_config(dev: SynthesizedEnvironment) -> None:
    addons = {
        a["Properties"]["AddonName"]: a["Properties"] for a in dev.resources("Cluster", "AWS::EKS::Addon").values()
    }
    versions = AddonVersions()
    assert {name: props["AddonVersion"] for name, props in addons.items()} == {
        "vpc-cni": versions.vpc_cni,
        "coredns": versions.coredns,
        "kube-proxy": versions.kube_proxy,
        "eks-pod-identity-agent": versions.eks_pod_identity_agent,
        "aws-ebs-csi-driver": versions.aws_ebs_csi_driver,
        "amazon-cloudwatch-observability": versions.amazon_cloudwatch_observability,
    }


@pytest.mark.parametrize(
    ("addon", "service_account", "policy"),
    [
        ("aws-ebs-csi-driver", "ebs-csi-controller-sa", "AmazonEBSCSIDriverPolicy"),
        ("amazon-cloudwatch-observability", "cloudwatch-agent", "CloudWatchAgentServerPolicy"),
    ],
)
def test_addons_that_call_aws_use_pod_identity(
    dev: SynthesizedEnvironment, addon: str, service_account: str, policy: str
) -> None:
    resources = dev.template_json("Cluster")["Resources"]
    [props] = [
        a["Properties"]
        for a in dev.resources("Cluster", "AWS::EKS::Addon").values()
        if a["Properties"]["AddonName"] == addon
    ]
    [association] = props["PodIdentityAssociations"]
    assert association["ServiceAccount"] == service_account
    role = resources[association["RoleArn"]["Fn::GetAtt"][0]]["Properties"]
    trust = role["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert sorted(trust["Action"]) == ["sts:AssumeRole", "sts:TagSession"]
    assert policy in json.dumps(role["ManagedPolicyArns"])


def test_no_irsa_oidc_provider(dev: SynthesizedEnvironment) -> None:
    dev.template("Cluster").resource_count_is("Custom::AWSCDKOpenIdConnectProvider", 0)
    dev.template("Cluster").resource_count_is("AWS::IAM::OIDCProvider", 0)


def test_graviton_pools_are_arm64_al2023(dev: SynthesizedEnvironment) -> None:
    groups = _nodegroups(dev)
    assert groups["system"]["AmiType"] == "AL2023_ARM_64_STANDARD"
    assert groups["system"]["InstanceTypes"] == ["m7g.large"]
    assert groups["system"]["ScalingConfig"] == {"MinSize": 2, "DesiredSize": 2, "MaxSize": 4}
    assert groups["general"]["AmiType"] == "AL2023_ARM_64_STANDARD"
    assert groups["general"]["InstanceTypes"] == ["c7g.xlarge"]
    for name in ("system", "general"):
        assert "Taints" not in groups[name]
        assert groups[name]["Labels"] == {"tessera.dev/pool": name, "tessera.dev/accelerator": "cpu"}


def test_system_pool_spans_every_private_subnet(dev: SynthesizedEnvironment) -> None:
    assert len(_nodegroups(dev)["system"]["Subnets"]) == 3


def test_neuron_pools_use_the_neuron_ami_string_taint_and_labels(dev: SynthesizedEnvironment) -> None:
    groups = _nodegroups(dev)
    for name, accelerator in (("trainium", "trainium"), ("inferentia", "inferentia")):
        group = groups[name]
        assert group["AmiType"] == NEURON_AMI_TYPE == "AL2023_x86_64_NEURON"
        assert group["Taints"] == [{"Key": "aws.amazon.com/neuron", "Value": "true", "Effect": "NO_SCHEDULE"}]
        assert group["Labels"] == {"tessera.dev/pool": name, "tessera.dev/accelerator": accelerator}
        assert group["ScalingConfig"]["MinSize"] == 0
    assert groups["trainium"]["CapacityType"] == "ON_DEMAND"
    assert groups["inferentia"]["CapacityType"] == "SPOT"
    assert groups["inferentia"]["InstanceTypes"] == ["inf2.xlarge", "inf2.8xlarge"]


def test_every_pool_requires_imdsv2_repairs_itself_and_updates_gradually(dev: SynthesizedEnvironment) -> None:
    expected_hops = {"system": 2, "general": 1, "trainium": 1, "inferentia": 1}
    for name, group in _nodegroups(dev).items():
        data = _launch_template(dev, group)
        assert data["MetadataOptions"] == {"HttpTokens": "required", "HttpPutResponseHopLimit": expected_hops[name]}
        assert "UserData" not in data
        assert group["NodeRepairConfig"] == {"Enabled": True}
        assert group["UpdateConfig"] == {"MaxUnavailable": 1}


def test_root_volumes_are_encrypted_gp3_sized_for_model_caches(dev: SynthesizedEnvironment) -> None:
    sizes = {"system": 50, "general": 50, "trainium": 500, "inferentia": 200}
    for name, group in _nodegroups(dev).items():
        [device] = _launch_template(dev, group)["BlockDeviceMappings"]
        assert device["Ebs"] == {
            "VolumeSize": sizes[name],
            "VolumeType": "gp3",
            "Encrypted": True,
            "DeleteOnTermination": True,
        }


def _asg_tags(env: SynthesizedEnvironment) -> dict[str, dict[str, str]]:
    """The tags each pool's AwsCustomResource puts on its Auto Scaling group, by pool label."""
    found: dict[str, dict[str, str]] = {}
    for resource in env.resources("Cluster", "Custom::AWS").values():
        create = resource["Properties"]["Create"]
        text = (
            create
            if isinstance(create, str)
            else "".join(p if isinstance(p, str) else "<ref>" for p in create["Fn::Join"][1])
        )
        if '"action":"createOrUpdateTags"' not in text:
            continue
        tags = {tag["Key"]: tag["Value"] for tag in json.loads(text)["parameters"]["Tags"]}
        found[tags[f"{AUTOSCALER_TEMPLATE_PREFIX}/label/tessera.dev/pool"]] = tags
    return found


def test_autoscaler_tags_on_every_pool(dev: SynthesizedEnvironment) -> None:
    tags = _asg_tags(dev)
    assert set(tags) == {"system", "general", "trainium", "inferentia"}
    assert tags["general"][f"{AUTOSCALER_TEMPLATE_PREFIX}/label/tessera.dev/accelerator"] == "cpu"
    assert not any("/taint/" in key for key in tags["general"])


@pytest.mark.parametrize(("pool", "instance_type"), [("trainium", "trn1.2xlarge"), ("inferentia", "inf2.xlarge")])
def test_autoscaler_tags_match_the_instance_table(dev: SynthesizedEnvironment, pool: str, instance_type: str) -> None:
    spec = NEURON_INSTANCE_TYPES[instance_type]
    tags = _asg_tags(dev)[pool]
    assert tags[f"{AUTOSCALER_TEMPLATE_PREFIX}/resources/aws.amazon.com/neuroncore"] == str(spec.cores)
    assert tags[f"{AUTOSCALER_TEMPLATE_PREFIX}/resources/aws.amazon.com/neuron"] == str(spec.chips)
    assert tags[f"{AUTOSCALER_TEMPLATE_PREFIX}/taint/aws.amazon.com/neuron"] == "true:NoSchedule"
    assert tags[f"{AUTOSCALER_TEMPLATE_PREFIX}/label/tessera.dev/accelerator"] == spec.accelerator


def test_autoscaler_tags_of_prod_pools_follow_their_instance_types(prod: SynthesizedEnvironment) -> None:
    tags = _asg_tags(prod)
    assert tags["trainium"][f"{AUTOSCALER_TEMPLATE_PREFIX}/resources/aws.amazon.com/neuroncore"] == "32"
    assert tags["trainium"][f"{AUTOSCALER_TEMPLATE_PREFIX}/resources/aws.amazon.com/neuron"] == "16"
    # A pool of mixed sizes advertises its smallest node, so a scale-up never overpromises.
    assert tags["inferentia"][f"{AUTOSCALER_TEMPLATE_PREFIX}/resources/aws.amazon.com/neuroncore"] == "12"


def test_exactly_one_neuron_device_plugin(dev: SynthesizedEnvironment) -> None:
    neuron_charts = [
        release
        for release in _helm_releases(dev).values()
        if release["Repository"].startswith("oci://public.ecr.aws/neuron/")
    ]
    assert len(neuron_charts) == 1
    [chart] = neuron_charts
    assert chart["Version"] == "1.10.0"
    values = json.loads(chart["Values"])
    assert values["devicePlugin"]["enabled"] is True
    assert values["scheduler"]["enabled"] is True
    # CDK's own device-plugin manifest (added by add_nodegroup_capacity) must not exist anywhere.
    for env_template in dev.template_paths:
        assert "neuron-device-plugin" not in env_template.read_text()


def test_platform_charts_are_pinned_and_run_on_the_system_pool(dev: SynthesizedEnvironment) -> None:
    releases = _helm_releases(dev)
    assert {name: release["Version"] for name, release in releases.items()} == {
        "neuron": "1.10.0",
        "aws-load-balancer-controller": "3.5.0",
        "metrics-server": "3.13.1",
        "cluster-autoscaler": "9.59.0",
    }
    for name in ("aws-load-balancer-controller", "metrics-server", "cluster-autoscaler"):
        values = json.loads(_values_text(releases[name]))
        assert values["nodeSelector"] == {"tessera.dev/pool": "system", "kubernetes.io/arch": "arm64"}
        assert "tolerations" not in values  # nothing but the device plugin tolerates the Neuron taint
    neuron = json.loads(releases["neuron"]["Values"])
    assert neuron["scheduler"]["nodeSelector"]["tessera.dev/pool"] == "system"
    assert neuron["scheduler"]["customScheduler"]["nodeSelector"]["tessera.dev/pool"] == "system"


def test_autoscaler_image_follows_the_kubernetes_version(dev: SynthesizedEnvironment) -> None:
    values = json.loads(_values_text(_helm_releases(dev)["cluster-autoscaler"]))
    assert values["image"]["tag"] == "v1.34.5"
    assert values["autoDiscovery"]["clusterName"] == "<ref>"


def test_load_balancer_controller_gets_cluster_region_and_vpc(dev: SynthesizedEnvironment) -> None:
    release = _helm_releases(dev)["aws-load-balancer-controller"]
    parts = release["Values"]["Fn::Join"][1]
    assert {"Ref": "AWS::Region"} in parts
    assert any("Fn::GetStackOutput" in json.dumps(part) or "Fn::ImportValue" in json.dumps(part) for part in parts)
    assert '"clusterName":"' in "".join(p for p in parts if isinstance(p, str))


def test_controllers_use_pod_identity_associations(dev: SynthesizedEnvironment) -> None:
    associations = {
        a["Properties"]["ServiceAccount"]: a["Properties"]
        for a in dev.resources("Cluster", "AWS::EKS::PodIdentityAssociation").values()
    }
    assert set(associations) == {"aws-load-balancer-controller", "cluster-autoscaler"}
    assert all(a["Namespace"] == "kube-system" for a in associations.values())


def test_load_balancer_controller_role_carries_the_upstream_policy(dev: SynthesizedEnvironment) -> None:
    from stacks.cluster.platform_charts import load_lbc_policy

    def actions(statements: list[dict]) -> set[str]:
        return {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}

    [policy] = [
        p["Properties"]
        for p in dev.resources("Cluster", "AWS::IAM::Policy").values()
        if "LoadBalancerControllerServiceAccountRole" in json.dumps(p["Properties"]["Roles"])
    ]
    assert actions(policy["PolicyDocument"]["Statement"]) == actions(load_lbc_policy()["Statement"])


def test_load_balancer_controller_policy_file_is_checksummed(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stacks.cluster import platform_charts

    tampered = tmp_path / "policy.json"
    tampered.write_text('{"Version": "2012-10-17", "Statement": []}')
    monkeypatch.setattr(platform_charts, "LBC_POLICY_FILE", tampered)
    with pytest.raises(ValueError, match="does not match the reviewed"):
        platform_charts.load_lbc_policy()


def test_autoscaler_may_only_scale_groups_it_owns(dev: SynthesizedEnvironment) -> None:
    dev.template("Cluster").has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Sid": "ScaleOwnNodeGroups",
                                "Condition": {
                                    "StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/tessera-dev": "owned"}
                                },
                            }
                        )
                    ]
                )
            }
        },
    )


def test_cluster_outputs_and_parameters(dev: SynthesizedEnvironment) -> None:
    template = dev.template("Cluster")
    outputs = template.to_json()["Outputs"]
    command = outputs["UpdateKubeconfigCommand"]["Value"]["Fn::Join"][1]
    assert command[0].startswith("aws eks update-kubeconfig --name ")
    for name in ("name", "arn", "endpoint", "security-group-id", "node-role-arn", "kubectl-role-arn"):
        template.has_resource_properties("AWS::SSM::Parameter", {"Name": f"/tessera/dev/cluster/{name}"})
    assert {"ClusterName", "ClusterEndpoint", "ClusterKubectlRoleArn"} <= outputs.keys()


def test_cluster_template_stays_well_under_cloudformation_limits(dev: SynthesizedEnvironment) -> None:
    path = dev.outdir / "Tessera-dev-Cluster.template.json"
    size = path.stat().st_size
    resources = len(dev.template_json("Cluster")["Resources"])
    print(f"Cluster template: {size} bytes ({size / 1_048_576:.1%} of 1 MB)")
    print(f"Cluster template: {resources} resources ({resources / 500:.0%} of 500)")
    assert size < 0.5 * 1_048_576
    assert resources < 250


def test_efa_pool_has_interfaces_placement_group_and_one_zone(variant: SynthesizedEnvironment) -> None:
    training = _nodegroups(variant)["training"]
    data = _launch_template(variant, training)
    interfaces = data["NetworkInterfaces"]
    assert len(interfaces) == NEURON_INSTANCE_TYPES["trn1n.32xlarge"].efa_interfaces == 16
    assert all(interface["InterfaceType"] == "efa" for interface in interfaces)
    assert [interface["NetworkCardIndex"] for interface in interfaces] == list(range(16))
    assert interfaces[0]["DeviceIndex"] == 0
    assert "PlacementGroup" in json.dumps(data["Placement"]["GroupName"])
    [group] = variant.resources("Cluster", "AWS::EC2::PlacementGroup").values()
    assert group["Properties"]["Strategy"] == "cluster"
    assert len(training["Subnets"]) == 1


def test_capacity_block_pool_targets_its_reservation(variant: SynthesizedEnvironment) -> None:
    reserved = _nodegroups(variant)["reserved"]
    assert reserved["CapacityType"] == "CAPACITY_BLOCK"
    data = _launch_template(variant, reserved)
    assert data["InstanceMarketOptions"] == {"MarketType": "capacity-block"}
    assert data["CapacityReservationSpecification"] == {
        "CapacityReservationTarget": {"CapacityReservationId": "cr-0123456789abcdef0"}
    }


def test_trn2_pool_advertises_logical_cores(variant: SynthesizedEnvironment) -> None:
    tags = _asg_tags(variant)["reserved"]
    assert tags[f"{AUTOSCALER_TEMPLATE_PREFIX}/resources/aws.amazon.com/neuroncore"] == "64"
    assert tags[f"{AUTOSCALER_TEMPLATE_PREFIX}/resources/aws.amazon.com/neuron"] == "16"
