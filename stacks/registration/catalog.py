"""Renders the registry's service catalog from the environment config (see lambda/registry/catalog.py)."""

from __future__ import annotations

from registry.catalog import Catalog, CatalogService
from stacks.config.environment import EnvironmentConfig


def build_catalog(config: EnvironmentConfig) -> Catalog:
    return Catalog(
        services={
            placed.name: CatalogService(
                name=placed.name,
                repository=placed.spec.image.repository,
                accelerator=placed.spec.accelerator.type,
                instance_family=placed.pool.family if placed.pool else None,
                neuron_cores=placed.spec.accelerator.neuron_cores,
                image_tag=placed.spec.image.tag,
                neuron_sdk=placed.spec.image.neuron_sdk,
            )
            for placed in config.placed_services
        },
        block_severity=config.registry.block_severity,
    )
