"""`python -m tools.check_config PATH`: validate a config file without synthesizing.

Exit 0 with a one-line summary when the file is valid (plus one `warning:` line on stderr per setting
that is valid but probably unintended); exit 1 with one line per problem when not.
"""

from __future__ import annotations

import sys
from pathlib import Path

from stacks.config.environment import EnvironmentConfig, load_config
from stacks.config.errors import ConfigError
from stacks.config.pipeline_stages import DeliveryStage, load_pipeline_stages


def summary(config: EnvironmentConfig) -> str:
    where = "/".join(part for part in (config.account, config.region) if part) or "environment-agnostic"
    return (
        f"environment {config.name} ({where}): {len(config.services)} service(s) in "
        f"{len(config.stack_groups)} stack group(s), "
        f"{config.network.az_count} AZs, {config.network.nat_gateways} NAT gateway(s), "
        f"removal policy {config.removal_policy}"
    )


def pipeline_summary(stages: tuple[DeliveryStage, ...]) -> str:
    """`; pipeline: dev (1 wave) -> approval -> prod (2 waves)`, or nothing without a pipeline."""
    if not stages:
        return ""
    parts = []
    for stage in stages:
        waves = len(stage.waves)
        parts.append(
            ("approval -> " if stage.manual_approval else "") + f"{stage.name} ({waves} wave{'s' * (waves > 1)})"
        )
    return "; pipeline: " + " -> ".join(parts)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tools.check_config PATH", file=sys.stderr)
        return 2
    path = argv[0]
    try:
        config = load_config(path)
        # A pipeline's stages are other files, each checked against what the pipeline asks of it.
        stages = load_pipeline_stages(config, source=path, config_dir=Path(path).resolve().parent)
    except ConfigError as error:
        for problem in error.problems:
            print(f"{error.source}: {problem}", file=sys.stderr)
        return 1
    print(f"{path}: OK, {summary(config)}{pipeline_summary(stages)}")
    for warning in config.cluster.warnings():
        print(f"{path}: warning: {warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
