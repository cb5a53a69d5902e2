"""`tessera`: the operator CLI.

    tessera [--env ENV] [--json] models list SERVICE
    tessera [--env ENV] [--json] models show SERVICE VERSION
    tessera [--env ENV] [--json] models register SERVICE VERSION
    tessera [--env ENV] [--json] models validate PATH [--config FILE]

Exit codes: 0 success (listed, shown, registered, valid); 1 the version was rejected or the local
manifest is invalid; 2 usage error; 3 not found; 4 the environment could not be reached (AWS error,
missing SSM parameter, broken config).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from botocore.exceptions import BotoCoreError, ClientError

from tessera_cli import models, rollout
from tessera_cli.errors import EXIT_UNREACHABLE, CliError
from tessera_cli.output import Printer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tessera", description="Operate Tessera's model registry and rollouts.")
    parser.add_argument("--env", default="dev", help="environment name (SSM prefix /tessera/<env>/); default dev")
    parser.add_argument("--region", help="AWS region; default from the AWS configuration")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    groups = parser.add_subparsers(dest="group", required=True)
    models.add_commands(groups.add_parser("models", help="model versions in the registry"))
    rollout.add_commands(groups.add_parser("rollout", help="progressive rollouts of model versions"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on usage errors and 0 on --help
        return int(exit_.code or 0)
    printer = Printer(as_json=args.json)
    try:
        return args.run(args, printer)
    except CliError as error:
        printer.error(error.message)
        return error.exit_code
    except (ClientError, BotoCoreError) as error:
        printer.error(f"AWS error: {error}")
        return EXIT_UNREACHABLE


def entry_point() -> None:
    sys.exit(main())
