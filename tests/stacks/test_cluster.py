"""Cluster stack: EKS control plane, access, add-ons, node pools and platform charts.

cdk-nag's EKS rules only look at the old aws_eks cluster class, so endpoint access, control-plane
logging and secrets encryption are asserted here.
"""

from __future__ import annotations

import json

import pytest

from stacks.config.cluster import AddonVersions
from stacks.config.instance_types import NEURON_INSTANCE_TYPES
from tests.kubernetes_objects import MANIFEST_RESOURCE, TOKEN_PLACEHOLDER, manifest_objects
from tests.synth import SynthesizedEnvironment


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
    assert len(dev.resources("Cluster", "AWS::EKS::Nodegroup")) == 1  # system; Karpenter makes the rest


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
    # dev names no admin or read-only roles: the kubectl provider's role and Karpenter's node role only.
    assert sorted(entry["Properties"].get("Type", "STANDARD") for entry in entries) == ["EC2_LINUX", "STANDARD"]


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
        "amazon-cloudwatch-observability": versions.amazon_cloudwatch_observability,
        "eks-node-monitoring-agent": versions.eks_node_monitoring_agent,
    }


@pytest.mark.parametrize(
    ("addon", "service_account", "policy"),
    [
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


def test_one_managed_node_group_for_the_system_pool_with_a_fixed_size(dev: SynthesizedEnvironment) -> None:
    """Issue 12 case 3: no pool that something else scales has a CloudFormation-owned DesiredSize."""
    groups = _nodegroups(dev)
    assert set(groups) == {"system"}
    system = groups["system"]
    assert system["AmiType"] == "AL2023_ARM_64_STANDARD"
    assert system["InstanceTypes"] == ["m7g.large"]
    assert system["ScalingConfig"] == {"MinSize": 2, "DesiredSize": 2, "MaxSize": 2}
    assert system["Taints"] == [{"Key": "CriticalAddonsOnly", "Value": "true", "Effect": "NO_SCHEDULE"}]
    assert system["Labels"] == {"tessera.dev/pool": "system", "tessera.dev/accelerator": "cpu"}
    assert len(system["Subnets"]) == 3


def test_no_cluster_autoscaler_and_no_asg_tag_writer(dev: SynthesizedEnvironment) -> None:
    """Issue 12 cases 4-6: the Cluster Autoscaler and its node-template tags are gone."""
    assert "cluster-autoscaler" not in _helm_releases(dev)
    assert dev.resources("Cluster", "Custom::AWS") == {}
    assert "k8s.io/cluster-autoscaler" not in json.dumps(dev.template_json("Cluster"))


def test_system_nodes_require_imdsv2_repair_themselves_and_update_gradually(dev: SynthesizedEnvironment) -> None:
    for group in _nodegroups(dev).values():
        data = _launch_template(dev, group)
        assert data["MetadataOptions"] == {"HttpTokens": "required", "HttpPutResponseHopLimit": 1}
        assert "UserData" not in data
        assert group["NodeRepairConfig"] == {"Enabled": True}
        assert group["UpdateConfig"] == {"MaxUnavailable": 1}
        [device] = data["BlockDeviceMappings"]
        assert device["Ebs"] == {"VolumeSize": 50, "VolumeType": "gp3", "Encrypted": True, "DeleteOnTermination": True}


def _karpenter_objects(env: SynthesizedEnvironment) -> dict[tuple[str, str], dict]:
    return {
        (obj["kind"], obj["metadata"]["name"]): obj
        for obj in manifest_objects(env, "Cluster")
        if obj["apiVersion"].startswith("karpenter.")
    }


def test_every_pool_but_system_is_a_karpenter_node_pool(dev: SynthesizedEnvironment) -> None:
    objects = _karpenter_objects(dev)
    names = {"general", "trainium", "inferentia", "gpu"}
    assert {name for kind, name in objects if kind == "NodePool"} == names
    assert {name for kind, name in objects if kind == "EC2NodeClass"} == names
    node_class = objects[("EC2NodeClass", "trainium")]["spec"]
    assert node_class["role"] == TOKEN_PLACEHOLDER  # the Karpenter node role, resolved at deploy time
    assert node_class["securityGroupSelectorTerms"] == [{"id": TOKEN_PLACEHOLDER}]
    assert node_class["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "tessera-dev"}}]


def test_private_subnets_carry_the_karpenter_discovery_tag(dev: SynthesizedEnvironment) -> None:
    tagged = [
        subnet
        for subnet in dev.resources("Network", "AWS::EC2::Subnet").values()
        if {"Key": "karpenter.sh/discovery", "Value": "tessera-dev"} in subnet["Properties"]["Tags"]
    ]
    assert len(tagged) == 3
    assert all({"Key": "aws-cdk:subnet-name", "Value": "private"} in s["Properties"]["Tags"] for s in tagged)


def test_karpenter_chart_and_crds_are_pinned_from_config(dev: SynthesizedEnvironment) -> None:
    releases = _helm_releases(dev)
    crds, chart = releases["karpenter-crd"], releases["karpenter"]
    assert (crds["Version"], chart["Version"]) == ("1.14.1", "1.14.1")
    assert crds["Repository"] == "oci://public.ecr.aws/karpenter/karpenter-crd"
    assert chart["Repository"] == "oci://public.ecr.aws/karpenter/karpenter"
    # CRDs come (and are upgraded) with the karpenter-crd release, which the main chart waits for.
    assert "SkipCrds" not in chart  # CDK's handler would ignore it (tests/deploy/test_kubectl_handler.py)
    values = json.loads(_values_text(chart))
    assert values["settings"]["featureGates"] == {"nodeRepair": True}
    assert values["settings"]["clusterName"] == "tessera-dev"
    assert values["settings"]["interruptionQueue"] == "<ref>"
    assert values["nodeSelector"] == {"tessera.dev/pool": "system", "kubernetes.io/arch": "arm64"}
    assert values["dnsPolicy"] == "Default"


def _logical_id(env: SynthesizedEnvironment, resource_type: str, predicate) -> str:
    [logical_id] = [lid for lid, res in env.resources("Cluster", resource_type).items() if predicate(res["Properties"])]
    return logical_id


def test_karpenter_starts_after_its_credentials_and_crds(dev: SynthesizedEnvironment) -> None:
    """Issue 12 case 1 for the controller: the association and policies exist before its pods."""
    resources = dev.template_json("Cluster")["Resources"]
    chart = _logical_id(dev, "Custom::AWSCDK-EKS-HelmChart", lambda p: p["Release"] == "karpenter")
    crds = _logical_id(dev, "Custom::AWSCDK-EKS-HelmChart", lambda p: p["Release"] == "karpenter-crd")
    association = _logical_id(dev, "AWS::EKS::PodIdentityAssociation", lambda p: p["ServiceAccount"] == "karpenter")
    policies = [
        lid
        for lid, res in dev.resources("Cluster", "AWS::IAM::ManagedPolicy").items()
        if "Karpenter controller" in res["Properties"].get("Description", "")
    ]
    assert len(policies) == 6
    assert {crds, association, *policies} <= set(resources[chart]["DependsOn"])
    pools = _logical_id(dev, MANIFEST_RESOURCE, lambda p: "NodePool" in json.dumps(p["Manifest"]))
    assert {crds, chart} <= set(resources[pools]["DependsOn"])


def test_karpenter_controller_policy_is_karpenters_own(dev: SynthesizedEnvironment) -> None:
    from stacks.cluster.karpenter_policy import VARIABLES, controller_policies

    def actions(statements: list[dict]) -> set[str]:
        return {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}

    upstream = controller_policies({name: name for name in VARIABLES})
    deployed = {
        res["Properties"]["Description"].split(": ")[1].split(" ")[0]: res["Properties"]["PolicyDocument"]
        for res in dev.resources("Cluster", "AWS::IAM::ManagedPolicy").values()
        if "Karpenter controller" in res["Properties"].get("Description", "")
    }
    assert set(deployed) == set(upstream)
    for name, document in upstream.items():
        assert actions(deployed[name]["Statement"]) == actions(document["Statement"])
    text = json.dumps(deployed["NodeLifecyclePolicy"])
    assert "aws:ResourceTag/kubernetes.io/cluster/tessera-dev" in text


def test_karpenter_policy_template_is_checksummed(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stacks.cluster import karpenter_policy

    tampered = tmp_path / "template.yaml"
    tampered.write_text("Resources: {}")
    monkeypatch.setattr(karpenter_policy, "TEMPLATE_FILE", tampered)
    with pytest.raises(ValueError, match="does not match the reviewed"):
        karpenter_policy.load_template()


def test_karpenter_node_role_joins_through_an_ec2_linux_access_entry(dev: SynthesizedEnvironment) -> None:
    entries = [e["Properties"] for e in dev.resources("Cluster", "AWS::EKS::AccessEntry").values()]
    [node_entry] = [e for e in entries if e.get("Type") == "EC2_LINUX"]
    role_id = node_entry["PrincipalArn"]["Fn::GetAtt"][0]
    assert "KarpenterNodeRole" in role_id
    role = dev.template_json("Cluster")["Resources"][role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    assert "AmazonEKSWorkerNodePolicy" in json.dumps(role["ManagedPolicyArns"])


def test_interruption_queue_is_encrypted_tls_only_and_fed_by_four_kinds_of_event(dev: SynthesizedEnvironment) -> None:
    [queue_id] = dev.resources("Cluster", "AWS::SQS::Queue")
    queue = dev.resources("Cluster", "AWS::SQS::Queue")[queue_id]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["MessageRetentionPeriod"] == 300
    [policy] = dev.resources("Cluster", "AWS::SQS::QueuePolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements
    )
    detail_types = {
        rule["Properties"]["EventPattern"]["detail-type"][0]
        for rule in dev.resources("Cluster", "AWS::Events::Rule").values()
        if rule["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    }
    assert {
        "EC2 Spot Instance Interruption Warning",
        "EC2 Instance Rebalance Recommendation",
        "EC2 Instance State-change Notification",
        "AWS Health Event",
    } <= detail_types


def test_node_monitoring_agent_feeds_node_repair(dev: SynthesizedEnvironment) -> None:
    """Issue 12 case 7: the agent sets AcceleratedHardwareReady; Karpenter's node repair gate is on."""
    addons = {a["Properties"]["AddonName"]: a for a in dev.resources("Cluster", "AWS::EKS::Addon").values()}
    assert addons["eks-node-monitoring-agent"]["Properties"]["AddonVersion"] == "v1.7.0-eksbuild.1"
    assert json.loads(_values_text(_helm_releases(dev)["karpenter"]))["settings"]["featureGates"]["nodeRepair"]


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
    # No dev service needs the scheduler extension (whole devices or one core), so it is off.
    assert values["scheduler"]["enabled"] is False
    # CDK's own device-plugin manifest (added by add_nodegroup_capacity) must not exist anywhere.
    for env_template in dev.template_paths:
        assert "neuron-device-plugin" not in env_template.read_text()


def test_platform_charts_are_pinned_and_run_on_the_system_pool(dev: SynthesizedEnvironment) -> None:
    releases = _helm_releases(dev)
    assert {name: release["Version"] for name, release in releases.items()} == {
        "neuron": "1.10.0",
        "aws-load-balancer-controller": "3.5.0",
        "metrics-server": "3.13.1",
        "karpenter-crd": "1.14.1",
        "karpenter": "1.14.1",
        "keda": "2.20.2",
        "nvidia-device-plugin": "0.20.0",
    }
    for name in ("aws-load-balancer-controller", "metrics-server", "keda"):
        values = json.loads(_values_text(releases[name]))
        assert values["nodeSelector"] == {"tessera.dev/pool": "system", "kubernetes.io/arch": "arm64"}
        # Only the system node group's taint: nothing but the device plugins tolerates the Neuron or GPU taint.
        assert values["tolerations"] == [{"key": "CriticalAddonsOnly", "operator": "Exists", "effect": "NoSchedule"}]


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
    assert set(associations) == {"aws-load-balancer-controller", "karpenter", "keda-operator"}
    assert {name: a["Namespace"] for name, a in associations.items()} == {
        "aws-load-balancer-controller": "kube-system",
        "karpenter": "kube-system",
        "keda-operator": "keda",  # the chart's own ServiceAccount, in its release namespace
    }


def test_load_balancer_controller_policy_file_is_checksummed(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stacks.cluster import platform_charts

    tampered = tmp_path / "policy.json"
    tampered.write_text('{"Version": "2012-10-17", "Statement": []}')
    monkeypatch.setattr(platform_charts, "LBC_POLICY_FILE", tampered)
    with pytest.raises(ValueError, match="does not match the reviewed"):
        platform_charts.load_lbc_policy()


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


def test_scheduler_extension_only_with_a_service_that_needs_it_on_an_x86_group(variant: SynthesizedEnvironment) -> None:
    """Issue 12 case 2: kube-scheduler matches the cluster's minor; the extension runs on x86 system nodes."""
    values = json.loads(_values_text(_helm_releases(variant)["neuron"]))
    scheduler = values["scheduler"]
    assert scheduler["enabled"] is True
    image = scheduler["customScheduler"]["image"]
    assert image["repository"] == "public.ecr.aws/eks-distro/kubernetes/kube-scheduler"
    assert image["tag"].startswith(f"v{variant.config.cluster.kubernetes_version}.")
    for placement in (scheduler, scheduler["customScheduler"]):
        assert placement["nodeSelector"] == {"tessera.dev/pool": "system-x86", "kubernetes.io/arch": "amd64"}
    groups = _nodegroups(variant)
    assert groups["system-x86"]["AmiType"] == "AL2023_x86_64_STANDARD"
    assert groups["system-x86"]["Taints"][0]["Key"] == "CriticalAddonsOnly"


def test_efa_device_plugin_only_where_a_pool_has_efa(
    dev: SynthesizedEnvironment, variant: SynthesizedEnvironment
) -> None:
    """Issue 12 case 8."""
    assert "aws-efa-k8s-device-plugin" not in _helm_releases(dev)
    efa = _helm_releases(variant)["aws-efa-k8s-device-plugin"]
    assert efa["Version"] == "v0.5.30"
    assert json.loads(_values_text(efa))["tolerations"] == [
        {"key": "aws.amazon.com/neuron", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    ]
    [group] = variant.resources("Cluster", "AWS::EC2::PlacementGroup").values()
    assert group["Properties"]["Strategy"] == "cluster"


def test_capacity_block_and_efa_pools_in_the_template(variant: SynthesizedEnvironment) -> None:
    """Issue 12 case 9, as deployed: the reservation's zone reaches the NodePool."""
    objects = _karpenter_objects(variant)
    requirements = {
        r["key"]: r["values"] for r in objects[("NodePool", "reserved")]["spec"]["template"]["spec"]["requirements"]
    }
    assert requirements["topology.kubernetes.io/zone"] == ["us-east-1a"]
    assert objects[("EC2NodeClass", "reserved")]["spec"]["capacityReservationSelectorTerms"] == [
        {"id": "cr-0123456789abcdef0"}
    ]
    assert NEURON_INSTANCE_TYPES["trn2.48xlarge"].has_instance_store
    assert objects[("EC2NodeClass", "reserved")]["spec"]["instanceStorePolicy"] == "RAID0"


def test_keda_comes_from_its_chart_repository_into_its_namespace(dev: SynthesizedEnvironment) -> None:
    keda = _helm_releases(dev)["keda"]
    assert (keda["Chart"], keda["Version"], keda["Repository"]) == (
        "keda",
        "2.20.2",
        "https://kedacore.github.io/charts",
    )
    assert keda["Namespace"] == "keda"
    # Only global keys: the fallback of the operator, metrics server and webhooks in chart 2.20.2's templates.
    assert set(json.loads(_values_text(keda))) == {"nodeSelector", "tolerations"}


def test_keda_operator_reads_cloudwatch_through_pod_identity(dev: SynthesizedEnvironment) -> None:
    resources = dev.template_json("Cluster")["Resources"]
    association_id = _logical_id(
        dev,
        "AWS::EKS::PodIdentityAssociation",
        lambda p: (p["Namespace"], p["ServiceAccount"]) == ("keda", "keda-operator"),
    )
    role_id = resources[association_id]["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    [policy] = [
        res["Properties"]
        for res in resources.values()
        if res["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in res["Properties"]["Roles"]
    ]
    # (and the Prometheus workspace, when a service declares metrics: tests/stacks/test_runtime_metrics_access.py)
    assert policy["PolicyDocument"]["Statement"][0] == {
        "Action": "cloudwatch:GetMetricData",
        "Effect": "Allow",
        "Resource": "*",
    }
    assert len(policy["PolicyDocument"]["Statement"]) == 1 + any(s.metrics for s in dev.config.services)
    policy_id = next(lid for lid, res in resources.items() if res.get("Properties") is policy)
    chart_id = _logical_id(dev, "Custom::AWSCDK-EKS-HelmChart", lambda p: p["Release"] == "keda")
    # Pod Identity only mutates pods created after the association exists.
    assert {association_id, policy_id} <= set(resources[chart_id]["DependsOn"])


def test_nvidia_device_plugin_only_where_a_gpu_pool_exists_and_only_on_gpu_nodes(
    dev: SynthesizedEnvironment, prod: SynthesizedEnvironment
) -> None:
    """Issue 15: the chart's own affinity wants Node Feature Discovery labels that no Tessera node has; it is
    replaced by the label Karpenter puts on GPU nodes, and only the GPU taint is tolerated."""
    assert "nvidia-device-plugin" not in _helm_releases(prod)  # prod has no GPU pool
    release = _helm_releases(dev)["nvidia-device-plugin"]
    assert (release["Chart"], release["Repository"], release["Version"]) == (
        "nvidia-device-plugin",
        "https://nvidia.github.io/k8s-device-plugin",
        "0.20.0",
    )
    assert release["Namespace"] == "kube-system"
    values = json.loads(_values_text(release))
    gpu_nodes = {"matchExpressions": [{"key": "tessera.dev/accelerator", "operator": "In", "values": ["gpu"]}]}
    assert values["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
        "nodeSelectorTerms": [gpu_nodes]
    }
    assert values["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
