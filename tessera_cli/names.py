"""The checks every command makes of the service and version it is given, in one place: a malformed name is a
usage error found before any AWS call (exit 2), a service the environment does not have is not found (exit 3)."""

from __future__ import annotations

import re

from registry.catalog import Catalog
from tessera_cli.environment import Environment
from tessera_cli.errors import EXIT_NOT_FOUND, EXIT_USAGE, CliError
from tessera_shared.constants import MODEL_VERSION_PATTERN, SERVICE_NAME_PATTERN


def check_names(service: str, version: str | None = None) -> None:
    if not re.match(SERVICE_NAME_PATTERN, service):
        raise CliError(f"service {service!r} must match {SERVICE_NAME_PATTERN}", EXIT_USAGE)
    if version is not None and not re.match(MODEL_VERSION_PATTERN, version):
        raise CliError(f"version {version!r} must match {MODEL_VERSION_PATTERN}", EXIT_USAGE)


def known_service(env: Environment, service: str) -> Catalog:
    catalog = env.catalog
    if service not in catalog.services:
        known = ", ".join(sorted(catalog.services)) or "none"
        raise CliError(f"service {service!r} is not in environment {env.name} (services: {known})", EXIT_NOT_FOUND)
    return catalog
