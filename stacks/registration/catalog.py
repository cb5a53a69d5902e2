"""Renders the registry's service catalog from the environment config (see lambda/registry/catalog.py)."""

from __future__ import annotations

from registry.catalog import Catalog, CatalogService
from stacks.config.environment import EnvironmentConfig


def build_catalog(config: EnvironmentConfig) -> Catalog:
    services = {}
    for service in config.services:
        pool = config.pool_for(service)
        services[service.name] = CatalogService(
            name=service.name,
            repository=service.image.repository,
            accelerator=service.accelerator.type,
            instance_family=pool.family if pool else None,
            neuron_cores=service.accelerator.neuron_cores,
            neuron_sdk=service.image.neuron_sdk,
            model_prefix=service.model_prefix,
        )
    return Catalog(services=services, block_severity=config.registry.block_severity)
