#!/usr/bin/env python3
"""Tessera CDK app: `cdk synth -c env=NAME` or `cdk synth -c config=PATH` (default: config/dev.yaml)."""

import sys
from pathlib import Path

from aws_cdk import App

from stacks.config.errors import ConfigError
from stacks.pipeline.build import build_pipeline, plan_pipeline_from_context
from stacks.template_limits import over_limits
from stacks.tessera_app import build_tessera, load_config_from_context


def main() -> None:
    # aws-cdk-lib's built-in template validation is cfn-lint run in-process, a third of the synth's time; cfn-lint
    # itself runs after `make synth` and in `make test`, with the ignores explained in .cfnlintrc.yaml.
    app = App(builtin_cloud_formation_validation=False)
    try:
        config = load_config_from_context(app.node)
        pipeline = plan_pipeline_from_context(app.node, config)  # None: no `pipeline` section
    except ConfigError as error:
        for problem in error.problems:
            print(f"{error.source}: {problem}", file=sys.stderr)
        sys.exit(1)
    if pipeline is None:
        build_tessera(app, config)
    else:
        # The pipeline's stages hold the environments' stacks; it deploys them, `cdk deploy` deploys the pipeline.
        build_pipeline(app, pipeline)
    assembly = app.synth()
    # A template over a CloudFormation quota would fail only at deploy, part-way through the environment.
    problems = over_limits(Path(assembly.directory))
    for problem in problems:
        print(f"{config.name}: {problem}; split the environment's services across environments", file=sys.stderr)
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
