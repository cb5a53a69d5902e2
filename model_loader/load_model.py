"""Tessera's model loader: the init container of every model pod, run before the serving container starts.

It loads exactly what the registry registered into the model cache and verifies every byte:

1. reads `registered/<service>/<version>.json`, which the register function wrote once when the version registered
   (the model bucket lets nobody else write it, and nobody replace it): the S3 version id, size and SHA-256 of the
   manifest and of every artifact (and each part's SHA-256 for a multipart upload);
2. for each artifact, keeps a file already in the cache whose SHA-256 matches, else downloads that object version
   with parallel ranged GETs, each written in place at its offset (memory stays at a few read buffers per
   connection, whatever the model's size), then hashes the file once and compares the whole-file SHA-256 (or, for
   an artifact registered only by its composite, each part's);
3. on any mismatch or missing object, removes the partial file and exits 1 with the reason, which Kubernetes shows
   as the container's termination message: the pod never becomes ready with weights nobody registered.

It needs Python 3.9+ and boto3, nothing else: it runs in the service's own serving image, mounted from a ConfigMap
(stacks/services/model_loader.py), so `cdk deploy` alone ships it. Settings come from the pod's environment:
MODEL_S3_URI, SERVICE_NAME, MODEL_VERSION, MODEL_CACHE_DIR; TESSERA_LOADER_CONNECTIONS (default 8) and
TESSERA_LOADER_RANGE_MIB (default 64) tune the download.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

READ_BLOCK = 1 << 20
MAX_RECORD_BYTES = 64 << 20
REGISTERED_ROOT = "registered/"  # tessera_shared.constants.REGISTERED_ROOT; this script stands alone in the pod
TERMINATION_LOG = Path("/dev/termination-log")


class LoadError(Exception):
    """The model cannot be loaded as registered; the message is the pod's termination reason."""


def record_key(service: str, version: str) -> str:
    return f"{REGISTERED_ROOT}{service}/{version}.json"


def read_record(s3: Any, bucket: str, service: str, version: str) -> dict:
    key = record_key(service, version)
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except s3.exceptions.NoSuchKey:
        raise LoadError(f"{service} {version} is not registered: no record at s3://{bucket}/{key}") from None
    if response["ContentLength"] > MAX_RECORD_BYTES:
        raise LoadError(f"s3://{bucket}/{key} is larger than a registration record can be")
    record = json.loads(response["Body"].read())
    if record.get("service") != service or record.get("version") != version:
        raise LoadError(f"s3://{bucket}/{key} records {record.get('service')} {record.get('version')}")
    return record


def _inside(cache: Path, relative: str) -> Path:
    target = (cache / relative).resolve()
    if cache.resolve() not in target.parents:
        raise LoadError(f"artifact path {relative!r} leaves the model cache")
    return target


def digests(path: Path, part_size: int | None) -> tuple[str, list[str]]:
    """Whole-file SHA-256 (hex) and, with a part size, each part's, in one pass over the file. The same pass as
    registry/checksums.file_checksums, written again because this script runs alone in the pod."""
    whole, part, parts, in_part = hashlib.sha256(), hashlib.sha256(), [], 0
    with path.open("rb") as stream:
        while block := stream.read(READ_BLOCK if part_size is None else min(READ_BLOCK, part_size - in_part)):
            whole.update(block)
            if part_size is None:
                continue
            part.update(block)
            in_part += len(block)
            if in_part == part_size:
                parts.append(part.hexdigest())
                part, in_part = hashlib.sha256(), 0
    if part_size is not None and in_part:
        parts.append(part.hexdigest())
    return whole.hexdigest(), parts


def mismatch(path: Path, artifact: dict) -> str | None:
    """Why the file is not the registered artifact, or None when it is."""
    if path.stat().st_size != artifact["size_bytes"]:
        return f"is {path.stat().st_size} bytes, registered {artifact['size_bytes']}"
    whole, parts = digests(path, artifact.get("part_size_bytes") if artifact.get("parts_sha256") else None)
    if artifact.get("sha256") and whole != artifact["sha256"]:
        return f"has SHA-256 {whole}, registered {artifact['sha256']}"
    if artifact.get("parts_sha256") and parts != artifact["parts_sha256"]:
        registered = artifact["parts_sha256"]
        differing = sum(1 for index, got in enumerate(parts) if index >= len(registered) or got != registered[index])
        return f"has {differing} part(s) that do not match their registered SHA-256"
    if not artifact.get("sha256") and not artifact.get("parts_sha256"):
        stored = base64.b64encode(bytes.fromhex(whole)).decode()
        if stored != artifact.get("s3_checksum_sha256"):
            return f"has SHA-256 {stored} (base64), registered {artifact.get('s3_checksum_sha256')}"
    return None


