"""The registry's record of what a registered version is, in the model bucket: `registered/<service>/<version>.json`.

Written once by the register function when a version registers (S3 refuses a second write: If-None-Match, and
the bucket policy lets nobody else write there), read by the model loader in every pod. It names the exact
object versions the checks saw (S3 version ids) with each artifact's size and checksums, so that a pod loads
exactly what was registered and verifies every byte of it.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from registry.manifest import Manifest
from tessera_shared.constants import REGISTERED_ROOT

RECORD_FORMAT = 1


def record_key(service: str, version: str) -> str:
    return f"{REGISTERED_ROOT}{service}/{version}.json"


def build_record(
    manifest: Manifest,
    *,
    folder: str,
    manifest_digest: str,
    manifest_version_id: str | None,
    artifact_versions: dict[str, str | None],
) -> dict[str, Any]:
    provenance = {"promoted_from": manifest.promoted_from.model_dump()} if manifest.promoted_from else {}
    return {
        **provenance,
        "format": RECORD_FORMAT,
        "service": manifest.service,
        "version": manifest.version,
        "folder": folder,
        "manifest": {"version_id": manifest_version_id, "sha256": manifest_digest},
        "artifacts": [
            {
                "path": artifact.path,
                "version_id": artifact_versions.get(artifact.path),
                "size_bytes": artifact.size_bytes,
                "sha256": artifact.sha256,
                "s3_checksum_sha256": artifact.s3_checksum_sha256,
                "part_size_bytes": artifact.part_size_bytes,
                "parts_sha256": list(artifact.parts_sha256) if artifact.parts_sha256 else None,
            }
            for artifact in manifest.artifacts
        ],
    }


class RecordConflictError(Exception):
    """A record for this version already exists and says something else: nothing is registered over it."""


def write_record(s3: Any, *, bucket: str, record: dict[str, Any]) -> str:
    """Write the record once; a retry that finds the same record is done. Returns the key."""
    key = record_key(record["service"], record["version"])
    body = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*", ChecksumAlgorithm="SHA256")
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            raise
        existing = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        if existing != body:
            raise RecordConflictError(f"s3://{bucket}/{key} already records another content") from None
    return key
