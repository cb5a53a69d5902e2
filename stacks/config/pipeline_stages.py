"""The pipeline's stages resolved: each stage's environment file parsed once, its waves of targets filled in and
checked against what that file pins (account, region, availability zones, the certificate's region)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stacks.config.environment import EnvironmentConfig, load_config
from stacks.config.errors import ConfigError
from stacks.config.pipeline import DeployTarget, PipelineConfig, PipelineStage


@dataclass(frozen=True)
class DeliveryStage:
    """One environment of the pipeline, with the waves its stacks are deployed in."""

    config: EnvironmentConfig
    manual_approval: bool
    waves: tuple[tuple[DeployTarget, ...], ...]

    @property
    def name(self) -> str:
        return self.config.name


def load_pipeline_stages(home: EnvironmentConfig, *, source: str, config_dir: Path) -> tuple[DeliveryStage, ...]:
    """Every stage of `home.pipeline`, in order; raises ConfigError naming `pipeline.stages[i]...` for each problem
    (a stage's own file's problems are reported under its `environment`)."""
    pipeline = home.pipeline
    if pipeline is None:
        return ()
    problems: list[str] = []
    stages = []
    for index, stage in enumerate(pipeline.stages):
        path = f"pipeline.stages[{index}]"
        config = _stage_config(home, stage, path, config_dir, problems)
        if config is None:
            continue
        if config.is_retained and not stage.manual_approval:
            problems.append(
                f"{path}.manual_approval: environment {config.name!r} retains its state (production); "
                "set manual_approval: true so that a person approves before it is deployed"
            )
        waves = _waves(pipeline, stage, config)
        problems += _target_problems(config, waves, path, explicit=bool(stage.waves))
        stages.append(DeliveryStage(config=config, manual_approval=stage.manual_approval, waves=waves))
    if problems:
        raise ConfigError(source, problems)
    return tuple(stages)


def _stage_config(
    home: EnvironmentConfig, stage: PipelineStage, path: str, config_dir: Path, problems: list[str]
) -> EnvironmentConfig | None:
    if stage.environment == home.name:
        return home
    file = config_dir / f"{stage.environment}.yaml"
    try:
        config = load_config(file)
    except ConfigError as error:
        problems.extend(f"{path}.environment: {error.source}: {problem}" for problem in error.problems)
        return None
    if config.name != stage.environment:
        problems.append(f"{path}.environment: {file} names environment {config.name!r}, not {stage.environment!r}")
        return None
    if config.pipeline is not None:
        problems.append(f"{path}.environment: {file} has a pipeline section of its own; one file holds the pipeline")
        return None
    return config


def _waves(
    pipeline: PipelineConfig, stage: PipelineStage, config: EnvironmentConfig
) -> tuple[tuple[DeployTarget, ...], ...]:
    if stage.waves:
        return tuple(tuple(wave.targets) for wave in stage.waves)
    target = DeployTarget(account=config.account or pipeline.account, region=config.region or pipeline.region)
    return ((target,),)


def _target_problems(
    config: EnvironmentConfig, waves: tuple[tuple[DeployTarget, ...], ...], path: str, *, explicit: bool
) -> list[str]:
    """A target must be where the environment's file pins it: its account, its region (which its availability zones
    need), and the region of its load balancer's certificate (an ACM certificate serves its own region only)."""
    certificate = config.load_balancer.certificate_arn
    certificate_region = certificate.split(":")[3] if certificate else None
    pins = [
        ("account", config.account, "account", "its `account`"),
        ("region", config.region, "region", "its `region`"),
        ("region", certificate_region, "region", "load_balancer.certificate_arn"),
    ]
    problems = []
    for wave_index, wave in enumerate(waves):
        for index, target in enumerate(wave):
            where = f"{path}.waves[{wave_index}].targets[{index}]" if explicit else f"{path}.waves"
            for field, pinned, attribute, named_by in pins:
                value = getattr(target, attribute)
                if pinned is not None and value != pinned:
                    problems.append(
                        f"{where}.{field}: {value} differs from {pinned}, where environment {config.name!r} is "
                        f"pinned by {named_by}"
                    )
    return list(dict.fromkeys(problems))
