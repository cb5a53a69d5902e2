"""Uploads a model version's folder: artifacts first, then the manifest (whose arrival registers it).

Every object is written with `If-None-Match: *`, so S3 refuses to replace anything (the model bucket's policy
refuses writes without it): a single PUT for a file below the part size, otherwise a multipart upload whose
completion carries the condition. boto3's transfer manager cannot send that condition on uploads, so the
multipart upload is driven here: parts go up MAX_CONCURRENCY at a time, each streamed from its slice of the file
with the SHA-256 the checksum pass computed, so memory stays near MAX_CONCURRENCY read buffers whatever the size.

Before anything is written, each key is looked at: an object already there with the same size and checksum is
kept (an interrupted upload resumes), one with other content stops the upload with its path named.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from registry.checksums import LocalChecksums, b64, file_checksums
from registry.manifest import MAX_PART_BYTES, MAX_PARTS, MIN_PART_BYTES
from tessera_shared.constants import MANIFEST_NAME

DEFAULT_PART_BYTES = 64 << 20
MAX_CONCURRENCY = 4  # parts in flight
PRECONDITION_FAILED = ("PreconditionFailed", "412", "ConditionalRequestConflict")
NOT_FOUND = ("404", "NoSuchKey", "NotFound")

Progress = Callable[[int], None]


class UploadError(Exception):
    pass


class PathRefusedError(UploadError):
    """A path in the folder that is neither uploaded nor skipped silently: a hidden path or a symbolic link."""


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
    """Every regular file under the folder but its own manifest.json, as POSIX paths. A hidden path or a symbolic
    link is refused with its name: neither is uploaded or left out without the operator deciding."""
    files, refused = [], []
    for directory, subdirectories, names in os.walk(folder, followlinks=False):
        base = Path(directory)
        for name in sorted(subdirectories):
            if (base / name).is_symlink():
                refused.append(f"{(base / name).relative_to(folder).as_posix()} (a symbolic link to a folder)")
        for name in names:
            path = base / name
            relative = path.relative_to(folder).as_posix()
            if relative == MANIFEST_NAME:
                continue
            if path.is_symlink():
                refused.append(f"{relative} (a symbolic link)")
            elif any(part.startswith(".") for part in Path(relative).parts):
                refused.append(f"{relative} (a hidden path)")
            elif path.is_file():
                files.append(relative)
    if refused:
        raise PathRefusedError(
            "not uploaded: " + ", ".join(sorted(refused)) + ". Tessera uploads regular files only and leaves no "
            "file out silently: remove these, or list the artifacts to upload in manifest.json"
        )
    return sorted(files)


def check_listed_files(folder: Path, paths: list[str]) -> None:
    """Listed artifacts must be regular files inside the folder, reached without a symbolic link."""
    problems = []
    for relative in paths:
        path = folder / relative
        if any(
            (folder / Path(*Path(relative).parts[: depth + 1])).is_symlink()
            for depth in range(len(Path(relative).parts))
        ):
            problems.append(f"{relative} (a symbolic link)")
        elif not path.is_file():
            problems.append(f"{relative} (missing, or not a regular file)")
    if problems:
        raise PathRefusedError("artifacts listed in the manifest cannot be uploaded: " + ", ".join(problems))


def local_checksums(
    folder: Path, paths: list[str], *, part_size: int, done: Callable[[str, LocalChecksums], None] | None = None
) -> dict[str, LocalChecksums]:
    """What S3 should record for each file, given the upload's part size (multipart at or above it)."""
    result = {}
    for relative in paths:
        path = folder / relative
        size = path.stat().st_size
        part = part_size_for(size, part_size)
        result[relative] = file_checksums(path, part_size=part if size >= part else None)
        if done is not None:
            done(relative, result[relative])
    return result


class _FileSlice:
    """A read-only window on a file, for one part: botocore streams it instead of holding the part in memory."""

    def __init__(self, path: Path, offset: int, length: int) -> None:
        self._stream = path.open("rb")
        self._offset, self._length, self._position = offset, length, 0
        self._stream.seek(offset)

    def read(self, amount: int = -1) -> bytes:
        left = self._length - self._position
        data = self._stream.read(left if amount is None or amount < 0 else min(amount, left))
        self._position += len(data)
        return data

    def seek(self, position: int, whence: int = 0) -> int:
        target = {0: position, 1: self._position + position, 2: self._length + position}[whence]
        self._position = max(0, min(target, self._length))
        self._stream.seek(self._offset + self._position)
        return self._position

    def tell(self) -> int:
        return self._position

    def __len__(self) -> int:
        return self._length

    def close(self) -> None:
        self._stream.close()


