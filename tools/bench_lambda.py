"""Benchmark (not a test): cold import time of each Lambda handler module, and the Lambda asset size.

Each import runs in a fresh interpreter (a cold start imports everything once); the figure is the
median of several runs. Targets: under 300 ms per handler module, under 256 KB zipped asset.
"""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import sys
import zipfile
from fnmatch import fnmatch
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LAMBDA_DIR = REPO_ROOT / "lambda"
# Each function's handler module, and what its first real request imports on top (both load lazily).
MODULES = [
    "registry.handler",
    "registry.registrar",
    "rollout.handler",
    "rollout.steps.start",
    "rollout.steps.canary",
    "rollout.steps.analysis",
    "rollout.steps.promotion",
]
EXCLUDES = ["**/__pycache__", "**/*.pyc", "*.md", "**/*.md"]  # as stacks/common/lambda_function.py
IMPORT_TARGET_MS = 300
ASSET_TARGET_KB = 256
MEASURE = "import sys, time; t = time.perf_counter(); __import__(sys.argv[1]); print(time.perf_counter() - t)"


def import_seconds(module: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(LAMBDA_DIR), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, module], env=env, cwd=LAMBDA_DIR, capture_output=True, text=True, check=True
    )
    return float(result.stdout.strip())


def asset_zip_bytes() -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(LAMBDA_DIR.rglob("*")):
            relative = path.relative_to(LAMBDA_DIR).as_posix()
            if path.is_file() and not any(fnmatch(relative, pattern) for pattern in EXCLUDES):
                archive.write(path, relative)
    return len(buffer.getvalue())


def main(runs: int = 5) -> None:
    for module in MODULES:
        samples = [import_seconds(module) * 1000 for _ in range(runs)]
        median = statistics.median(samples)
        verdict = "ok" if median < IMPORT_TARGET_MS else "OVER TARGET"
        print(f"cold import {module}: median {median:.0f} ms, {runs} runs (target < {IMPORT_TARGET_MS} ms) {verdict}")
    size_kb = asset_zip_bytes() / 1024
    verdict = "ok" if size_kb < ASSET_TARGET_KB else "OVER TARGET"
    print(f"Lambda asset (lambda/, zipped): {size_kb:.1f} KB (target < {ASSET_TARGET_KB} KB) {verdict}")


if __name__ == "__main__":
    main()
