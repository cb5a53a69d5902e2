"""The read-only role that pull requests' `cdk diff` assumes through GitHub's OIDC provider
(.github/workflows/diff.yml).

Trust: only tokens GitHub issues to the configured repository's `pull_request` workflows (`sub` =
`repo:<owner>/<name>:pull_request`) for STS (`aud` = `sts.amazonaws.com`). Permissions: read CloudFormation stacks
and templates in the pipeline's account, read the CDK bootstrap version, and assume the CDK bootstrap *lookup* role
(AWS ReadOnlyAccess, kms:Decrypt denied) of each environment's account and region, which is how `cdk diff`
reads a deployed template elsewhere. It can change nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, Duration, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.common.nag_environment import nag_environment
from stacks.config.pipeline import DeployTarget, PipelineConfig
from stacks.pipeline.bootstrap import bootstrap_qualifier, bootstrap_role_arn

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
STS_AUDIENCE = "sts.amazonaws.com"


def pull_request_subject(repository: str) -> str:
    return f"repo:{repository}:pull_request"


def github_oidc_provider(scope: Construct, settings: PipelineConfig) -> str:
    """The provider's ARN: the account's existing one when config names it (an account holds one per URL)."""
    if settings.github_oidc_provider_arn is not None:
        return settings.github_oidc_provider_arn
    provider = iam.OidcProviderNative(
        scope, "GitHubOidcProvider", url=f"https://{GITHUB_OIDC_HOST}", client_ids=[STS_AUDIENCE]
    )
    return provider.oidc_provider_arn


def pull_request_diff_role(scope: Construct, settings: PipelineConfig, targets: Sequence[DeployTarget]) -> iam.Role:
    stack = Stack.of(scope)
    role = iam.Role(
        scope,
        "PullRequestDiffRole",
        description=f"Tessera: cdk diff for pull requests of {settings.repository} (read only)",
        max_session_duration=Duration.hours(1),
        assumed_by=iam.WebIdentityPrincipal(
            github_oidc_provider(scope, settings),
            conditions={
                "StringEquals": {
                    f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE,
                    f"{GITHUB_OIDC_HOST}:sub": pull_request_subject(settings.repository),
                }
            },
        ),
    )
    lookups = sorted({bootstrap_role_arn(stack, "lookup", account=t.account, region=t.region) for t in targets})
    role.add_to_policy(
        iam.PolicyStatement(sid="AssumeBootstrapLookupRoles", actions=["sts:AssumeRole"], resources=lookups)
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="ReadStacks",
            actions=["cloudformation:DescribeStacks", "cloudformation:GetTemplate", "cloudformation:ListStacks"],
            resources=[stack.format_arn(service="cloudformation", resource="stack", resource_name="*")],
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="ReadBootstrapVersion",
            actions=["ssm:GetParameter"],
            resources=[
                stack.format_arn(
                    service="ssm",
                    resource="parameter",
                    resource_name=f"cdk-bootstrap/{bootstrap_qualifier(stack)}/version",
                )
            ],
        )
    )
    Validations.of(role.node.find_child("DefaultPolicy")).acknowledge(
        Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::{stack_arn(stack)}]",
            reason="cdk diff reads the deployed template of any stack the app names in the pipeline's account "
            "(DescribeStacks, GetTemplate): reads only, and the stacks' names come from config.",
        )
    )
    return role


def stack_arn(stack: Stack) -> str:
    env = nag_environment(stack)
    return f"arn:{env.partition}:cloudformation:{env.region}:{env.account}:stack/*"
