"""Finds a deployed environment's resources from the SSM parameters its stacks publish."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import boto3
import botocore.exceptions

from registry.catalog import Catalog
from registry.registrar import Registrar
from registry.store import RegistryStore
from tessera_cli.errors import EXIT_UNREACHABLE, EXIT_USAGE, CliError
from tessera_shared.constants import parameter_prefix


@dataclass
class Environment:
    name: str
    region: str | None = None
    profile: str | None = None  # a named AWS profile (an environment in another account); None: the default chain

    @cached_property
    def _session(self) -> boto3.session.Session:
        try:
            session = boto3.session.Session(region_name=self.region, profile_name=self.profile)
            session.get_credentials()  # botocore reads the profile lazily: a missing one is found here, not later
        except botocore.exceptions.ProfileNotFound:
            raise CliError(f"AWS profile {self.profile!r} (for {self.name}) is not configured", EXIT_USAGE) from None
        return session

    @property
    def region_name(self) -> str | None:
        """The region given, or the one the AWS config (or AWS_REGION) names; None when neither does."""
        return self._session.region_name

    def client(self, service: str) -> Any:
        return self._session.client(service)

    def parameter(self, relative_name: str) -> str:
        name = f"{parameter_prefix(self.name)}/{relative_name}"
        try:
            return self.client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
        except self.client("ssm").exceptions.ParameterNotFound:
            raise CliError(
                f"SSM parameter {name} not found: is environment {self.name!r} deployed here?", EXIT_UNREACHABLE
            ) from None

    @cached_property
    def store(self) -> RegistryStore:
        return RegistryStore(self.client("dynamodb"), self.parameter("artifacts/registry-table-name"))

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog.from_json(self.parameter("registry/catalog"))

    def registrar(self) -> Registrar:
        return Registrar(
            s3=self.client("s3"),
            ecr=self.client("ecr"),
            store=self.store,
            catalog=self.catalog,
            bucket=self.parameter("artifacts/model-bucket-name"),
        )
