"""`tessera models promote <service> <version> --from dev --to prod`: the exact bytes a source environment
registered (and, unless `--allow-unpromoted`, promoted) become the same version in a target environment, where the
target's own registration checks them as any upload.

What is read is what the source's registry recorded, never what is in its bucket now: the registered record
(`registered/<service>/<version>.json`) names each artifact's and the manifest's S3 object version with its
checksums. Every artifact is downloaded by that version id into a private temporary folder and its SHA-256 checked
(and each part's, for a multipart upload) before anything is written to the target; the manifest is read by its
version id and its SHA-256 checked too. The manifest written to the target is the source's with two changes: the
image repository is the target's (the same tag, which must already be in the target's ECR at the same digest: the
promoted version serves the same image bytes), and `promoted_from` records the source environment, its manifest's
SHA-256 and version id, the image digest and the state the source held it in. The upload itself is
`tessera models upload`'s (conditional writes, checksums S3 verifies, the manifest last).

Reads the source and writes the target with the operator's credentials, or, for environments in two accounts, each
with its own named profile (`--from-profile`, `--to-profile`): the source is only read (its registry, parameters
and bucket), the target written as an upload would be.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from registry.manifest import MAX_MANIFEST_BYTES, digest
from registry.registered_record import record_key
from registry.registrar import Registrar
from registry.store import VersionRecord
from tessera_cli.environment import Environment
from tessera_cli.errors import EXIT_NOT_FOUND, EXIT_REJECTED, EXIT_UNREACHABLE, EXIT_USAGE, CliError
from tessera_cli.names import known_service
from tessera_shared.constants import MANIFEST_NAME, PROMOTED, REJECTED

CHUNK_BYTES = 8 << 20


def promotion_folder(args: argparse.Namespace, source: Environment, target: Environment, folder: Path) -> VersionRecord:
    """Fills `folder` with the version's artifacts and the manifest to write to the target, every byte checked
    against the source registry's record. Returns the source's version record."""
    if args.from_env == args.to_env:
        raise CliError(f"--from and --to are both {args.from_env!r}: promote between two environments", EXIT_USAGE)
    record = source.store.get_version(args.service, args.version)
    if record is None:
        raise CliError(f"{args.service} {args.version} is not in {args.from_env}'s registry", EXIT_NOT_FOUND)
    if record.state == REJECTED:
        raise CliError(
            f"{args.service} {args.version} is REJECTED in {args.from_env}: nothing to promote", EXIT_REJECTED
        )
    if record.state != PROMOTED and not args.allow_unpromoted:
        raise CliError(
            f"{args.service} {args.version} is {record.state} in {args.from_env}, not PROMOTED: only a version that "
            "served as stable there is promoted (--allow-unpromoted to promote it anyway)",
            EXIT_REJECTED,
        )
    bucket = source.parameter("artifacts/model-bucket-name")
    s3 = source.client("s3")
    registered = _json_object(s3, bucket, record_key(args.service, args.version), None)
    manifest_raw = _read(s3, bucket, f"{Registrar.folder(args.service, args.version)}{MANIFEST_NAME}", registered)
    manifest = json.loads(manifest_raw)
    for artifact in registered["artifacts"]:
        _download_checked(s3, bucket, Registrar.folder(args.service, args.version), artifact, folder)
    repository = _target_repository(target, args.service, manifest["image"]["tag"], record.image_digest)
    manifest["image"] = {**manifest["image"], "repository": repository}
    manifest["promoted_from"] = {
        "environment": args.from_env,
        "version": args.version,
        "manifest_sha256": registered["manifest"]["sha256"],
        "manifest_version_id": registered["manifest"]["version_id"],
        "image_digest": record.image_digest,
        "state": record.state,
    }
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    return record


def _read(s3: Any, bucket: str, key: str, registered: dict) -> bytes:
    """The manifest as registered: by its recorded version id, its SHA-256 checked."""
    recorded = registered["manifest"]
    raw = _object(s3, bucket, key, recorded.get("version_id")).read(MAX_MANIFEST_BYTES + 1)
    if digest(raw) != recorded["sha256"]:
        raise CliError(f"s3://{bucket}/{key}: not the manifest the registry recorded (SHA-256 differs)", EXIT_REJECTED)
    return raw


def _json_object(s3: Any, bucket: str, key: str, version_id: str | None) -> dict:
    try:
        document = json.loads(_object(s3, bucket, key, version_id).read(MAX_MANIFEST_BYTES * 4))
    except ValueError:
        raise CliError(f"s3://{bucket}/{key} is not the registry's JSON record", EXIT_REJECTED) from None
    if not isinstance(document, dict) or not isinstance(document.get("artifacts"), list):
        raise CliError(f"s3://{bucket}/{key} is not the registry's JSON record", EXIT_REJECTED)
    return document


def _object(s3: Any, bucket: str, key: str, version_id: str | None) -> Any:
    request = {"Bucket": bucket, "Key": key, **({"VersionId": version_id} if version_id else {})}
    try:
        return s3.get_object(**request)["Body"]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "NoSuchVersion", "404"):
            raise CliError(
                f"s3://{bucket}/{key} ({version_id or 'current'}) is gone from the source", EXIT_NOT_FOUND
            ) from None
        raise CliError(f"cannot read s3://{bucket}/{key}: {code or error}", EXIT_UNREACHABLE) from None


def _download_checked(s3: Any, bucket: str, prefix: str, artifact: dict, folder: Path) -> None:
    """The artifact's recorded object version, written under `folder` while its SHA-256 (and each part's) is
    computed; a byte that differs from the record stops the promotion before the target is touched."""
    path = str(artifact["path"])
    destination = folder / path
    if not destination.resolve().is_relative_to(folder.resolve()):
        raise CliError(f"the registered record names a path outside the version folder: {path!r}", EXIT_REJECTED)
    destination.parent.mkdir(parents=True, exist_ok=True)
    body = _object(s3, bucket, prefix + path, artifact.get("version_id"))
    whole = hashlib.sha256()
    part_size, parts = artifact.get("part_size_bytes"), []
    part, in_part = hashlib.sha256(), 0
    with destination.open("wb") as out:
        while chunk := body.read(CHUNK_BYTES):
            out.write(chunk)
            whole.update(chunk)
            while part_size and chunk:
                take = chunk[: part_size - in_part]
                part.update(take)
                in_part += len(take)
                chunk = chunk[len(take) :]
                if in_part == part_size:
                    parts.append(part.hexdigest())
                    part, in_part = hashlib.sha256(), 0
    if part_size and in_part:
        parts.append(part.hexdigest())
    problems = []
    if artifact.get("sha256") and whole.hexdigest() != artifact["sha256"]:
        problems.append(f"SHA-256 {whole.hexdigest()} is not the registered {artifact['sha256']}")
    if artifact.get("parts_sha256") and parts != artifact["parts_sha256"]:
        problems.append("its parts' SHA-256 are not the registered ones")
    if destination.stat().st_size != artifact.get("size_bytes"):
        problems.append(f"{destination.stat().st_size} bytes, the registry recorded {artifact.get('size_bytes')}")
    if problems:
        raise CliError(f"artifact {path} in {bucket}: {'; '.join(problems)}; nothing promoted", EXIT_REJECTED)


def _target_repository(target: Environment, service: str, tag: str, image_digest: str | None) -> str:
    """The service's repository in the target, which must hold the tag at the digest the source registered."""
    catalog = target.catalog
    if service not in catalog.services:
        raise CliError(f"{service} is not a service of the target environment {target.name}", EXIT_NOT_FOUND)
    repository = catalog.services[service].repository
    try:
        details = target.client("ecr").describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
        found = details["imageDetails"][0]["imageDigest"]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code not in ("ImageNotFoundException", "RepositoryNotFoundException"):
            raise CliError(f"cannot read {repository} in {target.name}: {code or error}", EXIT_UNREACHABLE) from None
        found = None
    if found is None:
        raise CliError(
            f"image {repository}:{tag} is not in {target.name}'s registry: push or replicate the image the source "
            f"registered ({image_digest}) first; nothing promoted",
            EXIT_REJECTED,
        )
    if image_digest is not None and found != image_digest:
        raise CliError(
            f"image {repository}:{tag} in {target.name} is {found}, the source registered {image_digest}: the "
            "promoted version must serve the same image; nothing promoted",
            EXIT_REJECTED,
        )
    return repository


def promote(args: argparse.Namespace) -> tuple[Environment, dict, bytes]:
    """Runs the promotion up to the manifest's upload to the target; returns the target, the manifest and its
    bytes (the registration runs from its upload event, as for `tessera models upload`)."""
    from tessera_cli.upload_command import run_upload

    source = Environment(args.from_env, args.region, args.from_profile)
    target = Environment(args.to_env, args.region, args.to_profile)
    catalog = known_service(target, args.service)
    with tempfile.TemporaryDirectory(prefix="tessera-promote-") as temporary:
        folder = Path(temporary)
        promotion_folder(args, source, target, folder)
        upload_args = argparse.Namespace(**{**vars(args), "folder": folder})
        manifest, body = run_upload(upload_args, target, catalog)
    return target, manifest, body
