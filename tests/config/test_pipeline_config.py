"""The pipeline section: its stages resolved from their own environment files, and the problems that name a field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from stacks.config.environment import CONFIG_DIR, EnvironmentConfig, parse_config
from stacks.config.errors import ConfigError
from stacks.config.pipeline_stages import load_pipeline_stages

CONNECTION = "arn:aws:codeconnections:us-east-1:111122223333:connection/0f0e0d0c-0b0a-0908-0706-050403020100"
PROD_ACCOUNT = "444455556666"


def pipeline(**stage_overrides: object) -> dict:
    prod = {"environment": "prod", "manual_approval": True, "waves": [{"targets": [_target("us-east-1")]}]}
    prod.update(stage_overrides)
    return {
        "connection_arn": CONNECTION,
        "repository": "example-org/tessera",
        "account": "111122223333",
        "region": "us-east-1",
        "stages": [{"environment": "dev"}, prod],
    }


def _target(region: str, account: str = PROD_ACCOUNT) -> dict:
    return {"account": account, "region": region}


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    shutil.copy(CONFIG_DIR / "prod.yaml", tmp_path / "prod.yaml")
    return tmp_path


def home(section: dict) -> EnvironmentConfig:
    data = yaml.safe_load((CONFIG_DIR / "dev.yaml").read_text())
    data["pipeline"] = section
    return parse_config(data, source="pipeline.yaml")


def problems(section: dict, config_dir: Path) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_pipeline_stages(home(section), source="pipeline.yaml", config_dir=config_dir)
    return raised.value.problems


def test_stages_in_order_each_from_its_file(config_dir: Path) -> None:
    config = home(pipeline())
    stages = load_pipeline_stages(config, source="pipeline.yaml", config_dir=config_dir)
    assert [stage.name for stage in stages] == ["dev", "prod"]
    assert stages[0].config is config  # the home file is parsed once
    assert stages[1].config.is_retained
    assert stages[1].manual_approval
    # An environment-agnostic stage without waves deploys to the pipeline's own account and region.
    assert [[target.label for target in wave] for wave in stages[0].waves] == [["111122223333/us-east-1"]]
    assert [[target.label for target in wave] for wave in stages[1].waves] == [[f"{PROD_ACCOUNT}/us-east-1"]]


def test_a_config_without_pipeline_has_no_stages(config_dir: Path) -> None:
    data = yaml.safe_load((CONFIG_DIR / "dev.yaml").read_text())
    assert load_pipeline_stages(parse_config(data, source="dev"), source="dev", config_dir=config_dir) == ()


def test_production_needs_a_manual_approval(config_dir: Path) -> None:
    assert problems(pipeline(manual_approval=False), config_dir) == [
        "pipeline.stages[1].manual_approval: environment 'prod' retains its state (production); set "
        "manual_approval: true so that a person approves before it is deployed"
    ]


def test_a_wave_outside_the_certificates_region_is_refused(config_dir: Path) -> None:
    waves = [{"targets": [_target("us-east-1")]}, {"targets": [_target("eu-west-1")]}]
    found = problems(pipeline(waves=waves), config_dir)
    assert found == [
        "pipeline.stages[1].waves[1].targets[0].region: eu-west-1 differs from us-east-1, where environment 'prod' "
        "is pinned by load_balancer.certificate_arn"
    ]


def test_a_target_outside_the_pinned_account_is_refused(config_dir: Path) -> None:
    data = yaml.safe_load((config_dir / "prod.yaml").read_text())
    data["account"] = "777788889999"
    (config_dir / "prod.yaml").write_text(yaml.safe_dump(data))
    assert problems(pipeline(), config_dir) == [
        f"pipeline.stages[1].waves[0].targets[0].account: {PROD_ACCOUNT} differs from 777788889999, where "
        "environment 'prod' is pinned by its `account`"
    ]


def test_a_missing_stage_file_names_the_stage(config_dir: Path) -> None:
    section = pipeline()
    section["stages"][1]["environment"] = "staging"
    assert problems(section, config_dir) == [
        f"pipeline.stages[1].environment: {config_dir / 'staging.yaml'}: file not found"
    ]


def test_a_stage_file_naming_another_environment_is_refused(config_dir: Path) -> None:
    shutil.copy(config_dir / "prod.yaml", config_dir / "live.yaml")
    section = pipeline()
    section["stages"][1]["environment"] = "live"
    assert problems(section, config_dir) == [
        f"pipeline.stages[1].environment: {config_dir / 'live.yaml'} names environment 'prod', not 'live'"
    ]


def test_check_config_resolves_the_pipelines_stages(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tools.check_config import main

    home_file = config_dir / "dev.yaml"
    data = yaml.safe_load((CONFIG_DIR / "dev.yaml").read_text())
    data["pipeline"] = pipeline()
    home_file.write_text(yaml.safe_dump(data))
    assert main([str(home_file)]) == 0
    assert capsys.readouterr().out.strip().endswith("; pipeline: dev (1 wave) -> approval -> prod (1 wave)")
    data["pipeline"] = pipeline(manual_approval=False)
    home_file.write_text(yaml.safe_dump(data))
    assert main([str(home_file)]) == 1
    assert "pipeline.stages[1].manual_approval: " in capsys.readouterr().err
