"""Stack groups (stacks/config/stack_groups.py): a group's services get their resources in `Services-<group>` and
`Observability-<group>`, beside the main stacks' load balancers, namespace and alerts topic; the main group's stay
where every service lived before groups existed (the dev snapshots are unchanged)."""

from __future__ import annotations

import json

import pytest

from stacks.template_limits import over_limits
from tessera_shared.constants import ENV_IMAGE_REPOSITORY_PREFIX, NAMESPACE, image_repository_variable
from tests.deploy.test_simulated_deploy import SEEDS, declared, deployed, in_cluster
from tests.fake_aws import use_fake_credentials
from tests.security.endpoint_policies import allows
from tests.security.test_kms import key_policies, key_use
from tests.synth import SynthesizedEnvironment
from tests.test_cloudformation_checks import cfn_lint

EDGE = ("embeddings", "gateway")


def _names(env: SynthesizedEnvironment, component: str, resource_type: str, key: str) -> set[str]:
    return {str(resource["Properties"].get(key)) for resource in env.resources(component, resource_type).values()}


def test_each_group_has_its_own_pair_of_stacks(grouped: SynthesizedEnvironment) -> None:
    stacks = {path.name.removesuffix(".template.json") for path in grouped.template_paths}
    assert {"Tessera-grouped-Services-edge", "Tessera-grouped-Observability-edge"} <= stacks
    assert len(stacks) == 9


