"""`tessera models ...`: list, show, register and validate model versions."""

from __future__ import annotations

import argparse
from pathlib import Path

from registry.checks import check_local_artifacts, check_target_fit
from registry.manifest import ManifestError, parse_manifest
from tessera_cli.environment import Environment
from tessera_cli.errors import EXIT_NOT_FOUND, EXIT_OK, EXIT_REJECTED, EXIT_UNREACHABLE, EXIT_USAGE, CliError
from tessera_cli.output import Printer
from tessera_shared.constants import REJECTED


def add_commands(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="every version of a service's model")
    listing.add_argument("service")
    listing.set_defaults(run=list_versions)
    show = commands.add_parser("show", help="one version: state, compile target, reasons, history")
    show.add_argument("service")
    show.add_argument("version")
    show.set_defaults(run=show_version)
    register = commands.add_parser("register", help="run the registration checks for a manifest already in S3")
    register.add_argument("service")
    register.add_argument("version")
    register.set_defaults(run=register_version)
    validate = commands.add_parser("validate", help="check a local manifest and its artifacts before upload")
    validate.add_argument("path", type=Path, help="the version folder, or its manifest.json")
    validate.add_argument("--config", type=Path, help="environment config file (default config/<env>.yaml)")
    validate.set_defaults(run=validate_local)


def list_versions(args: argparse.Namespace, printer: Printer) -> int:
    records = Environment(args.env, args.region).store.list_versions(args.service)
    rows = [{"version": r.version, "state": r.state, "model": r.model, "updated_at": r.updated_at} for r in records]
    human = "\n".join(f"{r['version']:<24} {r['state']:<12} {r['updated_at']}" for r in rows)
    printer.result(
        {"service": args.service, "versions": rows}, human or f"no versions of {args.service} are registered"
    )
    return EXIT_OK


def show_version(args: argparse.Namespace, printer: Printer) -> int:
    store = Environment(args.env, args.region).store
    record = store.get_version(args.service, args.version)
    if record is None:
        raise CliError(f"{args.service} version {args.version} is not in the registry", EXIT_NOT_FOUND)
    history = store.history(args.service, args.version)
    lines = [
        f"{record.service} {record.version}: {record.state}",
        f"  model:  {record.model}",
        f"  image:  {record.image}",
        f"  target: {', '.join(f'{k}={v}' for k, v in sorted(record.target.items()))}",
        *(f"  reason: {reason}" for reason in record.reasons),
        "  history:",
        *(f"    {event['at']} {event['kind']}" for event in history),
    ]
    data = {**record.__dict__, "history": history}
    printer.result(data, "\n".join(lines))
    return EXIT_OK


def register_version(args: argparse.Namespace, printer: Printer) -> int:
    outcome = Environment(args.env, args.region).registrar().register(args.service, args.version)
    lines = [f"{outcome.service} {outcome.version}: {outcome.outcome} (state {outcome.state})"]
    lines += [f"  reason: {reason}" for reason in outcome.reasons]
    printer.result(outcome.as_dict(), "\n".join(lines))
    return EXIT_REJECTED if outcome.outcome == REJECTED else EXIT_OK


def validate_local(args: argparse.Namespace, printer: Printer) -> int:
    from stacks.config.environment import config_path_for, load_config  # config tooling only this command needs
    from stacks.config.errors import ConfigError
    from stacks.registration.catalog import build_catalog

    manifest_path = args.path / "manifest.json" if args.path.is_dir() else args.path
    if not manifest_path.is_file():
        raise CliError(f"{manifest_path} does not exist", EXIT_USAGE)
    try:
        catalog = build_catalog(load_config(args.config or config_path_for(args.env)))
    except ConfigError as error:
        raise CliError(f"{error.source}: {'; '.join(error.problems)}", EXIT_UNREACHABLE) from None
    try:
        manifest = parse_manifest(manifest_path.read_bytes())
    except ManifestError as error:
        reasons = error.reasons
    else:
        reasons = check_local_artifacts(manifest_path.parent, manifest)
        service = catalog.services.get(manifest.service)
        if service is None:
            reasons.append(f"service {manifest.service!r} is not in environment {args.env}")
        else:
            reasons += check_target_fit(manifest, service)
    valid = not reasons
    human = f"{manifest_path}: valid" if valid else "\n".join(f"{manifest_path}: {reason}" for reason in reasons)
    printer.result({"path": str(manifest_path), "valid": valid, "reasons": reasons}, human)
    return EXIT_OK if valid else EXIT_REJECTED
