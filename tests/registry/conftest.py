from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from registry.catalog import Catalog
from stacks.config.environment import config_path_for, load_config
from stacks.registration.catalog import build_catalog
from tests.fake_aws import use_fake_credentials
from tests.registry.world import ASSISTANT_TAG, REGION, World


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return build_catalog(load_config(config_path_for("dev")))


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, catalog: Catalog) -> Iterator[World]:
    use_fake_credentials(monkeypatch, REGION)
    with mock_aws():
        built = World(catalog=catalog).build()
        built.push_image("tessera/dev/assistant", ASSISTANT_TAG)
        yield built
