#!/usr/bin/env python3
"""Tessera CDK app: `cdk synth -c env=NAME` or `cdk synth -c config=PATH` (default: config/dev.yaml)."""

import sys

from aws_cdk import App

from stacks.config.errors import ConfigError
from stacks.tessera_app import build_tessera, load_config_from_context


def main() -> None:
    app = App()
    try:
        config = load_config_from_context(app.node)
    except ConfigError as error:
        for problem in error.problems:
            print(f"{error.source}: {problem}", file=sys.stderr)
        sys.exit(1)
    build_tessera(app, config)
    app.synth()


if __name__ == "__main__":
    main()
