"""cdk-nag acknowledgments for what aws_cdk.pipelines generates, each on one policy or bucket, each with its reason.

The pipeline's roles are CDK Pipelines' own: what they are granted is what CodePipeline, CodeBuild and the CDK
toolkit need, scoped by CDK to the artifact bucket, the pipeline's key, each project's own logs and reports, and
the CDK bootstrap roles. Our own additions (the checks' sts:AssumeRole, the diff role) name their resources.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import IConstruct

from stacks.common.nag_environment import nag_environment

# What CDK grants every CodePipeline / CodeBuild role on the artifact bucket and its key (`grantReadWrite`).
ARTIFACT_ACCESS = {
    "Action::s3:Abort*": "CDK's grant on the pipeline's own artifact bucket (aborting its multipart uploads)",
    "Action::s3:DeleteObject*": "CDK's grant on the pipeline's own artifact bucket (replacing stage artifacts)",
    "Action::s3:GetBucket*": "CDK's grant on the pipeline's own artifact bucket (reading its location and settings)",
    "Action::s3:GetObject*": "CDK's grant on the pipeline's own artifact bucket (reading stage artifacts)",
    "Action::s3:List*": "CDK's grant on the pipeline's own artifact bucket (listing stage artifacts)",
    "Action::kms:GenerateDataKey*": "CDK's grant on the pipeline's own artifact key (writing encrypted artifacts)",
    "Action::kms:ReEncrypt*": "CDK's grant on the pipeline's own artifact key (re-encrypting artifacts)",
}


def acknowledge_pipeline_findings(stack: Stack) -> None:
    """Call after `CodePipeline.build_pipeline()`, when the generated constructs exist."""
    env = nag_environment(stack)
    acknowledge_generated_roles(stack)
    for node in stack.node.find_all():
        if isinstance(node, s3.Bucket) and node.node.id == "ArtifactsBucket":
            _acknowledge(
                node,
                "AwsSolutions-S1",
                "CodePipeline's artifact bucket holds only the transient source and cloud-assembly zips each run "
                "passes between actions, KMS-encrypted, readable by the pipeline's roles alone; every change is "
                "already recorded by the repository, CodePipeline and CloudTrail.",
            )
        if isinstance(node, iam.Policy) and node.node.id == "DefaultPolicy" and _generated(node):
            policy = node
            artifact_bucket = _artifact_bucket_logical_id(stack)
            for rule, reason in ARTIFACT_ACCESS.items():
                _acknowledge(policy, f"AwsSolutions-IAM5[{rule}]", f"{reason}; CDK Pipelines generates it.")
            _acknowledge(
                policy,
                f"AwsSolutions-IAM5[Resource::<{artifact_bucket}.Arn>/*]",
                "The pipeline's roles read and write artifacts anywhere in the pipeline's own artifact bucket; "
                "CDK Pipelines generates this grant.",
            )
    for project in (n for n in stack.node.find_all() if isinstance(n, codebuild.Project)):
        logical = stack.get_logical_id(project.node.default_child)
        policy = project.role.node.try_find_child("DefaultPolicy") if project.role is not None else None
        if policy is None:
            continue
        _acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::arn:{env.partition}:logs:{env.region}:{env.account}:log-group:"
            f"/aws/codebuild/<{logical}>:*]",
            "A CodeBuild project writes the log streams of its own log group, whose streams are named per build.",
        )
        _acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::arn:{env.partition}:codebuild:{env.region}:{env.account}:report-group/"
            f"<{logical}>-*]",
            "A CodeBuild project writes test reports to its own report groups, named after the project.",
        )


def acknowledge_generated_roles(stack: Stack) -> None:
    """The self-mutation and asset-publishing roles, which CDK Pipelines shares between all its projects."""
    env = nag_environment(stack)
    self_mutation = stack.node.try_find_child("Pipeline")
    if self_mutation is None:
        return
    for path, entries in {
        "UpdatePipeline/SelfMutation/Role/DefaultPolicy": {
            f"AwsSolutions-IAM5[Resource::arn:*:iam::{env.account}:role/*]": "Self-mutation assumes the CDK "
            "bootstrap roles of the pipeline's account, which CDK names per qualifier and region; the policy's "
            "condition admits only roles tagged aws-cdk:bootstrap-role deploy, file-publishing or image-publishing.",
            "AwsSolutions-IAM5[Resource::*]": "Self-mutation runs `cdk deploy` of the pipeline stack: "
            "cloudformation:DescribeStacks and s3:ListBucket, on stacks and a bootstrap bucket it learns at run "
            "time (CDK Pipelines' own grant; reads only).",
        },
        "Assets/FileRole/DefaultPolicy": {
            "AwsSolutions-IAM5[Resource::*]": "The asset-publishing role starts, watches and stops the asset "
            "CodeBuild builds CDK Pipelines generates (codebuild:StartBuild, BatchGetBuilds, StopBuild); it assumes "
            "only the named CDK bootstrap file-publishing roles.",
            f"AwsSolutions-IAM5[Resource::arn:{env.partition}:logs:{env.region}:{env.account}:log-group:"
            "/aws/codebuild/*]": "One role publishes assets for every asset project CDK Pipelines generates, each "
            "with its own log group.",
            f"AwsSolutions-IAM5[Resource::arn:{env.partition}:codebuild:{env.region}:{env.account}:report-group/*]": (
                "One role publishes assets for every asset project CDK Pipelines generates, each with its own "
                "report groups."
            ),
        },
    }.items():
        target = self_mutation.node.try_find_child(path.split("/")[0])
        for part in path.split("/")[1:]:
            target = target.node.try_find_child(part) if target is not None else None
        if target is None:
            continue
        for rule, reason in entries.items():
            _acknowledge(target, rule, reason)


def _generated(policy: iam.Policy) -> bool:
    """A role CDK Pipelines made (under the CodePipeline construct), not one of ours."""
    return "/Pipeline/" in policy.node.path + "/"


def _artifact_bucket_logical_id(stack: Stack) -> str:
    bucket = next(n for n in stack.node.find_all() if isinstance(n, s3.Bucket) and n.node.id == "ArtifactsBucket")
    return stack.get_logical_id(bucket.node.default_child)


def _acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))
