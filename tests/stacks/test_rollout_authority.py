"""Issue 20, item 11, as the templates carry it: what the rollout function and the track owner trust comes from
the stacks (a function's environment, resource tags), never from an event or a parameter anyone else may write."""

from __future__ import annotations

import json

from tessera_shared.constants import (
    LOAD_BALANCER_OWNER_TAG,
    SERVICE_LABEL,
    TARGET_GROUP_OWNER_TAG,
    TRACK_LABEL,
    image_repository_variable,
)
from tests.synth import SynthesizedEnvironment


def test_the_track_owner_learns_each_services_repository_from_its_environment(dev: SynthesizedEnvironment) -> None:
    [function] = [
        f["Properties"]
        for f in dev.resources("Services", "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "rollout.track_owner.handle"
    ]
    variables = function["Environment"]["Variables"]
    for service in dev.config.services:
        host = [{"Ref": "AWS::AccountId"}, ".dkr.ecr.", {"Ref": "AWS::Region"}, ".", {"Ref": "AWS::URLSuffix"}]
        uri = {"Fn::Join": ["", [*host, f"/{service.image.repository}"]]}
        assert variables[image_repository_variable(service.name)] == uri
    # Not a property of the custom resource: anyone who may invoke the function can write those.
    for tracks in dev.resources("Services", "Custom::TesseraServiceTracks").values():
        assert sorted(tracks["Properties"]) == ["Namespace", "Objects", "Service", "ServiceToken"]


def _tags(resource: dict) -> dict:
    return {tag["Key"]: tag["Value"] for tag in resource["Properties"].get("Tags", [])}


def test_the_load_balancer_rules_and_target_groups_say_whose_they_are(dev: SynthesizedEnvironment) -> None:
    """Prepare reads these tags to check that a service's settings point at its own routing."""
    cluster = dev.stacks.cluster.cluster_name
    load_balancers = dev.resources("Services", "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    assert [_tags(load_balancer)[LOAD_BALANCER_OWNER_TAG] for load_balancer in load_balancers] == [cluster, cluster]
    services = {service.name for service in dev.config.services}
    rules = dev.resources("Services", "AWS::ElasticLoadBalancingV2::ListenerRule").values()
    assert sorted(_tags(rule)[SERVICE_LABEL] for rule in rules) == sorted(services)
    groups = [_tags(group) for group in dev.resources("Services", "AWS::ElasticLoadBalancingV2::TargetGroup").values()]
    owned = sorted((tags[TARGET_GROUP_OWNER_TAG], tags[SERVICE_LABEL], tags[TRACK_LABEL]) for tags in groups)
    assert owned == sorted((cluster, service, track) for service in services for track in ("stable", "canary"))


def test_the_rollout_function_may_read_those_tags(dev: SynthesizedEnvironment) -> None:
    [statements] = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in dev.resources("Rollout", "AWS::IAM::Policy").values()
        if "StepsRole" in json.dumps(p["Properties"]["Roles"])
    ]
    [read_only] = [s for s in statements if s.get("Sid") == "ReadOnly"]
    assert "elasticloadbalancing:DescribeTags" in read_only["Action"]
