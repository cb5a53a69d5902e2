"""The roles `cdk bootstrap` creates in every account and region, named by their qualifier. The pipeline reaches
other accounts through these alone: `cdk bootstrap --trust <pipeline account>` lets the pipeline's account assume
them, and nothing else does."""

from __future__ import annotations

from aws_cdk import DefaultStackSynthesizer, Stack

BOOTSTRAP_ROLE_KINDS = ("deploy", "lookup", "file-publishing", "image-publishing", "cfn-exec")


def bootstrap_qualifier(stack: Stack) -> str:
    """The qualifier the app's synthesizer uses (cdk.json may set `@aws-cdk/core:bootstrapQualifier`)."""
    qualifier = stack.node.try_get_context("@aws-cdk/core:bootstrapQualifier")
    return str(qualifier) if qualifier else DefaultStackSynthesizer.DEFAULT_QUALIFIER


def bootstrap_role_arn(stack: Stack, kind: str, *, account: str, region: str) -> str:
    """`cdk-<qualifier>-<kind>-role-<account>-<region>`, the name DefaultStackSynthesizer's role ARNs use."""
    name = f"cdk-{bootstrap_qualifier(stack)}-{kind}-role-{account}-{region}"
    return f"arn:{stack.partition}:iam::{account}:role/{name}"
