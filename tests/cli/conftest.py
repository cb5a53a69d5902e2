"""The CLI's tests run against the registry's doubles (moto and the registry function in-process)."""

from tests.registry.conftest import catalog, lambda_env, world

__all__ = ["catalog", "lambda_env", "world"]
