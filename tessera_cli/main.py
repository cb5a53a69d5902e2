"""`tessera`: the operator CLI.

    tessera [--env ENV] [--region REGION] [--json] models list|show|register|validate|upload|ignored ...
    tessera [--env ENV] [--region REGION] [--json] rollout start|status|approve|abort|history ...
    tessera [--env ENV] [--region REGION] [--json] cost [--config PATH]

The global options work before or after the command (`tessera models list assistant --json`).
Exit codes: see EXIT_CODES (and the README's table).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from botocore.exceptions import BotoCoreError, ClientError

from tessera_cli import cost, models, rollout
from tessera_cli.errors import EXIT_CODES, EXIT_UNREACHABLE, CliError
from tessera_cli.output import Printer

DEFAULTS = {"env": "dev", "region": None, "json": False}

# One example per command, shown by its --help (the rollout commands are defined in tessera_cli/rollout.py).
EXAMPLES = {
    "tessera": "tessera --env prod models list assistant",
    "tessera models": "tessera models upload assistant 2026-11-20 ./assistant-2026-11-20",
    "tessera rollout": "tessera rollout start assistant 2026-11-20",
    "tessera rollout start": "tessera rollout start assistant 2026-11-20 --override bake_seconds=1800",
    "tessera rollout status": "tessera rollout status assistant --watch",
    "tessera rollout approve": "tessera rollout approve assistant   # or: --reject 'latency too high'",
    "tessera rollout abort": "tessera rollout abort assistant --reason 'paging alerts'",
    "tessera rollout history": "tessera --json rollout history assistant",
    **models.EXAMPLES,
}


class CommandParser(argparse.ArgumentParser):
    """Every (sub)command parser: the global options are accepted at any level, and --help ends with the
    command's example and the exit codes. argparse builds subcommand parsers with the parent's class, so
    the rollout and models commands get this without knowing about it."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        example = EXAMPLES.get(self.prog)
        self.epilog = (
            (f"example:\n  {example}\n\n" if example else "")
            + "exit codes:\n"
            + "\n".join(f"  {code}  {meaning}" for code, meaning in EXIT_CODES.items())
        )
        # SUPPRESS: an option given at one level is not reset by the default of another.
        self.add_argument("--env", default=argparse.SUPPRESS, help="environment (SSM prefix /tessera/<env>/); dev")
        self.add_argument("--region", default=argparse.SUPPRESS, help="AWS region; default from the AWS config")
        self.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="one JSON document out")


def _version() -> str:
    try:
        return version("tessera")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="tessera", description="Operate Tessera's model registry and rollouts.")
    parser.add_argument("--version", action="version", version=f"tessera {_version()}")
    groups = parser.add_subparsers(dest="group", required=True)
    models.add_commands(groups.add_parser("models", help="model versions in the registry"))
    rollout.add_commands(groups.add_parser("rollout", help="progressive rollouts of model versions"))
    cost.add_command(groups.add_parser("cost", help="monthly cost of the pools, cost per million requests per service"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on usage errors and 0 on --help / --version
        return int(exit_.code or 0)
    for name, default in DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
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