def test_a_group_s_services_are_routed_and_run_from_its_stack(grouped: SynthesizedEnvironment) -> None:
    edge = grouped.template("Services-edge")
    main = grouped.template("Services")
    for service in EDGE:
        edge.has_resource_properties("AWS::EKS::PodIdentityAssociation", {"ServiceAccount": service})
        edge.has_resource_properties(
            "AWS::SSM::Parameter", {"Name": f"/tessera/grouped/services/{service}/listener-rule-arn"}
        )
        edge.has_resource_properties("Custom::TesseraServiceTracks", {"Service": service})
    assert _names(grouped, "Services", "AWS::EKS::PodIdentityAssociation", "ServiceAccount") == {"assistant"}
    assert _names(grouped, "Services", "Custom::TesseraServiceTracks", "Service") == {"assistant"}
    assert len(edge.find_resources("AWS::ElasticLoadBalancingV2::TargetGroup")) == 4
    assert len(main.find_resources("AWS::ElasticLoadBalancingV2::TargetGroup")) == 2
    # The load balancers, listeners and namespace stay in the main stack.
    assert not edge.find_resources("AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert not edge.find_resources("AWS::ElasticLoadBalancingV2::Listener")


def test_listener_rule_priorities_follow_config_order_across_stacks(grouped: SynthesizedEnvironment) -> None:
    priorities = [
        rule["Properties"]["Priority"]
        for component in ("Services", "Services-edge")
        for rule in grouped.resources(component, "AWS::ElasticLoadBalancingV2::ListenerRule").values()
    ]
    assert sorted(priorities) == [10, 20, 30]


def test_a_group_s_security_group_rules_are_its_own(grouped: SynthesizedEnvironment) -> None:
    """The pods admit each service's load balancer on the service's port, and the load balancer may reach only that:
    for a group's services both rules are in the group's stack."""
    ports = {service.name: service.port for service in grouped.config.services if service.stack_group == "edge"}
    ingress = _load_balancer_rules(grouped, "Services-edge", "AWS::EC2::SecurityGroupIngress")
    egress = _load_balancer_rules(grouped, "Services-edge", "AWS::EC2::SecurityGroupEgress")
    assert {rule["Properties"]["FromPort"] for rule in ingress} == set(ports.values())
    assert {rule["Properties"]["FromPort"] for rule in egress} == set(ports.values())
    main_ports = {rule["Properties"]["FromPort"] for rule in _load_balancer_rules(grouped, "Services", INGRESS)}
    assert main_ports == {service.port for service in grouped.config.services if service.stack_group == "main"}


INGRESS = "AWS::EC2::SecurityGroupIngress"


def _load_balancer_rules(env: SynthesizedEnvironment, component: str, resource_type: str) -> list[dict]:
    return [
        rule
        for rule in env.resources(component, resource_type).values()
        if str(rule["Properties"].get("Description", "")).endswith("from the Tessera load balancer")
    ]


def test_a_group_s_track_owner_knows_only_its_services_images(grouped: SynthesizedEnvironment) -> None:
    [function] = [
        f
        for f in grouped.resources("Services-edge", "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "rollout.track_owner.handle"
    ]
    variables = function["Properties"]["Environment"]["Variables"]
    repositories = {name for name in variables if name.startswith(ENV_IMAGE_REPOSITORY_PREFIX)}
    assert repositories == {image_repository_variable(service) for service in EDGE}
    # Mapped to the track owner's Kubernetes group by its own access entry; the Role and RoleBinding are the main
    # stack's (one manifest of them in the cluster).
    grouped.template("Services-edge").has_resource_properties(
        "AWS::EKS::AccessEntry", {"KubernetesGroups": ["tessera:track-owner"]}
    )
    role_manifests = [
        resource
        for component in ("Services", "Services-edge")
        for resource in grouped.resources(component, "Custom::AWSCDK-EKS-KubernetesResource").values()
        if "tessera-track-owner" in json.dumps(resource["Properties"].get("Manifest", ""))
    ]
    assert len(role_manifests) == 1


def test_a_group_s_alarms_and_dashboards_are_in_its_observability_stack(grouped: SynthesizedEnvironment) -> None:
    edge = grouped.template("Observability-edge")
    for service in EDGE:
        edge.has_resource_properties("AWS::CloudWatch::CompositeAlarm", {"AlarmName": f"tessera-grouped-{service}"})
        edge.has_resource_properties("AWS::CloudWatch::Dashboard", {"DashboardName": f"tessera-grouped-{service}"})
    assert not edge.find_resources("AWS::SNS::Topic")  # they notify the environment's topic
    # The environment dashboard links every service's dashboard and shows every composite alarm.
    [dashboard] = [
        d
        for d in grouped.resources("Observability", "AWS::CloudWatch::Dashboard").values()
        if d["Properties"]["DashboardName"] == "tessera-grouped"
    ]
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for service in EDGE:
        assert f"dashboard/tessera-grouped-{service}" in body
        assert f"alarm:tessera-grouped-{service}" in body


def test_the_rollout_reads_a_group_s_routing_and_waits_for_its_alarms(grouped: SynthesizedEnvironment) -> None:
    manifest = json.loads((grouped.outdir / "manifest.json").read_text())
    rollout = manifest["artifacts"]["Tessera-grouped-Rollout"]["dependencies"]
    assert {"Tessera-grouped-Services-edge", "Tessera-grouped-Observability-edge"} <= set(rollout)
    settings = [
        parameter
        for parameter in grouped.resources("Rollout", "AWS::SSM::Parameter").values()
        if str(parameter["Properties"]["Name"]).endswith("/rollout/services/gateway")
    ]
    assert '"StackName": "Tessera-grouped-Services-edge"' in json.dumps(settings)


def test_the_grouped_templates_are_clean_and_within_half_of_each_quota(grouped: SynthesizedEnvironment) -> None:
    """cdk-nag ran at synth (a finding fails it); cfn-lint and the quotas here."""
    result = cfn_lint(grouped.template_paths)
    assert result.returncode == 0, result.stdout + result.stderr
    assert over_limits(grouped.outdir, share=0.5) == []


def test_the_grouped_environment_deploys_with_nothing_applied_before_what_it_relies_on(
    grouped: SynthesizedEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The simulated deploy (tests/deploy): the group's objects and track owner after the main stack's namespace,
    admission policy and Role; one order suffices, since a write that only worked by the order's luck fails anyway."""
    use_fake_credentials(monkeypatch)
    for sim in deployed(grouped, SEEDS[0]):
        assert sim.unordered_reliances() == []
        assert declared(grouped) <= in_cluster(sim)
        for service in EDGE:
            assert sim.api.deployment(NAMESPACE, f"{service}-canary")["spec"]["replicas"] == 0


def test_the_artifacts_key_serves_a_group_s_model_readers(grouped: SynthesizedEnvironment) -> None:
    """A group's model readers are roles of `Tessera-<env>-Services-<group>`: covered by the Services stack's name."""
    [policy] = [p for d, p in key_policies(grouped).items() if "model artifacts" in d]
    reader = "Tessera-grouped-Services-edge-GatewayModelReaderRole9C8D"
    assert allows(policy, key_use("kms:Decrypt", reader, "s3"))
    assert not allows(policy, key_use("kms:Decrypt", reader))
