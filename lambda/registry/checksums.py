"""SHA-256 checksums the way S3 records them, computed from a local file in one streaming pass.

S3 stores, for an object uploaded in one request with ChecksumAlgorithm SHA256, the base64 SHA-256 of
the object. For a multipart upload it stores a composite ("checksum of checksums"): the base64 SHA-256
of the concatenated binary SHA-256 digests of the parts, followed by `-<number of parts>` (Amazon S3
User Guide, "Checking object integrity", multipart uploads). SHA-256 has no full-object type for
multipart uploads, so the composite is reproducible only with the part size the upload used.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

READ_BLOCK = 1 << 20


@dataclass(frozen=True)
class LocalChecksums:
    size_bytes: int
    sha256: str  # hex, the whole file
    part_size_bytes: int | None  # None: uploaded in one request
    part_count: int
    s3_checksum_sha256: str  # what S3 should record: base64 whole-object, or composite `...-N`
    parts_sha256: tuple[str, ...] = ()  # hex SHA-256 of each part, for a multipart upload

    @property
    def multipart(self) -> bool:
        return self.part_size_bytes is not None


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def composite_checksum(part_digests: list[bytes]) -> str:
    return f"{b64(hashlib.sha256(b''.join(part_digests)).digest())}-{len(part_digests)}"


def file_checksums(path: Path, *, part_size: int | None) -> LocalChecksums:
    """Whole-file SHA-256 and, with a part size, the composite of its parts; memory stays at one block."""
    whole = hashlib.sha256()
    part_digests: list[bytes] = []
    part = hashlib.sha256()
    in_part = 0
    size = 0
    with path.open("rb") as stream:
        while block := stream.read(READ_BLOCK if part_size is None else min(READ_BLOCK, part_size - in_part)):
            whole.update(block)
            size += len(block)
            if part_size is None:
                continue
            part.update(block)
            in_part += len(block)
            if in_part == part_size:
                part_digests.append(part.digest())
                part, in_part = hashlib.sha256(), 0
    if part_size is not None and in_part:
        part_digests.append(part.digest())
    if part_size is None or not part_digests:
        return LocalChecksums(size, whole.hexdigest(), None, 1, b64(whole.digest()))
    return LocalChecksums(
        size,
        whole.hexdigest(),
        part_size,
        len(part_digests),
        composite_checksum(part_digests),
        tuple(digest.hex() for digest in part_digests),
    )
