"""Config model of the delivery pipeline: an optional top-level `pipeline` section of an environment file.

The environment file that carries it is the pipeline's home: synthesizing that file builds the pipeline stack
(stacks/pipeline/), whose stages deploy the environments the section names, in order, each from its own file
(`config/<name>.yaml`). Without the section an environment synthesizes exactly as it always did.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from stacks.config.base import StrictModel, duplicates, raise_if_any
from tessera_shared.constants import ENVIRONMENT_NAME_PATTERN

ACCOUNT_PATTERN = r"^\d{12}$"
REGION_PATTERN = r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$"
# CodeStar Connections ARNs, under the service's old prefix or its new one (AWS CodeConnections).
CONNECTION_ARN_PATTERN = (
    r"^arn:aws[a-z-]*:(codestar-connections|codeconnections):[a-z0-9-]+:\d{12}:connection/[0-9a-f-]{36}$"
)
REPOSITORY_PATTERN = r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$"
BRANCH_PATTERN = r"^[A-Za-z0-9._/-]{1,200}$"
OIDC_PROVIDER_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::\d{12}:oidc-provider/token\.actions\.githubusercontent\.com$"


class DeployTarget(StrictModel):
    """One account and region an environment's stacks are deployed to."""

    account: str = Field(pattern=ACCOUNT_PATTERN, description="AWS account id (bootstrapped to trust the pipeline's).")
    region: str = Field(pattern=REGION_PATTERN, description="AWS region (bootstrapped in that account).")

    @property
    def label(self) -> str:
        return f"{self.account}/{self.region}"


class PipelineWave(StrictModel):
    """Targets deployed in parallel; the next wave starts when every target of this one is deployed and checked."""

    targets: list[DeployTarget] = Field(min_length=1, description="The accounts and regions of this wave.")


class PipelineStage(StrictModel):
    """One environment, deployed wave after wave."""

    environment: str = Field(
        pattern=ENVIRONMENT_NAME_PATTERN, description="Environment name; its file is `config/<name>.yaml`."
    )
    manual_approval: bool = Field(
        False,
        description="Wait for a person to approve in CodePipeline before the stage's first wave. Required for an "
        "environment that retains its state (production).",
    )
    waves: list[PipelineWave] = Field(
        default_factory=list,
        description="Waves of accounts and regions, in order. Omitted: one target, the environment's own account "
        "and region (or the pipeline's, for an environment-agnostic file).",
    )

    @model_validator(mode="after")
    def _targets_once(self) -> PipelineStage:
        # Two targets in one account and region would deploy the same stacks twice.
        first: dict[str, str] = {}
        problems = []
        for wave_index, wave in enumerate(self.waves):
            for index, target in enumerate(wave.targets):
                path = f"waves[{wave_index}].targets[{index}]"
                if target.label in first:
                    problems.append(f"{path}: {target.label} duplicates {first[target.label]}")
                else:
                    first[target.label] = path
        raise_if_any(problems)
        return self


class PipelineConfig(StrictModel):
    """A self-mutating CDK pipeline from a repository branch to the environments, and a read-only role for
    pull requests' `cdk diff`."""

    connection_arn: str = Field(
        pattern=CONNECTION_ARN_PATTERN,
        description="ARN of the CodeStar connection (AWS CodeConnections) to the repository's host, created and "
        "authorized in the console once.",
    )
    repository: str = Field(pattern=REPOSITORY_PATTERN, description="Repository as `owner/name`.")
    branch: str = Field("main", pattern=BRANCH_PATTERN, description="Branch whose commits the pipeline deploys.")
    account: str = Field(pattern=ACCOUNT_PATTERN, description="Account the pipeline itself lives in.")
    region: str = Field(pattern=REGION_PATTERN, description="Region the pipeline itself lives in.")
    github_oidc_provider_arn: str | None = Field(
        None,
        pattern=OIDC_PROVIDER_ARN_PATTERN,
        description="The account's existing IAM OIDC provider for token.actions.githubusercontent.com (an account "
        "holds one per URL); omitted, the pipeline stack creates it.",
    )
    stages: list[PipelineStage] = Field(
        min_length=1, description="Environments in deployment order, e.g. dev, then prod after a manual approval."
    )

    @model_validator(mode="after")
    def _stages_once(self) -> PipelineConfig:
        raise_if_any(duplicates("stages", [stage.environment for stage in self.stages], field="environment"))
        return self

    @property
    def home(self) -> DeployTarget:
        return DeployTarget(account=self.account, region=self.region)
