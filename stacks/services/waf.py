"""A WAF web ACL in front of an internet-facing load balancer that admits everyone: AWS managed rule groups for the
common exploits, known bad inputs and addresses with a bad reputation, and a per-address rate limit.

Raw CloudFormation (CfnWebACL): aws-cdk-lib has no L2 construct for WAFv2."""

from __future__ import annotations

from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from stacks.config.services import WafConfig

# Prompts and images are larger than the common rule set's 8 KB body limit: that one rule only counts.
COUNTED_RULES = {"AWSManagedRulesCommonRuleSet": ("SizeRestrictions_BODY",)}
# Evaluated in this order; each blocks what its group matches.
MANAGED_RULE_GROUPS = (
    "AWSManagedRulesAmazonIpReputationList",
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
)


def _visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
    )


def protect_with_waf(load_balancer: elbv2.ApplicationLoadBalancer, *, settings: WafConfig, name: str) -> Construct:
    scope = Construct(load_balancer, "Waf")
    rules = [
        wafv2.CfnWebACL.RuleProperty(
            name=group,
            priority=index,
            override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
            statement=wafv2.CfnWebACL.StatementProperty(
                managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                    vendor_name="AWS",
                    name=group,
                    rule_action_overrides=[
                        wafv2.CfnWebACL.RuleActionOverrideProperty(
                            name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                        )
                        for rule in COUNTED_RULES.get(group, ())
                    ]
                    or None,
                )
            ),
            visibility_config=_visibility(group),
        )
        for index, group in enumerate(MANAGED_RULE_GROUPS)
    ]
    rules.append(
        wafv2.CfnWebACL.RuleProperty(
            name="RateLimitPerAddress",
            priority=len(MANAGED_RULE_GROUPS),
            action=wafv2.CfnWebACL.RuleActionProperty(block={}),
            statement=wafv2.CfnWebACL.StatementProperty(
                rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                    limit=settings.rate_limit_per_5_minutes, aggregate_key_type="IP"
                )
            ),
            visibility_config=_visibility("RateLimitPerAddress"),
        )
    )
    acl = wafv2.CfnWebACL(
        scope,
        "WebAcl",
        name=name,
        scope="REGIONAL",
        default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
        rules=rules,
        visibility_config=_visibility(name),
    )
    wafv2.CfnWebACLAssociation(
        scope, "Association", resource_arn=load_balancer.load_balancer_arn, web_acl_arn=acl.attr_arn
    )
    return scope
