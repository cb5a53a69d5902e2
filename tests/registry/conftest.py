from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from registry import handler
from registry.catalog import Catalog
from stacks.config.environment import config_path_for, load_config
from stacks.registration.catalog import build_catalog
from tests.fake_aws import use_fake_credentials
from tests.registry.world import ASSISTANT_TAG, BUCKET, CATALOG_PARAMETER, REGION, REGISTRATION_BUS, TABLE, World


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


@pytest.fixture
def lambda_env(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("MODEL_BUCKET", BUCKET)
    monkeypatch.setenv("REGISTRY_TABLE", TABLE)
    monkeypatch.setenv("CATALOG_PARAMETER", CATALOG_PARAMETER)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Tessera")
    monkeypatch.setenv("ENVIRONMENT", "dev")
    monkeypatch.setenv("EVENT_BUS_NAME", REGISTRATION_BUS)
    _clear_handler_caches()
    yield world
    _clear_handler_caches()


def _clear_handler_caches() -> None:
    """The handler's per-execution-environment clients (each test is a fresh environment)."""
    for name in ("_registrar", "_store"):
        cached = getattr(handler, name, None)
        if cached is not None:
            cached.cache_clear()
