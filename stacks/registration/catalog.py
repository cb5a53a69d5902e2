"""Renders the registry's service catalog from the environment config (see lambda/registry/catalog.py)."""

from __future__ import annotations

from registry.catalog import Catalog, CatalogService, CatalogTarget
from stacks.config.accelerator_pools import GpuPoolConfig
from stacks.config.environment import EnvironmentConfig, ServiceTarget
from tessera_shared.constants import ACCELERATOR_POOL_ARCHITECTURE, GENERAL_POOL_ARCHITECTURE


def build_catalog(config: EnvironmentConfig) -> Catalog:
    services = {}
    for service in config.services:
        current, *alternatives = (
            catalog_target(target, gpu_driver=config.cluster.node_ami_nvidia_driver)
            for target in config.allowed_targets(service)
        )
        services[service.name] = CatalogService(
            name=service.name,
            repository=service.image.repository,
            accelerator=current.accelerator,
            instance_family=current.instance_family,
            neuron_cores=current.neuron_cores,
            image_tag=current.image_tag,
            neuron_sdk=current.neuron_sdk,
            pool=current.pool,
            gpus=current.gpus,
            gpu_model=current.gpu_model,
            compute_capability=current.compute_capability,
            gpu_driver=current.gpu_driver,
            architecture=current.architecture,
            alternatives=tuple(alternatives),
        )
    return Catalog(services=services, block_severity=config.registry.block_severity)


def catalog_target(target: ServiceTarget, *, gpu_driver: str) -> CatalogTarget:
    pool = target.pool
    gpu = pool if isinstance(pool, GpuPoolConfig) else None
    return CatalogTarget(
        pool=target.name,
        accelerator=target.accelerator.type,
        instance_family=pool.family if pool else None,
        neuron_cores=target.accelerator.neuron_cores,
        image_tag=target.image_tag,
        neuron_sdk=target.neuron_sdk,
        gpus=target.accelerator.gpus,
        gpu_model=gpu.gpu_model if gpu else None,
        compute_capability=gpu.compute_capability if gpu else None,
        gpu_driver=gpu_driver if gpu else None,
        architecture=GENERAL_POOL_ARCHITECTURE if pool is None else ACCELERATOR_POOL_ARCHITECTURE,
    )
