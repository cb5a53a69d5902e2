"""Builds the pipeline app from a config with a `pipeline` section: the pipeline stack, whose stages hold each
environment's stacks (stacks/tessera_app.py, unchanged), in place of the home environment's own top-level stacks.
A config without the section never reaches this module."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import App, Environment, Stage, Tags, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import Node

from stacks.config.environment import EnvironmentConfig, config_path_for
from stacks.config.pipeline_stages import DeliveryStage, load_pipeline_stages
from stacks.pipeline.nag import acknowledge_pipeline_findings
from stacks.pipeline.stack import PipelineStack
from stacks.tessera_app import build_tessera, config_file_from_context

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class PipelinePlan:
    config: EnvironmentConfig
    stages: tuple[DeliveryStage, ...]
    home_synth: str  # the `make synth` argument that synthesizes the home file: ENV=<name> or CONFIG=<path>


def plan_pipeline(config: EnvironmentConfig, path: Path) -> PipelinePlan | None:
    """None without a pipeline section; raises ConfigError for a stage that cannot be deployed as configured."""
    if config.pipeline is None:
        return None
    stages = load_pipeline_stages(config, source=str(path), config_dir=path.resolve().parent)
    if path.resolve() == config_path_for(config.name).resolve():
        home_synth = f"ENV={config.name}"
    else:
        home_synth = f"CONFIG={os.path.relpath(path.resolve(), REPO_ROOT)}"
    return PipelinePlan(config=config, stages=stages, home_synth=home_synth)


def plan_pipeline_from_context(node: Node, config: EnvironmentConfig) -> PipelinePlan | None:
    return plan_pipeline(config, config_file_from_context(node))


def build_pipeline(app: App, plan: PipelinePlan) -> PipelineStack:
    config = plan.config
    settings = config.pipeline
    if settings is None:
        raise ValueError(f"{config.name} has no pipeline section")
    stack = PipelineStack(
        app,
        config.stack_name("Pipeline"),
        settings=settings,
        stages=plan.stages,
        home=config.name,
        home_synth=plan.home_synth,
        build_stage=_build_environment,
        env=Environment(account=settings.account, region=settings.region),
        description=f"Tessera delivery: {settings.repository}@{settings.branch} to "
        + ", ".join(stage.name for stage in plan.stages),
    )
    for key, value in config.tags.as_dict(config.name).items():
        Tags.of(stack).add(key, value)
    acknowledge_pipeline_findings(stack)
    Validations.of(stack).add_plugins(AwsSolutionsChecks(stack))
    return stack


def _build_environment(stage: Stage, config: EnvironmentConfig) -> None:
    build_tessera(stage, config)
