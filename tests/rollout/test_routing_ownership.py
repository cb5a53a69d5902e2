"""Issue 20, sequence 15 (item 11): a service's rollout settings are an SSM parameter, and whoever can write it
could point the canary's (or the promoted) weights at another target group, or the rollout at another
service's rule. Prepare trusts none of it: the load balancer must be this environment's (its owner tag names
this environment's cluster), the rule one of that load balancer's rules tagged for the service, each target
group tagged for this environment, the service and its track; the Deployments, autoscaler, namespace and model
prefix those the service's name gives. Otherwise the start is refused, naming the field, before anything is
touched."""

from __future__ import annotations

import json
from collections.abc import Callable

import boto3
import pytest

from rollout.errors import StartRefusedError
from rollout.handler import dispatch
from tessera_shared.constants import (
    LOAD_BALANCER_OWNER_TAG,
    SERVICE_LABEL,
    TARGET_GROUP_OWNER_TAG,
    TRACK_LABEL,
)
from tests.rollout.harness import CLUSTER, NEW_VERSION, REGION, SETTINGS_PREFIX, RolloutWorld, tags

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:tessera-dev-rollout:ownership"


class Elsewhere:
    """Load balancing resources that are not the assistant's: another service's in this environment, another
    environment's, and one made by hand with no tags."""

    def __init__(self, world: RolloutWorld) -> None:
        self.elbv2 = boto3.client("elbv2", region_name=REGION)
        [ours] = self.elbv2.describe_load_balancers(LoadBalancerArns=[world.routing.load_balancer])["LoadBalancers"]
        self.vpc, self.subnets = ours["VpcId"], [zone["SubnetId"] for zone in ours["AvailabilityZones"]]
        [self.listener] = self.elbv2.describe_listeners(LoadBalancerArn=ours["LoadBalancerArn"])["Listeners"]
        gateway = {TARGET_GROUP_OWNER_TAG: CLUSTER, SERVICE_LABEL: "gateway", TRACK_LABEL: "canary"}
        self.gateway_canary = self.target_group("gateway-canary", gateway)
        self.untagged = self.target_group("by-hand")
        self.gateway_rule = self.rule(self.listener["ListenerArn"], 20, self.gateway_canary, {SERVICE_LABEL: "gateway"})
        self.prod = self.elbv2.create_load_balancer(
            Name="tessera-prod",
            Subnets=self.subnets,
            Scheme="internal",
            Tags=tags({LOAD_BALANCER_OWNER_TAG: "tessera-prod"}),
        )["LoadBalancers"][0]["LoadBalancerArn"]
        prod_listener = self.elbv2.create_listener(
            LoadBalancerArn=self.prod,
            Protocol="HTTP",
            Port=80,
            DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}],
        )["Listeners"][0]["ListenerArn"]
        self.prod_rule = self.rule(prod_listener, 10, self.untagged, {SERVICE_LABEL: "assistant"})

    def target_group(self, name: str, tagged: dict[str, str] | None = None) -> str:
        return self.elbv2.create_target_group(
            Name=name,
            Protocol="HTTP",
            Port=8000,
            VpcId=self.vpc,
            TargetType="ip",
            **({"Tags": tags(tagged)} if tagged else {}),
        )["TargetGroups"][0]["TargetGroupArn"]

    def rule(self, listener: str, priority: int, target_group: str, tagged: dict[str, str]) -> str:
        return self.elbv2.create_rule(
            ListenerArn=listener,
            Priority=priority,
            Conditions=[{"Field": "path-pattern", "Values": [f"/p{priority}*"]}],
            Actions=[{"Type": "forward", "TargetGroupArn": target_group}],
            Tags=tags(tagged),
        )["Rules"][0]["RuleArn"]


