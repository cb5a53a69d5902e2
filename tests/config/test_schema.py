"""config/schema.json is generated from the models, kept current, and describes the shipped files."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from stacks.config.environment import CONFIG_DIR
from tools.write_config_schema import SCHEMA_PATH, render_schema

ENVIRONMENT_FILES = sorted(CONFIG_DIR.glob("*.yaml"))


def test_committed_schema_matches_the_models() -> None:
    assert SCHEMA_PATH.read_text() == render_schema(), "config/schema.json is stale: run `make schema`"


@pytest.mark.parametrize("path", ENVIRONMENT_FILES, ids=[path.stem for path in ENVIRONMENT_FILES])
def test_environment_file_points_editors_at_the_schema(path) -> None:
    assert path.read_text().splitlines()[0] == "# yaml-language-server: $schema=./schema.json"


@pytest.mark.parametrize("path", ENVIRONMENT_FILES, ids=[path.stem for path in ENVIRONMENT_FILES])
def test_environment_file_validates_against_the_schema(path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text()), json.loads(SCHEMA_PATH.read_text()))


def test_schema_rejects_unknown_keys_like_the_models() -> None:
    data = yaml.safe_load((CONFIG_DIR / "dev.yaml").read_text())
    data["network"]["nat_gateway"] = 1
    with pytest.raises(jsonschema.ValidationError, match="nat_gateway"):
        jsonschema.validate(data, json.loads(SCHEMA_PATH.read_text()))
