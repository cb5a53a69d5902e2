"""Issue 22, problem 1 (the open internet part): an internet-facing load balancer that admits everyone needs a WAF
web ACL (AWS managed rule groups and a per-address rate limit) in front of it, or config refuses it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from aws_cdk import App, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk.assertions import Match, Template

from stacks.config.environment import config_path_for, parse_config
from stacks.config.errors import ConfigError
from stacks.config.services import WafConfig
from stacks.services.waf import MANAGED_RULE_GROUPS, protect_with_waf
from tests.synth import REPO_ROOT
from tests.test_cloudformation_checks import CFN_LINT


def _data(**load_balancer: object) -> dict:
    data = yaml.safe_load(config_path_for("dev").read_text())
    data["load_balancer"] |= load_balancer
    return data


def test_an_open_internet_facing_load_balancer_without_a_waf_is_refused() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(_data(internet_facing=True), source="test")
    [problem] = [p for p in raised.value.problems if p.startswith("load_balancer")]
    assert "allowed_cidrs" in problem
    assert "waf" in problem


@pytest.mark.parametrize(
    "load_balancer",
    [
        {"internet_facing": True, "waf": {"rate_limit_per_5_minutes": 3000}},
        {"internet_facing": True, "allowed_cidrs": ["198.51.100.0/24"]},
        {"internet_facing": False},
    ],
)
def test_what_is_accepted(load_balancer: dict) -> None:
    parse_config(_data(**load_balancer), source="test")


@pytest.fixture(scope="module")
def template() -> Template:
    """On a bare stack: the construct alone, as the Services stack uses it."""
    stack = Stack(App(), "Bare")
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=0)
    load_balancer = elbv2.ApplicationLoadBalancer(stack, "LoadBalancer", vpc=vpc, internet_facing=True)
    protect_with_waf(load_balancer, settings=WafConfig(rate_limit_per_5_minutes=3000), name="tessera-test")
    return Template.from_stack(stack)


def test_the_web_acl_guards_the_load_balancer(template: Template) -> None:
    [acl_id] = template.find_resources("AWS::WAFv2::WebACL")
    acl = template.to_json()["Resources"][acl_id]["Properties"]
    assert acl["Scope"] == "REGIONAL"
    assert acl["DefaultAction"] == {"Allow": {}}
    groups = [
        r["Statement"]["ManagedRuleGroupStatement"]["Name"]
        for r in acl["Rules"]
        if "ManagedRuleGroupStatement" in r["Statement"]
    ]
    assert groups == list(MANAGED_RULE_GROUPS)
    [common] = [r for r in acl["Rules"] if r["Name"] == "AWSManagedRulesCommonRuleSet"]
    overrides = common["Statement"]["ManagedRuleGroupStatement"]["RuleActionOverrides"]
    assert overrides == [{"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}]  # prompts exceed 8 KB
    [rate] = [r for r in acl["Rules"] if "RateBasedStatement" in r["Statement"]]
    assert rate["Statement"]["RateBasedStatement"] == {"Limit": 3000, "AggregateKeyType": "IP"}
    assert rate["Action"] == {"Block": {}}
    template.has_resource_properties(
        "AWS::WAFv2::WebACLAssociation",
        {
            "ResourceArn": {"Ref": Match.string_like_regexp("LoadBalancer")},
            "WebACLArn": {"Fn::GetAtt": [acl_id, "Arn"]},
        },
    )


def test_the_web_acl_passes_cfn_lint(template: Template, tmp_path: Path) -> None:
    written = tmp_path / "waf.template.json"
    written.write_text(json.dumps(template.to_json()))
    linted = subprocess.run(
        [CFN_LINT, "--config-file", str(REPO_ROOT / ".cfnlintrc.yaml"), "--", str(written)],
        capture_output=True,
        text=True,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