def with_settings(world: RolloutWorld, **changes: str) -> None:
    """What anyone allowed ssm:PutParameter on the service's settings can do."""
    name = f"{SETTINGS_PREFIX}assistant"
    settings = json.loads(world.clients.ssm.get_parameter(Name=name)["Parameter"]["Value"])
    world.clients.ssm.put_parameter(Name=name, Value=json.dumps({**settings, **changes}), Type="String", Overwrite=True)


def prepare(world: RolloutWorld) -> dict:
    event = {"action": "prepare", "input": {"service": "assistant", "version": NEW_VERSION}, "execution": EXECUTION}
    return dispatch(event, world.clients)


Change = Callable[[RolloutWorld, Elsewhere], dict[str, str]]
REDIRECTED: list = [
    pytest.param(
        lambda world, elsewhere: {"canary_target_group": elsewhere.gateway_canary},
        r"settings\.canary_target_group: .*gateway-canary.* tessera\.dev/service is 'gateway', expected 'assistant'",
        id="another-services-target-group",
    ),
    pytest.param(
        lambda world, elsewhere: {"canary_target_group": elsewhere.untagged},
        r"settings\.canary_target_group: .*by-hand.* tag tessera\.dev/target-group-of is None, expected 'tessera-dev'",
        id="a-target-group-made-by-hand",
    ),
    pytest.param(
        lambda world, elsewhere: {
            "stable_target_group": world.routing.canary_target_group,
            "canary_target_group": world.routing.stable_target_group,
        },
        r"settings\.stable_target_group: .* tag tessera\.dev/track is 'canary', expected 'stable'",
        id="tracks-swapped",
    ),
    pytest.param(
        lambda world, elsewhere: {"rule_arn": elsewhere.gateway_rule},
        r"settings\.rule_arn: .* tag tessera\.dev/service is 'gateway', expected 'assistant'",
        id="another-services-rule",
    ),
    pytest.param(
        lambda world, elsewhere: {"rule_arn": elsewhere.prod_rule},
        r"settings\.rule_arn: .*tessera-prod.* is a rule of another load balancer than settings\.load_balancer",
        id="another-environments-rule",
    ),
    pytest.param(
        lambda world, elsewhere: {"load_balancer": elsewhere.prod, "rule_arn": elsewhere.prod_rule},
        r"settings\.load_balancer: .* tag tessera\.dev/load-balancer-of is 'tessera-prod', expected 'tessera-dev'",
        id="another-environments-load-balancer",
    ),
    pytest.param(
        lambda world, elsewhere: {"canary_target_group": "arn:" + "x" * 5000},
        r"settings\.canary_target_group: 'arn:x+\.\.\. \(5006 characters\) is not a target group ARN",
        id="not-an-arn",
    ),
    pytest.param(
        lambda world, elsewhere: {"canary_deployment": "gateway-stable"},
        r"settings\.canary_deployment: 'gateway-stable' is not 'assistant-canary'",
        id="another-services-deployment",
    ),
    pytest.param(
        lambda world, elsewhere: {"model_prefix": "models/gateway/"},
        r"settings\.model_prefix: 'models/gateway/' is not 'models/assistant/'",
        id="another-services-models",
    ),
]


@pytest.mark.parametrize(("change", "message"), REDIRECTED)
def test_settings_that_point_elsewhere_are_refused_before_anything_is_touched(
    world: RolloutWorld, change: Change, message: str
) -> None:
    with_settings(world, **change(world, Elsewhere(world)))
    with pytest.raises(StartRefusedError, match=message):
        prepare(world)
    assert world.clients.ledger.locks.holder("assistant") is None
    assert world.weights() == {world.routing.stable_target_group: 100, world.routing.canary_target_group: 0}


def test_the_services_own_routing_is_accepted(world: RolloutWorld) -> None:
    Elsewhere(world)  # other resources around do not matter
    plan = prepare(world)
    assert (plan["rule_arn"], plan["canary_tg"]) == (world.routing.rule, world.routing.canary_target_group)
