"""Benchmark (not a test): the model loader (model_loader/load_model.py) on a 1 GiB model, against a single-stream
boto3 download of the same objects.

S3 is a moto server in a process of its own. The model is 16 shards of 64 MiB (as safetensors checkpoints come):
moto copies a whole object under a lock for every ranged GET, so ranges of one 1 GiB object would measure moto,
not the loader. The registry's record is written as the register function writes it. The loader and the
baseline each run in a child process, one after the other, so each one's peak resident set (getrusage of the
children: the largest of them so far) is its own. Reports MB/s (10^6 bytes per second; download and verification
for the loader), peak memory, and the ratio. Targets: at least 3x the baseline, loader peak under 300 MB whatever
the model size.

On a small machine against a local moto server both sides are CPU-bound and a single stream is not held back by
anything (S3 holds one connection to far less than a local server does), so the ratio here shows what the
loader's parallelism gains with no network in the way; see the issue note for the figures.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "lambda")]

from tools.moto_server import CREDENTIALS, moto_s3  # noqa: E402

SIZE = 1 << 30
SHARD = 64 << 20
SHARDS = SIZE // SHARD
BUCKET = "tessera-bench-models"
SERVICE, VERSION = "bench", "v1"
FOLDER = f"models/{SERVICE}/{VERSION}/"
MEMORY_TARGET_MB = 300
SPEEDUP_TARGET = 3.0

LOADER = """
import sys
from model_loader.load_model import main
sys.exit(main())
"""
BASELINE = """
import boto3, sys
s3 = boto3.client("s3")
bucket, folder, target, paths = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
for path in paths:  # one GET per object, one after the other, streamed to disk
    body = s3.get_object(Bucket=bucket, Key=folder + path)["Body"]
    with open(f"{target}/{path}", "wb") as out:
        while block := body.read(1 << 20):
            out.write(block)
"""


def upload(s3: Any, path: str) -> dict:
    """A shard of random data; returns the artifact as the registry records it."""
    data = os.urandom(SHARD)
    answer = s3.put_object(Bucket=BUCKET, Key=f"{FOLDER}{path}", Body=data, ChecksumAlgorithm="SHA256")
    return {
        "path": path,
        "version_id": answer.get("VersionId"),
        "size_bytes": SHARD,
        "sha256": hashlib.sha256(data).hexdigest(),
        "s3_checksum_sha256": answer.get("ChecksumSHA256"),
        "part_size_bytes": None,
        "parts_sha256": None,
    }


def child_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, cwd=REPO_ROOT)
    return time.perf_counter() - started


def main() -> int:
    with moto_s3() as (s3, port):
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        artifacts = [upload(s3, f"model-{index:05d}-of-{SHARDS:05d}.safetensors") for index in range(SHARDS)]
        record = {"format": 1, "service": SERVICE, "version": VERSION, "folder": FOLDER, "artifacts": artifacts}
        s3.put_object(Bucket=BUCKET, Key=f"registered/{SERVICE}/{VERSION}.json", Body=json.dumps(record).encode())
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
            "PYTHONPATH": str(REPO_ROOT),
        }
        with tempfile.TemporaryDirectory() as scratch:
            os.mkdir(f"{scratch}/baseline")
            paths = [artifact["path"] for artifact in artifacts]
            baseline_seconds = timed(
                [sys.executable, "-c", BASELINE, BUCKET, FOLDER, f"{scratch}/baseline", *paths], env
            )
            baseline_peak = child_peak_mb()
            for path in paths:
                os.remove(f"{scratch}/baseline/{path}")
            loader_env = {
                **env,
                "MODEL_S3_URI": f"s3://{BUCKET}/{FOLDER}",
                "SERVICE_NAME": SERVICE,
                "MODEL_VERSION": VERSION,
                "MODEL_CACHE_DIR": f"{scratch}/cache",
            }
            loader_seconds = timed([sys.executable, "-c", LOADER], loader_env)
            loader_peak = child_peak_mb()  # the larger of the two children's peaks
            cached_seconds = timed([sys.executable, "-c", LOADER], loader_env)
    baseline_rate, loader_rate = SIZE / 1e6 / baseline_seconds, SIZE / 1e6 / loader_seconds
    ratio = loader_rate / baseline_rate
    print(f"loaded {SIZE / 1e6:.0f} MB ({SHARDS} objects of {SHARD >> 20} MiB) from moto_server")
    print(f"  single-stream boto3 download: {baseline_rate:7.1f} MB/s  (peak {baseline_peak:.0f} MB)")
    print(f"  loader, download + verify:    {loader_rate:7.1f} MB/s  ({ratio:.1f}x; target >= {SPEEDUP_TARGET}x)")
    print(f"  loader peak memory:           {loader_peak:7.1f} MB  (max of both runs; target < {MEMORY_TARGET_MB} MB)")
    print(f"  loader with a warm cache:     {cached_seconds:7.1f} s (verifies, downloads nothing)")
    return 0 if ratio >= SPEEDUP_TARGET and loader_peak < MEMORY_TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
