"""`tessera models upload`: read the registry, check locally, upload what is not there yet, then the manifest.

Nothing is written unless the registry allows the version (not REGISTERED, never ran, not being rolled out),
every path in the folder is a regular file the operator meant to upload, the manifest with the local checksums
passes every check that needs no AWS state (schema, names, target fit), and no object already in S3 under the
version has other content. Every write is conditional (tessera_cli/upload.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from registry.bounded_json import deeper_than
from registry.catalog import Catalog
from registry.checks import check_target_fit
from registry.manifest import MAX_DEPTH, MAX_MANIFEST_BYTES, ManifestError, parse_manifest
from registry.registrar import Registrar
from registry.store import RegistryStore
from tessera_cli.environment import Environment
from tessera_cli.errors import EXIT_REJECTED, EXIT_USAGE, CliError
from tessera_cli.progress import UploadProgress
from tessera_cli.upload import (
    PathRefusedError,
    Uploader,
    UploadError,
    artifact_files,
    check_listed_files,
    local_checksums,
    manifest_bytes,
    manifest_entry,
)
from tessera_shared.constants import MANIFEST_NAME, REJECTED


def run_upload(args: argparse.Namespace, env: Environment, catalog: Catalog) -> tuple[dict, bytes]:
    """Returns the manifest written and its bytes."""
    folder: Path = args.folder
    draft = read_draft(folder / MANIFEST_NAME)
    paths = _artifact_paths(folder, draft)
    refuse_unless_uploadable(env.store, args.service, args.version)
    progress = UploadProgress(total_bytes=sum((folder / path).stat().st_size for path in paths))
    try:
        checksums = local_checksums(
            folder,
            paths,
            part_size=args.part_size_mib << 20,
            done=lambda path, local: progress.line(f"checksummed {path} ({local.size_bytes} bytes)"),
        )
        listed = {entry["path"]: entry for entry in draft.get("artifacts") or []}
        for path, local in checksums.items():
            stated = listed.get(path, {}).get("sha256")
            if stated is not None and stated != local.sha256:
                raise CliError(f"artifact {path}: the manifest's sha256 does not match the file", EXIT_REJECTED)
        expected = {
            **draft,
            "service": args.service,
            "version": args.version,
            "artifacts": [manifest_entry(path, local, local.s3_checksum_sha256) for path, local in checksums.items()],
        }
        _check_before_upload(draft, expected, args, catalog)
        uploader = Uploader(
            env.client("s3"),
            bucket=env.parameter("artifacts/model-bucket-name"),
            prefix=Registrar.folder(args.service, args.version),
        )
        manifest = _upload(uploader, folder, checksums, expected, progress)
    except UploadError as error:
        raise CliError(f"upload stopped, manifest not written: {error}", EXIT_REJECTED) from None
    finally:
        progress.close()
    return manifest, manifest_bytes(manifest)


def _upload(uploader: Uploader, folder: Path, checksums: dict, expected: dict, progress: UploadProgress) -> dict:
    # Look at every key first: other content anywhere stops the upload before a byte is sent.
    present = {path: uploader.present(path, local) for path, local in checksums.items()}
    uploaded = []
    for path, local in checksums.items():
        if present[path]:
            progress.skipped(path, local.size_bytes)
            uploaded.append(uploader.read_back(path, local))
            continue
        uploaded.append(uploader.upload_artifact(folder, path, local, progress.file(path, local.size_bytes)))
        progress.line(f"uploaded {path}")
    manifest = {**expected, "artifacts": [artifact.manifest_entry() for artifact in uploaded]}
    uploader.put_manifest(manifest)
    progress.line(f"uploaded {MANIFEST_NAME}")
    return manifest


def filled_manifest(folder: Path, *, part_size: int) -> tuple[bytes, bool]:
    """The folder's manifest as `upload` would write it, for `validate`: a draft that leaves `artifacts` out gets
    them from the folder's files, with their checksums (True: it was a draft). A manifest that lists artifacts
    with their checksums is checked as it is."""
    draft = read_draft(folder / MANIFEST_NAME)
    listed = draft.get("artifacts")
    if isinstance(listed, list) and listed and all(isinstance(e, dict) and "size_bytes" in e for e in listed):
        return (folder / MANIFEST_NAME).read_bytes(), False
    paths = _artifact_paths(folder, draft)
    checksums = local_checksums(folder, paths, part_size=part_size)
    filled = {**draft, "artifacts": [manifest_entry(p, c, c.s3_checksum_sha256) for p, c in checksums.items()]}
    return manifest_bytes(filled), True


def refuse_unless_uploadable(store: RegistryStore, service: str, version: str) -> None:
    """A version the registry holds as anything but a never-run REJECTED, or one being rolled out, is refused."""
    record = store.get_version(service, version)
    if record is not None and (record.state != REJECTED or record.deployed):
        ran = " and has run" if record.deployed else ""
        raise CliError(
            f"{service} {version} is {record.state}{ran}: its objects are never replaced; publish a new version",
            EXIT_REJECTED,
        )
    holder = store.rollout_lock(service)
    if holder is not None and holder.get("version") == version:
        raise CliError(
            f"{service} {version} is being rolled out ({holder.get('execution')}); publish a new version",
            EXIT_REJECTED,
        )


def _artifact_paths(folder: Path, draft: dict) -> list[str]:
    listed = draft.get("artifacts")
    try:
        if listed is None:
            return artifact_files(folder)
        if not isinstance(listed, list) or not listed:
            raise CliError(f"{folder / MANIFEST_NAME}: artifacts must be a non-empty list, or left out", EXIT_REJECTED)
        paths = []
        for index, entry in enumerate(listed):
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"]:
                raise CliError(
                    f"{folder / MANIFEST_NAME}: artifacts[{index}] must be an object with a path (a string)",
                    EXIT_REJECTED,
                )
            paths.append(entry["path"])
        check_listed_files(folder, paths)
        return paths
    except PathRefusedError as error:
        raise CliError(str(error), EXIT_USAGE) from None


def read_draft(path: Path) -> dict:
    """The folder's manifest.json, read as the register function reads a manifest: bounded before parsing."""
    size = path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise CliError(f"{path} is {size} bytes; a manifest is at most {MAX_MANIFEST_BYTES}", EXIT_REJECTED)
    raw = path.read_bytes()
    if deeper_than(raw, MAX_DEPTH):
        raise CliError(f"{path} is nested deeper than {MAX_DEPTH} levels", EXIT_REJECTED)
    try:
        draft = json.loads(raw)
    except ValueError as error:
        raise CliError(f"{path} is not valid JSON: {str(error)[:200]}", EXIT_REJECTED) from None
    if not isinstance(draft, dict):
        raise CliError(f"{path} must hold a JSON object", EXIT_REJECTED)
    return draft


def _check_before_upload(draft: dict, expected: dict, args: argparse.Namespace, catalog: Catalog) -> None:
    for name in ("service", "version"):
        if name in draft and draft[name] != getattr(args, name):
            raise CliError(
                f"the manifest names {name} {draft[name]!r}, the command {getattr(args, name)!r}", EXIT_USAGE
            )
    try:
        manifest = parse_manifest(manifest_bytes(expected))
    except ManifestError as error:
        raise CliError("manifest is invalid, nothing uploaded: " + "; ".join(error.reasons), EXIT_REJECTED) from None
    reasons = check_target_fit(manifest, catalog.services[args.service])
    if reasons:
        raise CliError("version does not fit the service, nothing uploaded: " + "; ".join(reasons), EXIT_REJECTED)