class _Download:
    """One artifact being downloaded: its object version, written range by range into `<path>.partial`."""

    def __init__(self, bucket: str, key: str, artifact: dict, target: Path) -> None:
        self.bucket, self.key, self.artifact, self.target = bucket, key, artifact, target
        self.partial = target.with_name(target.name + ".partial")
        self.descriptor: int | None = None

    def open(self) -> None:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        with self.partial.open("wb") as stream:
            stream.truncate(self.artifact["size_bytes"])
        self.descriptor = os.open(self.partial, os.O_WRONLY)

    def fetch(self, s3: Any, offset: int, range_bytes: int) -> None:
        if self.descriptor is None:
            raise LoadError(f"{self.partial} is not open")
        size = self.artifact["size_bytes"]
        end = min(offset + range_bytes, size) - 1
        extra = {"VersionId": self.artifact["version_id"]} if self.artifact.get("version_id") else {}
        try:
            body = s3.get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={offset}-{end}", **extra)["Body"]
            position = offset
            while block := body.read(READ_BLOCK):
                os.pwrite(self.descriptor, block, position)
                position += len(block)
        except Exception as error:  # an S3 error: the object version is gone or unreadable
            where = f"s3://{self.bucket}/{self.key} ({self.artifact.get('version_id')})"
            raise LoadError(f"cannot download {where}: {error}") from None
        if position != end + 1:
            raise LoadError(f"s3://{self.bucket}/{self.key}: range {offset}-{end} ended early at {position}")

    def close(self) -> None:
        if self.descriptor is not None:
            os.close(self.descriptor)
            self.descriptor = None

    def finish(self) -> None:
        """Verify the downloaded file; only a verified file takes the artifact's name in the cache."""
        problem = mismatch(self.partial, self.artifact)
        if problem is not None:
            self.partial.unlink(missing_ok=True)
            raise LoadError(f"artifact {self.artifact['path']} {problem}: not loading it")
        self.partial.replace(self.target)


def load(
    s3: Any,
    *,
    model_uri: str,
    service: str,
    version: str,
    cache: Path,
    connections: int = 8,
    range_bytes: int = 64 << 20,
    say: Any = print,
) -> dict[str, int]:
    """Loads every registered artifact into `cache`; returns how many were downloaded and kept. The ranges of
    every artifact to download share one pool of connections; the files are then verified in parallel."""
    location = urlparse(model_uri)
    if location.scheme != "s3" or not location.netloc:
        raise LoadError(f"MODEL_S3_URI {model_uri!r} is not s3://<bucket>/<folder>/")
    bucket = location.netloc
    record = read_record(s3, bucket, service, version)
    targets = [(artifact, _inside(cache, artifact["path"])) for artifact in record["artifacts"]]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as hashing:
        cached = list(hashing.map(lambda pair: pair[1].is_file() and mismatch(pair[1], pair[0]) is None, targets))
    for (artifact, _), kept in zip(targets, cached):  # noqa: B905 - same length; strict= needs Python 3.10
        if kept:
            say(f"kept {artifact['path']}: already in the cache with its registered checksum")
    downloads = [
        _Download(bucket, f"{record['folder']}{artifact['path']}", artifact, target)
        for (artifact, target), kept in zip(targets, cached)  # noqa: B905 - as above
        if not kept
    ]
    try:
        for download in downloads:
            download.open()
        ranges = [(d, offset) for d in downloads for offset in range(0, d.artifact["size_bytes"], range_bytes)]
        with ThreadPoolExecutor(max_workers=connections) as pool:
            list(pool.map(lambda task: task[0].fetch(s3, task[1], range_bytes), ranges))
        for download in downloads:
            download.close()
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as hashing:
            list(hashing.map(_Download.finish, downloads))
    except BaseException:
        for download in downloads:
            download.close()
            download.partial.unlink(missing_ok=True)
        raise
    for download in downloads:
        say(f"loaded {download.artifact['path']} ({download.artifact['size_bytes']} bytes, SHA-256 verified)")
    return {"downloaded": len(downloads), "kept": len(targets) - len(downloads)}


def _setting(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise LoadError(f"{name} is not set in the pod's environment")
    return value


def main(s3: Any = None) -> int:
    try:
        if s3 is None:
            import boto3

            s3 = boto3.client("s3")
        counts = load(
            s3,
            model_uri=_setting("MODEL_S3_URI"),
            service=_setting("SERVICE_NAME"),
            version=_setting("MODEL_VERSION"),
            cache=Path(_setting("MODEL_CACHE_DIR")),
            connections=int(os.environ.get("TESSERA_LOADER_CONNECTIONS", "8")),
            range_bytes=int(os.environ.get("TESSERA_LOADER_RANGE_MIB", "64")) << 20,
        )
    except (LoadError, ValueError) as error:
        reason = f"model not loaded: {error}"
        print(reason, file=sys.stderr)
        if TERMINATION_LOG.exists():  # Kubernetes' terminationMessagePath: `kubectl describe pod` shows it
            TERMINATION_LOG.write_text(reason[:4000])
        return 1
    print(f"model ready: {counts['downloaded']} downloaded, {counts['kept']} kept from the cache")
    return 0


if __name__ == "__main__":
    sys.exit(main())
