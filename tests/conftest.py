from __future__ import annotations

import pytest

from stacks.config import config_path_for, load_config
from tests.synth import SynthesizedEnvironment, synthesize


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedEnvironment:
    """The default environment, synthesized once per test session and shared by every template test."""
    return synthesize(load_config(config_path_for("dev")), tmp_path_factory.mktemp("cdk.out.dev"))


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedEnvironment:
    return synthesize(load_config(config_path_for("prod")), tmp_path_factory.mktemp("cdk.out.prod"))
