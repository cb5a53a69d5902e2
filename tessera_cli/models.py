"""`tessera models ...`: list, show, register, validate, upload and promote model versions; list ignored uploads."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from registry.catalog import Catalog
from registry.checks import check_local_artifacts, check_target_fit, multipart_warnings
from registry.manifest import ManifestError, digest, parse_manifest
from registry.registrar import NOT_FOUND
from registry.store import RegistryStore, VersionRecord
from tessera_cli.environment import Environment
from tessera_cli.errors import EXIT_NOT_FOUND, EXIT_OK, EXIT_REJECTED, EXIT_UNREACHABLE, EXIT_USAGE, CliError
from tessera_cli.names import check_names, known_service
from tessera_cli.output import Printer
from tessera_shared.constants import MANIFEST_NAME, REJECTED

EXAMPLES = {
    "tessera models list": "tessera models list assistant --json",
    "tessera models show": "tessera models show assistant 2026-11-20",
    "tessera models register": "tessera models register assistant 2026-11-20",
    "tessera models validate": "tessera models validate ./assistant-2026-11-20 --env prod",
    "tessera models upload": "tessera models upload assistant 2026-11-20 ./assistant-2026-11-20",
    "tessera models ignored": "tessera --env prod models ignored",
    "tessera models promote": "tessera models promote assistant 2026-11-20 --from dev --to prod",
}
WAIT_POLL_SECONDS = 2.0


def add_commands(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="every version of a service's model, live ones marked")
    listing.add_argument("service")
    listing.set_defaults(run=list_versions)
    show = commands.add_parser("show", help="one version: state, image digest, compile target, reasons, history")
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
    upload = commands.add_parser(
        "upload",
        help="upload a version folder (artifacts, then the manifest) and wait for its registration",
        description="Uploads every file of FOLDER (its manifest.json may leave `artifacts` out: they are "
        "filled in with the checksums S3 records), writes the manifest last and waits for the registration.",
    )
    upload.add_argument("service")
    upload.add_argument("version")
    upload.add_argument("folder", type=Path)
    upload.add_argument(
        "--part-size-mib", type=part_size_mib, default=64, help="multipart part size, 5 to 5120; default 64"
    )
    upload.add_argument("--no-wait", action="store_true", help="do not wait for the registration outcome")
    upload.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for registration; 300")
    upload.set_defaults(run=upload_version)
    promote = commands.add_parser(
        "promote",
        help="copy a version another environment promoted, bytes checked, and register it here",
        description="Copies the artifacts and manifest SERVICE VERSION has in --from's registry (the object versions "
        "it registered, every checksum verified) into --to's bucket, where registration runs as for an upload; the "
        "target's registry records where it came from. Only a version PROMOTED in --from, unless --allow-unpromoted. "
        "The image must already be in --to's repository at the digest --from registered.",
    )
    promote.add_argument("service")
    promote.add_argument("version")
    promote.add_argument("--from", dest="from_env", required=True, metavar="ENV", help="the source environment")
    promote.add_argument("--to", dest="to_env", required=True, metavar="ENV", help="the target environment")
    promote.add_argument("--allow-unpromoted", action="store_true", help="promote a REGISTERED version too")
    promote.add_argument("--from-profile", metavar="PROFILE", help="AWS profile to read --from with (its account)")
    promote.add_argument("--to-profile", metavar="PROFILE", help="AWS profile to write --to with (its account)")
    promote.add_argument(
        "--part-size-mib", type=part_size_mib, default=64, help="multipart part size, 5 to 5120; default 64"
    )
    promote.add_argument("--no-wait", action="store_true", help="do not wait for the target's registration")
    promote.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for registration; 300")
    promote.set_defaults(run=promote_version)
    ignored = commands.add_parser("ignored", help="manifest uploads the registry could not place (recent days)")
    ignored.set_defaults(run=list_ignored)


def part_size_mib(text: str) -> int:
    """S3's part sizes: 5 MiB to 5 GiB."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of MiB") from None
    if not 5 <= value <= 5120:
        raise argparse.ArgumentTypeError(f"{value} is outside S3's part sizes, 5 to 5120 MiB")
    return value


# -- list and show ----------------------------------------------------------------------------------------
def _live(store: RegistryStore, service: str) -> dict[str, str]:
    """version -> track, from the pointer the rollout engine keeps."""
    pointer = store.pointer(service)
    return {pointer[track]: track for track in ("canary", "stable") if pointer.get(track)}


def _short(image_digest: str | None) -> str:
    return image_digest.removeprefix("sha256:")[:12] if image_digest else "-"


