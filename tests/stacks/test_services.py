"""Services stack: load balancer, target groups, weighted rules, security groups, Kubernetes objects."""

from __future__ import annotations

import json

import jsonschema
import pytest
from aws_cdk.assertions import Match

from stacks.config.observability import RUNTIME_SIGNALS
from tests.conftest import TLS_CERTIFICATE_ARN
from tests.kubernetes_objects import json_property, manifest_objects, manifest_text, track_objects
from tests.synth import SynthesizedEnvironment

SERVICES = ("assistant", "embeddings", "gateway")
OUTSIDE_GROUP = "Tessera public services load balancer"
INTERNAL_GROUP = "Tessera internal load balancer: calls between services"


def _target_groups(env: SynthesizedEnvironment) -> dict[str, dict]:
    return {
        logical_id: tg["Properties"]
        for logical_id, tg in env.resources("Services", "AWS::ElasticLoadBalancingV2::TargetGroup").items()
    }


def _rules(env: SynthesizedEnvironment) -> dict[str, dict]:
    """Listener rules by their path or host condition value."""
    rules = {}
    for rule in env.resources("Services", "AWS::ElasticLoadBalancingV2::ListenerRule").values():
        condition = rule["Properties"]["Conditions"][0]
        key = (condition.get("PathPatternConfig") or condition.get("HostHeaderConfig"))["Values"][0]
        rules[key] = rule["Properties"]
    return rules


