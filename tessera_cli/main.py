"""`tessera`: the operator CLI.

    tessera [--env ENV] [--region REGION] [--json] models list|show|register|validate|upload|promote|ignored ...
    tessera [--env ENV] [--region REGION] [--json] rollout start|status|approve|abort|history ...
    tessera [--env ENV] [--region REGION] [--json] cost [--config PATH]

The global options work before or after the command (`tessera models list assistant --json`).
Exit codes: see EXIT_CODES (and the table in docs/cli.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tessera_cli import cost, models, rollout
from tessera_cli.errors import EXIT_CODES, EXIT_INTERRUPTED, EXIT_UNREACHABLE, CliError
from tessera_cli.output import Printer

DEFAULTS = {"env": "dev", "region": None, "json": False}

# One example per command, shown by its --help (the rollout commands carry theirs in tessera_cli/rollout.py).
EXAMPLES = {
    "tessera": "tessera --env prod models list assistant",
    "tessera models": "tessera models upload assistant 2026-11-20 ./assistant-2026-11-20",
    "tessera rollout": "tessera rollout start assistant 2026-11-20",
    "tessera cost": "tessera --env prod cost --region us-east-1",
    **models.EXAMPLES,
}


class _Commands(argparse._SubParsersAction):
    """Subcommands whose --help opens with the line the parent's list shows for them."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("description", kwargs.get("help"))
        return super().add_parser(name, **kwargs)


class CommandParser(argparse.ArgumentParser):
    """Every (sub)command parser: the global options are accepted at any level, and --help shows the command's
    description, its own notes, its example and the exit codes. argparse builds subcommand parsers with the
    parent's class, so the rollout and models commands get this without knowing about it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _Commands)
        own = [self.epilog] if self.epilog else []
        example = EXAMPLES.get(self.prog)
        if example and not any("example" in text for text in own):
            own.append(f"example:\n  {example}")
        table = "\n".join(f"  {code:<3} {meaning}" for code, meaning in EXIT_CODES.items())
        self.epilog = "\n\n".join([*own, f"exit codes:\n{table}"])
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


def command_parsers(parser: argparse.ArgumentParser, path: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every command's parser by its path (`models list`, `cost`), for help and tests."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                child_path = f"{path} {name}".strip()
                found |= command_parsers(child, child_path) or {child_path: child}
    return found


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
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def entry_point() -> None:
    sys.exit(main())