def list_versions(args: argparse.Namespace, printer: Printer) -> int:
    check_names(args.service)
    env = Environment(args.env, args.region)
    known_service(env, args.service)
    live = _live(env.store, args.service)
    records = env.store.list_versions(args.service)
    rows = [{**_list_row(record), "live": live.get(record.version)} for record in records]
    header = f"{'VERSION':<24} {'STATE':<12} {'LIVE':<7} {'IMAGE':<13} REGISTERED"
    lines = [
        f"{row['version']:<24} {row['state']:<12} {row['live'] or '-':<7} {_short(row['image_digest']):<13} "
        f"{row['registered_at']}"
        for row in rows
    ]
    human = "\n".join([header, *lines]) if rows else f"no versions of {args.service} are registered"
    printer.result({"service": args.service, "versions": rows}, human)
    return EXIT_OK


def _list_row(record: VersionRecord) -> dict:
    return {
        "version": record.version,
        "state": record.state,
        "model": record.model,
        "image": record.image,
        "image_digest": record.image_digest,
        "registered_at": record.created_at,
        "updated_at": record.updated_at,
    }


def show_version(args: argparse.Namespace, printer: Printer) -> int:
    check_names(args.service, args.version)
    env = Environment(args.env, args.region)
    known_service(env, args.service)
    store = env.store
    record = store.get_version(args.service, args.version)
    if record is None:
        raise CliError(f"{args.service} version {args.version} is not in the registry", EXIT_NOT_FOUND)
    history = store.history(args.service, args.version)
    live = _live(store, args.service).get(record.version)
    lines = [
        f"{record.service} {record.version}: {record.state}{f' (live: {live})' if live else ''}",
        f"  model:        {record.model}",
        f"  image:        {record.image}",
        f"  image digest: {record.image_digest or '-'}",
        f"  target:       {', '.join(f'{k}={v}' for k, v in sorted(record.target.items()))}",
        f"  runs on pool: {record.pool or '-'}",
        *(f"  reason:       {reason}" for reason in record.reasons),
        "  history:",
        *(f"    {event['at']} {event['kind']}{_event_note(event)}" for event in history),
    ]
    printer.result({**record.view(), "live": live, "history": history}, "\n".join(lines))
    return EXIT_OK


def _event_note(event: dict) -> str:
    notes = []
    if "attempt" in event:
        notes.append(f"attempt {event['attempt']}")
    if event.get("reasons"):
        notes.append(f"{len(event['reasons'])} reason(s)")
    for name in ("execution", "reason"):
        if event.get(name):
            notes.append(f"{name} {event[name]}")
    return f" ({', '.join(notes)})" if notes else ""


# -- register ---------------------------------------------------------------------------------------------
def register_version(args: argparse.Namespace, printer: Printer) -> int:
    check_names(args.service, args.version)
    env = Environment(args.env, args.region)
    known_service(env, args.service)
    outcome = env.registrar().register(args.service, args.version)
    lines = [f"{outcome.service} {outcome.version}: {outcome.outcome} (state {outcome.state})"]
    lines += [f"  reason: {reason}" for reason in outcome.reasons]
    if outcome.outcome == NOT_FOUND:
        raise CliError("; ".join(outcome.reasons), EXIT_NOT_FOUND)
    printer.result(outcome.as_dict(), "\n".join(lines))
    return EXIT_REJECTED if outcome.outcome == REJECTED else EXIT_OK


# -- validate ---------------------------------------------------------------------------------------------
def validate_local(args: argparse.Namespace, printer: Printer) -> int:
    """What the register function would say of the folder's manifest, and what `upload` would upload: a draft
    without `artifacts` is filled in from the folder's files, as `upload` fills it in."""
    from tessera_cli.upload_command import filled_manifest  # the upload's own rules for a folder

    manifest_path = args.path / MANIFEST_NAME if args.path.is_dir() else args.path
    if not manifest_path.is_file():
        raise CliError(f"{manifest_path} does not exist", EXIT_USAGE)
    catalog = _local_catalog(args)
    warnings: list[str] = []
    raw, from_draft = filled_manifest(manifest_path.parent, part_size=64 << 20)
    try:
        manifest = parse_manifest(raw)
    except ManifestError as error:
        reasons = error.reasons
    else:
        reasons = [] if from_draft else check_local_artifacts(manifest_path.parent, manifest)
        warnings = [] if from_draft else multipart_warnings(manifest)
        service = catalog.services.get(manifest.service)
        if service is None:
            reasons.append(f"service {manifest.service!r} is not in environment {args.env}")
        else:
            reasons += check_target_fit(manifest, service)
    valid = not reasons
    lines = [f"{manifest_path}: warning: {warning}" for warning in warnings]
    lines += [f"{manifest_path}: valid"] if valid else [f"{manifest_path}: {reason}" for reason in reasons]
    printer.result(
        {"path": str(manifest_path), "valid": valid, "reasons": reasons, "warnings": warnings}, "\n".join(lines)
    )
    return EXIT_OK if valid else EXIT_REJECTED


