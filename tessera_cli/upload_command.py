"""`tessera models upload`: check locally, upload the artifacts with progress bars, then the manifest."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tqdm import tqdm

from registry.catalog import Catalog
from registry.checks import check_target_fit
from registry.manifest import ManifestError, parse_manifest
from registry.registrar import Registrar
from tessera_cli.environment import Environment
from tessera_cli.errors import EXIT_REJECTED, EXIT_USAGE, CliError
from tessera_cli.upload import Uploader, UploadError, artifact_files, local_checksums, manifest_entry
from tessera_shared.constants import MANIFEST_NAME


def run_upload(args: argparse.Namespace, env: Environment, catalog: Catalog, *, quiet: bool) -> tuple[dict, bytes]:
    """Returns the manifest written and its bytes. Nothing is uploaded unless the manifest, with the local
    checksums filled in, passes every check that needs no AWS state (schema, names, target fit)."""
    folder: Path = args.folder
    draft = _read_draft(folder / MANIFEST_NAME)
    paths = [entry["path"] for entry in draft["artifacts"]] if draft.get("artifacts") else artifact_files(folder)
    missing = [path for path in paths if not (folder / path).is_file()]
    if missing:
        raise CliError(f"artifacts listed in the manifest are missing: {', '.join(missing)}", EXIT_USAGE)
    checksums = local_checksums(folder, paths, part_size=args.part_size_mib << 20)
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

    bucket = env.parameter("artifacts/model-bucket-name")
    uploader = Uploader(env.client("s3"), bucket=bucket, prefix=Registrar.folder(args.service, args.version))
    total = sum(c.size_bytes for c in checksums.values())
    uploaded = []
    with tqdm(total=total, unit="B", unit_scale=True, desc="all files", position=0, disable=quiet or None) as overall:
        for path, local in checksums.items():
            with tqdm(
                total=local.size_bytes,
                unit="B",
                unit_scale=True,
                desc=path,
                position=1,
                leave=False,
                disable=quiet or None,
            ) as bar:

                def advance(amount: int, bar: Any = bar) -> None:
                    bar.update(amount)
                    overall.update(amount)

                try:
                    uploaded.append(uploader.upload_artifact(folder, path, local, advance))
                except UploadError as error:
                    raise CliError(f"upload failed, manifest not written: {error}", EXIT_REJECTED) from None
    manifest = {**expected, "artifacts": [artifact.manifest_entry() for artifact in uploaded]}
    _, body = uploader.put_manifest(manifest)
    return manifest, body


def _read_draft(path: Path) -> dict:
    try:
        draft = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CliError(f"{path} is not valid JSON: {error}", EXIT_REJECTED) from None
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
        manifest = parse_manifest(json.dumps(expected).encode())
    except ManifestError as error:
        raise CliError("manifest is invalid, nothing uploaded: " + "; ".join(error.reasons), EXIT_REJECTED) from None
    reasons = check_target_fit(manifest, catalog.services[args.service])
    if reasons:
        raise CliError("version does not fit the service, nothing uploaded: " + "; ".join(reasons), EXIT_REJECTED)
