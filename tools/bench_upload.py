"""Benchmark (not a test): `tessera models upload`'s uploader on 1 GiB of generated data.

S3 is a moto server in a separate process (`moto_server`, from moto[server]): moto's in-process S3
assembles multipart uploads in memory, which would count against the uploader. This process is only
the uploader (plus the benchmark's file generation, done in 8 MiB blocks), so its peak resident set
(getrusage ru_maxrss) is the uploader's own peak memory. Reports the checksum pass and the upload
separately, in MB/s (10^6 bytes per second). Target: peak memory under 200 MB, whatever the file size.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "lambda")]

from tessera_cli.upload import DEFAULT_PART_BYTES, Uploader, local_checksums  # noqa: E402
from tools.moto_server import moto_s3  # noqa: E402

SIZE = 1 << 30
BLOCK = 8 << 20
BUCKET = "tessera-bench-models"
MEMORY_TARGET_MB = 200


def generate(path: Path) -> None:
    with path.open("wb") as stream:
        for _ in range(SIZE // BLOCK):
            stream.write(os.urandom(BLOCK))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> int:
    with moto_s3() as (s3, _):
        s3.create_bucket(Bucket=BUCKET)
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            generate(folder / "model.neff")
            before = peak_mb()
            started = time.perf_counter()
            [(path, local)] = local_checksums(folder, ["model.neff"], part_size=DEFAULT_PART_BYTES).items()
            hashed = time.perf_counter()
            uploaded = Uploader(s3, bucket=BUCKET, prefix="models/bench/v1/").upload_artifact(folder, path, local)
            done = time.perf_counter()
        peak = peak_mb()
    print(f"uploaded {SIZE / 1e6:.0f} MB in {local.part_count} parts of {DEFAULT_PART_BYTES >> 20} MiB to moto_server")
    print(f"  checksum pass: {SIZE / 1e6 / (hashed - started):7.1f} MB/s")
    print(f"  upload:        {SIZE / 1e6 / (done - hashed):7.1f} MB/s  (S3 recorded {uploaded.s3_checksum_sha256})")
    print(f"  end to end:    {SIZE / 1e6 / (done - started):7.1f} MB/s")
    print(f"  peak memory:   {peak:7.1f} MB (before the upload: {before:.1f} MB; target < {MEMORY_TARGET_MB} MB)")
    return 0 if peak < MEMORY_TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
