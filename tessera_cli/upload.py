"""Uploads a model version's folder: artifacts first, then the manifest (whose arrival registers it).

Every file is read twice from disk and never held in memory: one streaming pass computes its SHA-256 and,
for a file that goes up in parts, the composite checksum S3 will record; boto3's S3 transfer then
streams it with ChecksumAlgorithm SHA256 and a part size chosen here, so that the composite is
reproducible. What S3 reports after each upload is what the manifest records.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig

from registry.checksums import LocalChecksums, file_checksums
from registry.manifest import MAX_PART_BYTES, MAX_PARTS, MIN_PART_BYTES
from tessera_shared.constants import MANIFEST_NAME

DEFAULT_PART_BYTES = 64 << 20
MAX_CONCURRENCY = 4  # parts in flight: memory stays near MAX_CONCURRENCY x part size, whatever the file size


class UploadError(Exception):
    pass


@dataclass(frozen=True)
class UploadedArtifact:
    path: str
    checksums: LocalChecksums
    s3_checksum_sha256: str  # as S3 reported it

    def manifest_entry(self) -> dict:
        return manifest_entry(self.path, self.checksums, self.s3_checksum_sha256)


def manifest_entry(path: str, checksums: LocalChecksums, s3_checksum_sha256: str) -> dict:
    """The manifest's record of one artifact: sizes and checksums, with each part's for a multipart upload."""
    entry: dict[str, Any] = {
        "path": path,
        "size_bytes": checksums.size_bytes,
        "sha256": checksums.sha256,
        "s3_checksum_sha256": s3_checksum_sha256,
    }
    if checksums.multipart:
        entry |= {
            "part_size_bytes": checksums.part_size_bytes,
            "part_count": checksums.part_count,
            "parts_sha256": list(checksums.parts_sha256),
        }
    return entry


def part_size_for(size: int, requested: int) -> int:
    """The requested part size, raised (in MiB steps) where a file would need more than S3's 10,000 parts."""
    needed = -(-size // MAX_PARTS)
    part = max(requested, MIN_PART_BYTES, -(-needed // (1 << 20)) * (1 << 20))
    if part > MAX_PART_BYTES:
        raise UploadError(f"a file of {size} bytes does not fit in {MAX_PARTS} parts of at most 5 GiB")
    return part


def artifact_files(folder: Path) -> list[str]:
    """Every regular file under the folder except the manifest and hidden files, as POSIX paths."""
    return sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file()
        and path.name != MANIFEST_NAME
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def local_checksums(folder: Path, paths: list[str], *, part_size: int) -> dict[str, LocalChecksums]:
    """What S3 should record for each file, given the upload's part size (multipart at or above it)."""
    result = {}
    for relative in paths:
        path = folder / relative
        size = path.stat().st_size
        part = part_size_for(size, part_size)
        result[relative] = file_checksums(path, part_size=part if size >= part else None)
    return result


class Uploader:
    def __init__(self, s3: Any, *, bucket: str, prefix: str) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._prefix = prefix

    def upload_artifact(
        self, folder: Path, relative: str, local: LocalChecksums, progress: Callable[[int], None] | None = None
    ) -> UploadedArtifact:
        part = local.part_size_bytes or part_size_for(local.size_bytes, DEFAULT_PART_BYTES)
        # multipart exactly when the checksum pass assumed it: at or above the threshold, in parts of that size
        threshold = local.part_size_bytes or max(local.size_bytes + 1, MIN_PART_BYTES)
        config = TransferConfig(
            multipart_threshold=threshold, multipart_chunksize=part, max_concurrency=MAX_CONCURRENCY
        )
        key = f"{self._prefix}{relative}"
        self._s3.upload_file(
            str(folder / relative),
            self._bucket,
            key,
            ExtraArgs={"ChecksumAlgorithm": "SHA256"},
            Config=config,
            Callback=progress,
        )
        reported = self._s3.head_object(Bucket=self._bucket, Key=key, ChecksumMode="ENABLED")
        stored = reported.get("ChecksumSHA256")
        if reported["ContentLength"] != local.size_bytes:
            raise UploadError(
                f"{relative}: S3 holds {reported['ContentLength']} bytes, the file has {local.size_bytes}"
            )
        if stored is None or not _same_checksum(stored, local):
            raise UploadError(f"{relative}: S3 recorded checksum {stored}, the file gives {local.s3_checksum_sha256}")
        return UploadedArtifact(relative, local, stored)

    def put_manifest(self, manifest: dict) -> tuple[str, bytes]:
        body = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        key = f"{self._prefix}{MANIFEST_NAME}"
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256")
        return key, body


def _same_checksum(stored: str, local: LocalChecksums) -> bool:
    """S3 reports a composite with its `-N` suffix; moto (the test stand-in) reports it without."""
    if stored == local.s3_checksum_sha256:
        return True
    return local.multipart and stored == local.s3_checksum_sha256.rsplit("-", 1)[0]
