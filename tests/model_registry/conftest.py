from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from registry.catalog import Catalog
from stacks.config import config_path_for, load_config
from stacks.registry_catalog import build_catalog
from tests.model_registry.world import ASSISTANT_TAG, REGION, World


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return build_catalog(load_config(config_path_for("dev")))


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, catalog: Catalog) -> Iterator[World]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        built = World(catalog=catalog).build()
        built.push_image("tessera/dev/assistant", ASSISTANT_TAG)
        yield built
