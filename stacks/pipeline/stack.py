"""Pipeline stack: a self-mutating CDK pipeline (aws_cdk.pipelines) from a repository branch to the environments.

Source: the CodeStar connection to `pipeline.repository` at `pipeline.branch`. Synth: the README's commands, `make
test`, then `make synth` for each environment, the pipeline's home last (its cloud assembly is the pipeline's).
Then one wave per configured wave of each stage, in config order; a stage marked `manual_approval` waits for a
person before its first wave; each deployed target is checked afterwards by tools/post_deploy_check.py (the EKS
cluster is ACTIVE, every service's stable target group has a healthy target), which reads the target through its
CDK bootstrap lookup role. Other accounts are reached through the CDK bootstrap roles alone (`cdk bootstrap --trust
<pipeline account>`): this stack creates no role in, or for, another account.

Also here: the read-only role pull requests' `cdk diff` assumes through GitHub OIDC (diff_role.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import CfnOutput, Duration, Environment, Stack, Stage, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.config.environment import EnvironmentConfig
from stacks.config.pipeline import DeployTarget, PipelineConfig
from stacks.config.pipeline_stages import DeliveryStage
from stacks.pipeline.bootstrap import bootstrap_role_arn
from stacks.pipeline.diff_role import pull_request_diff_role

# CodeBuild's Ubuntu standard image; the README asks for Python 3.11+ and Node 22+.
BUILD_IMAGE = codebuild.LinuxBuildImage.STANDARD_7_0
RUNTIMES = {"python": "3.12", "nodejs": "22"}
TEST_COMMAND = "make test"
CHECK_SCRIPT = "tools/post_deploy_check.py"
BOTO3_PIN = "boto3==1.44.5"  # requirements.txt's
# Self-mutation runs the CDK CLI that package.json pins, as `make synth` does, not whatever npm has newest.
CLI_VERSION: str = json.loads((Path(__file__).resolve().parents[2] / "package.json").read_text())["devDependencies"][
    "aws-cdk"
]

BuildStage = Callable[[Stage, EnvironmentConfig], object]


@dataclass(frozen=True)
class StageTarget:
    """One deployment of an environment: its stage (and CodePipeline action group) is `<env>-<region>-<account>`."""

    environment: str
    target: DeployTarget

    @property
    def stage_id(self) -> str:
        return f"{self.environment}-{self.target.region}-{self.target.account}"


def synth_commands(stages: Sequence[DeliveryStage], *, home: str, home_synth: str) -> list[str]:
    """`make test`, then `make synth` per environment (each writes cdk.out/ anew and cfn-lints its templates), the
    home's last (`home_synth`: `ENV=<name>` or `CONFIG=<path>`): its cloud assembly, the pipeline and every stage,
    is what the pipeline deploys."""
    others = [f"make synth ENV={stage.name}" for stage in stages if stage.name != home]
    return [TEST_COMMAND, *others, f"make synth {home_synth}"]


def wave_id(stage: DeliveryStage, index: int) -> str:
    return f"{stage.name}-wave{index + 1}"


class PipelineStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PipelineConfig,
        stages: Sequence[DeliveryStage],
        home: str,
        home_synth: str,
        build_stage: BuildStage,
        **stack_props: object,
    ) -> None:
        super().__init__(scope, construct_id, **stack_props)
        self.source = pipelines.CodePipelineSource.connection(
            settings.repository, settings.branch, connection_arn=settings.connection_arn
        )
        runtimes = codebuild.BuildSpec.from_object({"phases": {"install": {"runtime-versions": RUNTIMES}}})
        self.synth = pipelines.CodeBuildStep(
            "Synth",
            input=self.source,
            commands=synth_commands(stages, home=home, home_synth=home_synth),
            primary_output_directory="cdk.out",
            partial_build_spec=runtimes,
            # make test runs pytest on two workers and synthesizes three environments: more than SMALL's 3 GB.
            build_environment=codebuild.BuildEnvironment(compute_type=codebuild.ComputeType.LARGE),
            timeout=Duration.minutes(90),
        )
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            pipeline_name=construct_id,
            synth=self.synth,
            self_mutation=True,
            cli_version=CLI_VERSION,
            # Deploying to another account needs the artifact bucket encrypted with a key that account can use.
            cross_account_keys=True,
            enable_key_rotation=True,
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(build_image=BUILD_IMAGE),
            ),
        )
        self.stage_targets: list[StageTarget] = []
        for stage in stages:
            for index, targets in enumerate(stage.waves):
                approval = stage.manual_approval and index == 0
                wave = self.pipeline.add_wave(
                    wave_id(stage, index),
                    pre=[_approval(stage)] if approval else None,
                )
                for target in targets:
                    placed = StageTarget(environment=stage.name, target=target)
                    self.stage_targets.append(placed)
                    deployed = Stage(
                        self, placed.stage_id, env=Environment(account=target.account, region=target.region)
                    )
                    build_stage(deployed, stage.config.model_copy(update=_placement(target)))
                    wave.add_stage(deployed, post=[self._check(placed)])

        # Built now, not at synth, so that its generated roles and bucket exist for the cdk-nag acknowledgments.
        self.pipeline.build_pipeline()
        # cfn-lint 1.58's E3703 wants a deploy action's RoleArn written as Fn::Sub; CDK Pipelines writes the CDK
        # bootstrap deploy role's ARN as an equivalent Fn::Join, which CloudFormation accepts. Ignored on this one
        # resource, so `make synth` (which lints the pipeline's template) passes.
        self.pipeline.pipeline.node.default_child.add_metadata("cfn-lint", {"config": {"ignore_checks": ["E3703"]}})
        self.diff_role = pull_request_diff_role(
            self, settings, [settings.home, *(placed.target for placed in self.stage_targets)]
        )
        CfnOutput(
            self,
            "PullRequestDiffRoleArn",
            value=self.diff_role.role_arn,
            description="Set it as the repository variable TESSERA_DIFF_ROLE_ARN (.github/workflows/diff.yml)",
        )

    def _check(self, placed: StageTarget) -> pipelines.CodeBuildStep:
        """The post-deploy check of one target, read through that target's CDK bootstrap lookup role."""
        target = placed.target
        lookup = bootstrap_role_arn(self, "lookup", account=target.account, region=target.region)
        return pipelines.CodeBuildStep(
            f"Check-{placed.stage_id}",
            input=self.source,
            install_commands=[f"python3 -m pip install --quiet '{BOTO3_PIN}'"],
            commands=[
                f"python3 {CHECK_SCRIPT} --environment {placed.environment} --region {target.region} "
                f"--role-arn {lookup}"
            ],
            partial_build_spec=codebuild.BuildSpec.from_object(
                {"phases": {"install": {"runtime-versions": {"python": RUNTIMES["python"]}}}}
            ),
            role_policy_statements=[
                iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[lookup]),
            ],
            timeout=Duration.minutes(20),
        )


def _approval(stage: DeliveryStage) -> pipelines.ManualApprovalStep:
    return pipelines.ManualApprovalStep(
        f"Approve-{stage.name}",
        comment=f"Deploy {stage.name} ({_where(stage)})? Every earlier stage is deployed and checked.",
    )


def _where(stage: DeliveryStage) -> str:
    return "; ".join(", ".join(target.label for target in wave) for wave in stage.waves)


def _placement(target: DeployTarget) -> dict[str, str]:
    return {"account": target.account, "region": target.region}
