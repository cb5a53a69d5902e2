"""Benchmark (not a test): the register function's artifact checks (HEAD of every artifact, in parallel) for a
version of 1,000 artifacts, against a moto server in a process of its own. Target: under 5 s, well inside the
function's 60 s timeout even where real S3 answers a HEAD several times slower than a local server."""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "lambda")]

from registry.checks import inspect_artifacts  # noqa: E402
from registry.manifest import Manifest  # noqa: E402
from tools.moto_server import moto_s3  # noqa: E402

ARTIFACTS = 1000
BUCKET = "tessera-bench-models"
FOLDER = "models/assistant/v1/"
TARGET_SECONDS = 5.0


def manifest(shards: dict[str, bytes]) -> Manifest:
    return Manifest.model_validate(
        {
            "schema_version": 1,
            "service": "assistant",
            "model": "bench",
            "version": "v1",
            "image": {"repository": "tessera/dev/assistant", "tag": "bench"},
            "compile_target": {"accelerator": "cpu", "architecture": "arm64"},
            "artifacts": [
                {"path": path, "size_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                for path, data in shards.items()
            ],
        }
    )


def main() -> int:
    with moto_s3() as (s3, _):
        s3.create_bucket(Bucket=BUCKET)
        shards = {f"shard-{index:04d}.bin": f"shard {index}".encode() for index in range(ARTIFACTS)}
        for path, data in shards.items():
            s3.put_object(Bucket=BUCKET, Key=FOLDER + path, Body=data, ChecksumAlgorithm="SHA256")
        version = manifest(shards)
        started = time.perf_counter()
        reasons, _ = inspect_artifacts(s3, bucket=BUCKET, folder=FOLDER, manifest=version)
        seconds = time.perf_counter() - started
    print(f"checked {ARTIFACTS} artifacts against moto_server in {seconds:.2f} s (target < {TARGET_SECONDS:g} s)")
    if reasons:
        print(f"  unexpected reasons: {reasons[:3]}")
    return 0 if seconds < TARGET_SECONDS and not reasons else 1


if __name__ == "__main__":
    sys.exit(main())
