"""A generated environment of many services, for the scale test and the synth benchmark: the `dev` config with
its services repeated (Trainium with a GPU alternative, Inferentia, Graviton cpu, in turn) under new names, routes,
ports and repositories, until there are `count`, eight to a stack group."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from stacks.config.environment import EnvironmentConfig, config_path_for, parse_config
from stacks.config.stack_groups import SERVICES_PER_STACK_GROUP


def scaled_config_data(count: int, *, base: str = "dev") -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(config_path_for(base).read_text())
    kinds = data["services"]
    services = []
    for index in range(count):
        service = copy.deepcopy(kinds[index % len(kinds)])
        name = f"{service['name']}-{index:02d}"
        service["name"] = name
        service["image"]["repository"] = f"tessera/{data['name']}/{name}"
        service["route"]["path_prefix"] = f"/v1/{name}"
        service["port"] = 9000 + index  # each service listens on its own port
        service.pop("calls", None)  # every caller names its callees; the generated ones call none
        if index >= SERVICES_PER_STACK_GROUP:  # the first eight in the main stacks, then eight per group
            service["stack_group"] = f"group{index // SERVICES_PER_STACK_GROUP}"
        services.append(service)
    data["services"] = services
    return data


def scaled_config(count: int, *, base: str = "dev") -> EnvironmentConfig:
    return parse_config(scaled_config_data(count, base=base), source=f"{base} with {count} services")
