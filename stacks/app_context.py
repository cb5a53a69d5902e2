"""Chooses the environment's config file from the CDK context: `-c config=PATH` or `-c env=NAME`."""

from __future__ import annotations

from pathlib import Path

from constructs import Node

from stacks.config import DEFAULT_ENVIRONMENT, EnvironmentConfig, config_path_for, load_config


def config_file_from_context(node: Node) -> Path:
    explicit = node.try_get_context("config")
    if explicit:
        return Path(explicit)
    return config_path_for(node.try_get_context("env") or DEFAULT_ENVIRONMENT)


def load_config_from_context(node: Node) -> EnvironmentConfig:
    return load_config(config_file_from_context(node))