class Uploader:
    def __init__(self, s3: Any, *, bucket: str, prefix: str) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._prefix = prefix

    def key(self, relative: str) -> str:
        return f"{self._prefix}{relative}"

    def present(self, relative: str, local: LocalChecksums) -> bool:
        """Whether the object is already there with this content (False: absent). UploadError for other content."""
        try:
            head = self._s3.head_object(Bucket=self._bucket, Key=self.key(relative), ChecksumMode="ENABLED")
        except ClientError as error:
            if error.response["Error"]["Code"] in NOT_FOUND:
                return False
            raise
        stored = head.get("ChecksumSHA256")
        if head["ContentLength"] == local.size_bytes and stored is not None and _same_checksum(stored, local):
            return True
        raise UploadError(
            f"{relative}: S3 already holds other content at s3://{self._bucket}/{self.key(relative)} "
            f"({head['ContentLength']} bytes, checksum {stored}); a version's objects are never replaced: "
            "publish a new version"
        )

    def upload_artifact(
        self, folder: Path, relative: str, local: LocalChecksums, progress: Progress | None = None
    ) -> UploadedArtifact:
        key = self.key(relative)
        try:
            if local.multipart:
                self._multipart(folder / relative, key, local, progress)
            else:
                with (folder / relative).open("rb") as body:
                    self._s3.put_object(
                        Bucket=self._bucket,
                        Key=key,
                        Body=body,
                        ChecksumAlgorithm="SHA256",
                        ChecksumSHA256=b64(bytes.fromhex(local.sha256)),
                        IfNoneMatch="*",
                    )
                if progress is not None:
                    progress(local.size_bytes)
        except ClientError as error:
            if error.response["Error"]["Code"] in PRECONDITION_FAILED:
                raise UploadError(f"{relative}: S3 refused the write: the object appeared meanwhile") from None
            raise
        return self.read_back(relative, local)

    def _multipart(self, path: Path, key: str, local: LocalChecksums, progress: Progress | None) -> None:
        part_size = local.part_size_bytes or local.size_bytes
        upload_id = self._s3.create_multipart_upload(Bucket=self._bucket, Key=key, ChecksumAlgorithm="SHA256")[
            "UploadId"
        ]

        def send(number: int) -> dict:
            offset = (number - 1) * part_size
            length = min(part_size, local.size_bytes - offset)
            checksum = b64(bytes.fromhex(local.parts_sha256[number - 1]))
            body = _FileSlice(path, offset, length)
            try:
                answer = self._s3.upload_part(
                    Bucket=self._bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=body,
                    ContentLength=length,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=checksum,
                )
            finally:
                body.close()
            if progress is not None:
                progress(length)
            return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum}

        try:
            with ThreadPoolExecutor(max_workers=MAX_CONCURRENCY) as pool:
                parts = list(pool.map(send, range(1, local.part_count + 1)))
            self._s3.complete_multipart_upload(
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
        except BaseException:
            self._s3.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
            raise

    def read_back(self, relative: str, local: LocalChecksums) -> UploadedArtifact:
        """What S3 recorded for an artifact, checked against the file (after an upload, or an earlier run's)."""
        reported = self._s3.head_object(Bucket=self._bucket, Key=self.key(relative), ChecksumMode="ENABLED")
        stored = reported.get("ChecksumSHA256")
        if reported["ContentLength"] != local.size_bytes:
            raise UploadError(
                f"{relative}: S3 holds {reported['ContentLength']} bytes, the file has {local.size_bytes}"
            )
        if stored is None or not _same_checksum(stored, local):
            raise UploadError(f"{relative}: S3 recorded checksum {stored}, the file gives {local.s3_checksum_sha256}")
        return UploadedArtifact(relative, local, stored)

    def stored_checksum(self, relative: str, local: LocalChecksums) -> UploadedArtifact:
        """An artifact an earlier run uploaded: what S3 recorded for it."""
        return self.read_back(relative, local)

    def put_manifest(self, manifest: dict) -> tuple[str, bytes]:
        """Write the manifest once; a manifest already there with the same bytes is the same upload resumed."""
        body = manifest_bytes(manifest)
        key = self.key(MANIFEST_NAME)
        try:
            self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256", IfNoneMatch="*")
        except ClientError as error:
            if error.response["Error"]["Code"] not in PRECONDITION_FAILED:
                raise
            existing = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
            if existing != body:
                raise UploadError(
                    f"{MANIFEST_NAME}: another manifest is already at s3://{self._bucket}/{key}; a version's "
                    "objects are never replaced: publish a new version"
                ) from None
        return key, body


def manifest_bytes(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def _same_checksum(stored: str, local: LocalChecksums) -> bool:
    """S3 reports a composite with its `-N` suffix; moto (the test stand-in) reports it without."""
    if stored == local.s3_checksum_sha256:
        return True
    return local.multipart and stored == local.s3_checksum_sha256.rsplit("-", 1)[0]