def _load_balancers(env: SynthesizedEnvironment) -> dict[str, dict]:
    """ "outside" (LoadBalancer...) and "internal" (InternalLoadBalancer...) by their logical ids."""
    found = env.resources("Services", "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert len(found) == 2
    return {("internal" if lid.startswith("Internal") else "outside"): lb["Properties"] for lid, lb in found.items()}


def test_two_internal_load_balancers_in_dev_with_access_logs(dev: SynthesizedEnvironment) -> None:
    prefixes = {}
    for kind, props in _load_balancers(dev).items():
        assert props["Scheme"] == "internal"
        attributes = {a["Key"]: a["Value"] for a in props["LoadBalancerAttributes"]}
        assert attributes["access_logs.s3.enabled"] == "true"
        prefixes[kind] = attributes["access_logs.s3.prefix"]
        assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
        assert attributes["idle_timeout.timeout_seconds"] == "300"
        assert len(props["Subnets"]) == 3
    assert prefixes == {"outside": "alb", "internal": "alb-internal"}


def test_access_log_delivery_is_allowed_in_every_region(dev: SynthesizedEnvironment) -> None:
    template = dev.template_json("Services")
    assert "Elbv2AccountMap" in template["Mappings"]
    [policy] = dev.resources("Services", "AWS::S3::BucketPolicy").values()
    statements = {s.get("Sid"): s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    delivery = statements["LoadBalancerLogDelivery"]
    assert delivery["Principal"]["Service"] == "logdelivery.elasticloadbalancing.amazonaws.com"
    assert "Fn::If" in json.dumps(delivery["Principal"]["AWS"])
    assert delivery["Action"] == "s3:PutObject"


def _listeners_by_service(env: SynthesizedEnvironment) -> dict[str, dict]:
    """Service -> the listener holding its rule."""
    resources = env.template_json("Services")["Resources"]
    found = {}
    for rule in env.resources("Services", "AWS::ElasticLoadBalancingV2::ListenerRule").values():
        tags = {tag["Key"]: tag["Value"] for tag in rule["Properties"]["Tags"]}
        found[tags["tessera.dev/service"]] = resources[rule["Properties"]["ListenerArn"]["Ref"]]["Properties"]
    return found


def test_dev_listeners_are_http_with_a_404_default(dev: SynthesizedEnvironment) -> None:
    listeners = _listeners_by_service(dev)
    outside, internal = (
        next(lid for lid in dev.resources("Services", "AWS::ElasticLoadBalancingV2::LoadBalancer") if kind(lid))
        for kind in (lambda lid: not lid.startswith("Internal"), lambda lid: lid.startswith("Internal"))
    )
    # The public gateway on the outside listener; each model service on the internal one, at its own port.
    assert {name: (props["LoadBalancerArn"]["Ref"], props["Port"]) for name, props in listeners.items()} == {
        "gateway": (outside, 80),
        "assistant": (internal, 8000),
        "embeddings": (internal, 8080),
    }
    for props in listeners.values():
        assert props["Protocol"] == "HTTP"
        assert props["DefaultActions"][0]["Type"] == "fixed-response"
        assert props["DefaultActions"][0]["FixedResponseConfig"]["StatusCode"] == "404"


def test_https_listeners_when_a_certificate_is_configured(variant: SynthesizedEnvironment) -> None:
    listeners = [
        item["Properties"] for item in variant.resources("Services", "AWS::ElasticLoadBalancingV2::Listener").values()
    ]
    https = [listener for listener in listeners if listener["Protocol"] == "HTTPS"]
    redirect = [listener for listener in listeners if listener["Protocol"] == "HTTP"]
    assert sorted(listener["Port"] for listener in https) == [443, 8000, 8080, 8100]
    for listener in https:
        assert listener["Certificates"] == [{"CertificateArn": TLS_CERTIFICATE_ARN}]
        assert listener["SslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    [only_redirect] = redirect
    assert only_redirect["Port"] == 80
    assert only_redirect["DefaultActions"][0]["Type"] == "redirect"
    schemes = {kind: props["Scheme"] for kind, props in _load_balancers(variant).items()}
    assert schemes == {"outside": "internet-facing", "internal": "internal"}
    group = _load_balancer_group(variant)
    ingress = sorted((r["CidrIp"], r["FromPort"]) for r in group["Properties"]["SecurityGroupIngress"])
    assert ingress == [("198.51.100.0/24", 80), ("198.51.100.0/24", 443)]


def test_ip_target_group_per_service_and_track(dev: SynthesizedEnvironment) -> None:
    groups = _target_groups(dev)
    assert len(groups) == 2 * len(SERVICES)
    for logical_id, group in groups.items():
        assert group["TargetType"] == "ip"
        assert group["Protocol"] == "HTTP"
        attributes = {a["Key"]: a["Value"] for a in group["TargetGroupAttributes"]}
        assert attributes["deregistration_delay.timeout_seconds"] == "30"
        assert attributes["slow_start.duration_seconds"] == "60"
        assert group["HealthCheckPath"] in ("/health", "/healthz", "/ready"), logical_id
        assert group["Matcher"] == {"HttpCode": "200"}


@pytest.mark.parametrize("service", SERVICES)
def test_rule_forwards_stable_100_canary_0(dev: SynthesizedEnvironment, service: str) -> None:
    rule = _rules(dev)[f"/v1/{service}"]
    assert rule["Conditions"][0]["PathPatternConfig"]["Values"] == [f"/v1/{service}", f"/v1/{service}/*"]
    [action] = rule["Actions"]
    assert action["Type"] == "forward"
    weights = {tg["TargetGroupArn"]["Ref"]: tg["Weight"] for tg in action["ForwardConfig"]["TargetGroups"]}
    pascal = service.capitalize()
    assert weights == {
        next(k for k in weights if k.startswith(f"{pascal}Stable")): 100,
        next(k for k in weights if k.startswith(f"{pascal}Canary")): 0,
    }


def test_rule_priorities_are_distinct(dev: SynthesizedEnvironment) -> None:
    priorities = [rule["Priority"] for rule in _rules(dev).values()]
    assert len(set(priorities)) == len(priorities) == 3


def test_no_ingress_objects_manage_these_services(dev: SynthesizedEnvironment) -> None:
    kinds = {obj["kind"] for obj in manifest_objects(dev, "Services")}
    assert "Ingress" not in kinds
    assert "TargetGroupBinding" in kinds


def test_only_its_load_balancer_reaches_a_service_s_pods(dev: SynthesizedEnvironment) -> None:
    groups = {
        g["Properties"]["GroupDescription"]: lid
        for lid, g in dev.resources("Services", "AWS::EC2::SecurityGroup").items()
    }
    rules = [
        r["Properties"]
        for r in dev.resources("Services", "AWS::EC2::SecurityGroupIngress").values()
        if "Fn::GetStackOutput" in json.dumps(r["Properties"]["GroupId"])  # into the pods' group
        and r["Properties"]["FromPort"] != 443  # the track owner's own way to the Kubernetes API
    ]
    outside = {"Fn::GetAtt": [groups[OUTSIDE_GROUP], "GroupId"]}
    internal = {"Fn::GetAtt": [groups[INTERNAL_GROUP], "GroupId"]}
    assert sorted((r["FromPort"], json.dumps(r["SourceSecurityGroupId"])) for r in rules) == sorted(
        [(8000, json.dumps(internal)), (8080, json.dumps(internal)), (8081, json.dumps(outside))]
    )
    for rule in rules:
        assert rule["FromPort"] == rule["ToPort"]
        assert "Fn::GetStackOutput" in json.dumps(rule["GroupId"]) or "Fn::ImportValue" in json.dumps(rule["GroupId"])


def test_outside_load_balancer_admits_clients_from_the_vpc_only(dev: SynthesizedEnvironment) -> None:
    ingress = _load_balancer_group(dev)["Properties"]["SecurityGroupIngress"]
    assert len(ingress) == 1
    assert ingress[0]["FromPort"] == 80
    assert "0.0.0.0/0" not in json.dumps(ingress)


def test_internal_load_balancer_admits_only_pods_at_the_callees_ports(dev: SynthesizedEnvironment) -> None:
    [group] = [
        lid
        for lid, g in dev.resources("Services", "AWS::EC2::SecurityGroup").items()
        if g["Properties"]["GroupDescription"] == INTERNAL_GROUP
    ]
    assert "SecurityGroupIngress" not in dev.resources("Services", "AWS::EC2::SecurityGroup")[group]["Properties"]
    ingress = [
        r["Properties"]
        for r in dev.resources("Services", "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [group, "GroupId"]}
    ]
    assert sorted(r["FromPort"] for r in ingress) == [8000, 8080]
    for rule in ingress:
        assert set(rule) == {"Description", "FromPort", "GroupId", "IpProtocol", "SourceSecurityGroupId", "ToPort"}
        assert "ClusterSecurityGroupId" in json.dumps(rule["SourceSecurityGroupId"])


@pytest.mark.parametrize("service", SERVICES)
def test_model_reader_may_only_read_its_own_prefix(dev: SynthesizedEnvironment, service: str) -> None:
    resources = dev.template_json("Services")["Resources"]
    [association] = [
        a["Properties"]
        for a in dev.resources("Services", "AWS::EKS::PodIdentityAssociation").values()
        if a["Properties"]["ServiceAccount"] == service
    ]
    assert association["Namespace"] == "inference"
    role_id = association["RoleArn"]["Fn::GetAtt"][0]
    [policy] = [
        p["Properties"]
        for p in resources.values()
        if p["Type"] == "AWS::IAM::Policy" and p["Properties"]["Roles"] == [{"Ref": role_id}]
    ]
    statements = policy["PolicyDocument"]["Statement"]
    text = json.dumps(statements)
    assert f"/models/{service}/*" in text
    other = [name for name in SERVICES if name != service]
    assert not any(f"/models/{name}/" in text for name in other)
    listing = next(s for s in statements if s["Action"] == "s3:ListBucket")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [f"models/{service}/*"]}}
    assert f"/registered/{service}/*" in text
    assert not any(f"/registered/{name}/" in text for name in other)
    actions = {
        action for s in statements for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "kms:Decrypt"} == actions


def test_services_objects_are_kubernetes_manifests_in_this_stack(dev: SynthesizedEnvironment) -> None:
    manifests = dev.resources("Services", "Custom::AWSCDK-EKS-KubernetesResource")
    # the namespace, the image admission policy, the KEDA objects, the track owner's Role, then one per service
    assert len(manifests) == 4 + len(SERVICES)
    dev.template("Cluster").resource_count_is("AWS::ElasticLoadBalancingV2::TargetGroup", 0)


def test_services_objects_pass_validation_after_synthesis(dev: SynthesizedEnvironment) -> None:
    import kubernetes_validate

    from tests.stacks.test_scaling_objects import SCHEMAS as KEDA_SCHEMAS

    objects = manifest_objects(dev, "Services")
    for obj in objects:
        if obj["kind"] in KEDA_SCHEMAS:
            jsonschema.validate(obj, KEDA_SCHEMAS[obj["kind"]])
        elif obj["kind"] != "TargetGroupBinding":
            kubernetes_validate.validate(obj, "1.34", strict=True)
    # One TriggerAuthentication for CloudWatch triggers, and one for Prometheus triggers when a service scales on
    # its runtime's queue or KV-cache.
    runtime = any(s.scaling and s.scaling.signal in RUNTIME_SIGNALS for s in dev.config.services)
    assert sorted(obj["kind"] for obj in objects if obj["kind"] in KEDA_SCHEMAS) == [
        "ScaledObject",
        "ScaledObject",
        *["TriggerAuthentication"] * (1 + runtime),
    ]


def test_scaled_objects_read_the_stable_target_group_in_the_deployed_region(dev: SynthesizedEnvironment) -> None:
    resources = dev.template_json("Services")["Resources"]
    [tracks] = [
        res["Properties"]
        for res in resources.values()
        if res["Type"] == "Custom::TesseraServiceTracks" and res["Properties"]["Service"] == "gateway"
    ]
    [scaled] = [obj for obj in json_property(tracks["Objects"]) if obj["kind"] == "ScaledObject"]
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["metadata"]["awsRegion"] == {"Ref": "AWS::Region"}
    stable = next(lid for lid in resources if lid.startswith("GatewayStableTargetGroup"))
    [load_balancer] = [  # the gateway is public: the outside load balancer routes it
        lid
        for lid, res in resources.items()
        if res["Type"] == "AWS::ElasticLoadBalancingV2::LoadBalancer" and lid.startswith("LoadBalancer")
    ]
    assert trigger["metadata"]["dimensionValue"] == {
        "Fn::Join": [
            "",
            [
                {"Fn::GetAtt": [stable, "TargetGroupFullName"]},
                ";",
                {"Fn::GetAtt": [load_balancer, "LoadBalancerFullName"]},
            ],
        ]
    }


def test_rollout_engine_finds_what_it_needs(dev: SynthesizedEnvironment) -> None:
    template = dev.template("Services")
    for service in SERVICES:
        for name in ("listener-rule-arn", "stable-target-group-arn", "canary-target-group-arn"):
            template.has_resource_properties("AWS::SSM::Parameter", {"Name": f"/tessera/dev/services/{service}/{name}"})
        for track in ("stable", "canary"):
            template.has_resource_properties(
                "AWS::SSM::Parameter",
                {"Name": f"/tessera/dev/services/{service}/{track}-deployment", "Value": f"{service}-{track}"},
            )
    template.has_resource_properties(
        "AWS::SSM::Parameter", {"Name": "/tessera/dev/services/namespace", "Value": "inference"}
    )
    outputs = template.to_json()["Outputs"]
    assert "ServicesNamespace" in outputs
    # Per-service values are parameters only: outputs are a per-template quota (stacks/common/published_values.py).
    assert not [name for name in outputs if name.startswith(("ServicesAssistant", "ServicesGateway"))]


def _load_balancer_group(env: SynthesizedEnvironment) -> dict:
    [group] = [
        g
        for g in env.resources("Services", "AWS::EC2::SecurityGroup").values()
        if g["Properties"]["GroupDescription"] == OUTSIDE_GROUP
    ]
    return group


def test_image_uri_names_the_configured_repository_and_tag(dev: SynthesizedEnvironment) -> None:
    images = {
        obj["metadata"]["name"]: obj["spec"]["template"]["spec"]["containers"][0]["image"]
        for obj in manifest_objects(dev, "Services")
        if obj["kind"] == "Deployment"
    }
    assert images["assistant-stable"].endswith("/tessera/dev/assistant:vllm-0.16.0-neuronx-sdk2.31.1")
    assert images["gateway-canary"].endswith("/tessera/dev/gateway:1.4.2")


def test_access_log_bucket_is_private_and_tls_only(dev: SynthesizedEnvironment) -> None:
    dev.template("Services").has_resource_properties(
        "AWS::S3::Bucket",
        {
            "PublicAccessBlockConfiguration": Match.object_like({"BlockPublicPolicy": True}),
            "LifecycleConfiguration": {"Rules": [Match.object_like({"ExpirationInDays": 30})]},
        },
    )


def test_each_services_objects_wait_for_its_pod_identity_and_role_policy(variant: SynthesizedEnvironment) -> None:
    """Issue 12 case 1: pods created before their association never get credentials."""
    resources = variant.template_json("Services")["Resources"]
    associations = {
        props["Properties"]["ServiceAccount"]: logical_id
        for logical_id, props in resources.items()
        if props["Type"] == "AWS::EKS::PodIdentityAssociation"
    }
    manifests = {
        logical_id: resource
        for logical_id, resource in resources.items()
        if resource["Type"] == "Custom::TesseraServiceTracks"
    }
    assert len(manifests) == len(variant.config.services)
    for service in variant.config.services:
        [(logical_id, manifest)] = [
            (lid, m)
            for lid, m in manifests.items()
            if f'"name":"{service.name}-stable"' in json.dumps(m).replace(" ", "").replace('\\"', '"')
        ]
        depends_on = set(manifest["DependsOn"])
        association = associations[service.name]
        role_id = resources[association]["Properties"]["RoleArn"]["Fn::GetAtt"][0]
        policies = {
            lid
            for lid, r in resources.items()
            if r["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in r["Properties"]["Roles"]
        }
        assert policies, f"{service.name}: its role has no policy"
        assert {association, role_id, *policies} <= depends_on, logical_id


def test_load_balancer_controller_chart_waits_for_its_policy(dev: SynthesizedEnvironment) -> None:
    resources = dev.template_json("Cluster")["Resources"]
    [chart] = [
        r
        for r in resources.values()
        if r["Type"] == "Custom::AWSCDK-EKS-HelmChart" and r["Properties"]["Release"] == "aws-load-balancer-controller"
    ]
    [policy] = [
        lid for lid, r in resources.items() if r["Type"] == "AWS::IAM::Policy" and "LoadBalancerControllerPolicy" in lid
    ]
    [association] = [
        lid
        for lid, r in resources.items()
        if r["Type"] == "AWS::EKS::PodIdentityAssociation"
        and r["Properties"]["ServiceAccount"] == "aws-load-balancer-controller"
    ]
    assert {policy, association} <= set(chart["DependsOn"])


def test_the_rollout_engines_objects_go_through_the_track_owner(dev: SynthesizedEnvironment) -> None:
    """Case 11 of the rollout-safety issue: the objects whose running version the rollout engine owns are
    not KubernetesManifests (a client-side apply would put config's version back on every deploy)."""
    resources = dev.template_json("Services")["Resources"]
    manifests = [r for r in resources.values() if r["Type"] == "Custom::AWSCDK-EKS-KubernetesResource"]
    manifest_kinds = {obj["kind"] for m in manifests for obj in json.loads(manifest_text(m["Properties"]["Manifest"]))}
    assert {"ServiceAccount", "Service", "TargetGroupBinding"} <= manifest_kinds
    assert not manifest_kinds & {"Deployment", "HorizontalPodAutoscaler", "ScaledObject"}
    tracks = [r for r in resources.values() if r["Type"] == "Custom::TesseraServiceTracks"]
    assert sorted(t["Properties"]["Service"] for t in tracks) == sorted(SERVICES)
    scaled_by_keda = {service.name for service in dev.config.services if service.scaling is not None}
    for track in tracks:
        kinds = sorted(obj["kind"] for obj in track_objects(track))
        # A service scaled by KEDA has a ScaledObject instead of its own HPA; the rollout holds stable's floor in
        # either, so the track owner keeps that floor through a deploy during a rollout.
        autoscaler = "ScaledObject" if track["Properties"]["Service"] in scaled_by_keda else "HorizontalPodAutoscaler"
        assert kinds == sorted(["Deployment", "Deployment", autoscaler])
    [function] = [
        f["Properties"]
        for f in resources.values()
        if f["Type"] == "AWS::Lambda::Function" and f["Properties"].get("Handler") == "rollout.track_owner.handle"
    ]
    assert "VpcConfig" in function
    [entry] = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::EKS::AccessEntry"]
    assert entry["KubernetesGroups"] == ["tessera:track-owner"]
    assert entry.get("AccessPolicies", []) == []
    [role] = [
        obj
        for obj in manifest_objects(dev, "Services")
        if obj["kind"] == "Role" and obj["metadata"]["name"] == "tessera-track-owner"
    ]
    assert role["rules"] == [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "create", "update", "delete"]},
        {
            "apiGroups": ["autoscaling"],
            "resources": ["horizontalpodautoscalers"],
            "verbs": ["get", "create", "update", "delete"],
        },
        {"apiGroups": ["keda.sh"], "resources": ["scaledobjects"], "verbs": ["get", "create", "update", "delete"]},
    ]