def _local_catalog(args: argparse.Namespace) -> Catalog:
    from stacks.config.environment import config_path_for, load_config  # config tooling only `validate` needs
    from stacks.config.errors import ConfigError
    from stacks.registration.catalog import build_catalog

    try:
        return build_catalog(load_config(args.config or config_path_for(args.env)))
    except ConfigError as error:
        raise CliError(f"{error.source}: {'; '.join(error.problems)}", EXIT_USAGE) from None


# -- upload -----------------------------------------------------------------------------------------------
def upload_version(args: argparse.Namespace, printer: Printer) -> int:
    from tessera_cli.upload_command import run_upload  # boto3's transfer manager and tqdm: only for uploads

    check_names(args.service, args.version)
    if not args.folder.is_dir():
        raise CliError(f"{args.folder} is not a folder", EXIT_USAGE)
    if not (args.folder / MANIFEST_NAME).is_file():
        raise CliError(f"{args.folder / MANIFEST_NAME} does not exist", EXIT_USAGE)
    env = Environment(args.env, args.region)
    catalog = known_service(env, args.service)
    manifest, body = run_upload(args, env, catalog)
    if args.no_wait:
        printer.result(
            {"service": args.service, "version": args.version, "outcome": "UPLOADED", "manifest": manifest},
            f"{args.service} {args.version}: uploaded; registration runs from the manifest's upload event",
        )
        return EXIT_OK
    print(f"waiting up to {args.timeout:g} s for the registration of {args.service} {args.version}", file=sys.stderr)
    return _wait_for_registration(args, env.store, digest(body), printer)


def _wait_for_registration(args: argparse.Namespace, store: RegistryStore, content: str, printer: Printer) -> int:
    deadline = time.monotonic() + args.timeout
    while True:
        record = store.get_version(args.service, args.version)
        if record is not None and record.digest == content:
            lines = [f"{record.service} {record.version}: {record.state} (image {record.image_digest or '-'})"]
            lines += [f"  reason: {reason}" for reason in record.reasons]
            printer.result({**record.view(), "outcome": record.state}, "\n".join(lines))
            return EXIT_REJECTED if record.state == REJECTED else EXIT_OK
        if record is not None and record.state != REJECTED:
            # Another manifest won the version: the registry records ours as a conflict; say so now.
            raise CliError(
                f"{args.service} {args.version} is already {record.state} with another manifest (digest "
                f"{record.digest[:12]}); yours is recorded as a conflict and changes nothing: publish a new version",
                EXIT_REJECTED,
            )
        if time.monotonic() >= deadline:
            raise CliError(
                f"uploaded, but no registration of {args.service} {args.version} within {args.timeout:.0f} s; "
                f"see `tessera models show {args.service} {args.version}` and `tessera models ignored`",
                EXIT_UNREACHABLE,
            )
        time.sleep(WAIT_POLL_SECONDS)


# -- promote ----------------------------------------------------------------------------------------------
def promote_version(args: argparse.Namespace, printer: Printer) -> int:
    from tessera_cli.promote import promote  # downloads and uploads: only for this command

    check_names(args.service, args.version)
    target, manifest, body = promote(args)
    if args.no_wait:
        printer.result(
            {"service": args.service, "version": args.version, "outcome": "UPLOADED", "manifest": manifest},
            f"{args.service} {args.version}: copied from {args.from_env} to {args.to_env}; registration runs from "
            "the manifest's upload event",
        )
        return EXIT_OK
    print(
        f"waiting up to {args.timeout:g} s for {args.to_env}'s registration of {args.service} {args.version}",
        file=sys.stderr,
    )
    return _wait_for_registration(args, target.store, digest(body), printer)


# -- ignored uploads -------------------------------------------------------------------------------------
def list_ignored(args: argparse.Namespace, printer: Printer) -> int:
    items = Environment(args.env, args.region).store.list_ignored()
    lines = [f"{item['at']}  {item.get('key') or '-'}\n    {item['reason']}" for item in items]
    human = "\n".join(lines) if items else "no uploads were ignored recently"
    printer.result({"ignored": items}, human)
    return EXIT_OK
