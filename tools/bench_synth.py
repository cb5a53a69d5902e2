"""Benchmark (not a test): wall time of a full `dev` synth against an empty CDK app's synth.

Both run as the CDK CLI runs an app: a fresh Python process, cdk.json's context passed in
CDK_CONTEXT_JSON, output to a temporary CDK_OUTDIR. Prints the median of several runs of each
and their ratio, so the figure means the same on a faster or slower machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
EMPTY_APP = "import aws_cdk; aws_cdk.App().synth()"


def timed_run(command: list[str], context: dict) -> float:
    with tempfile.TemporaryDirectory() as outdir:
        env = {
            **os.environ,
            "CDK_CONTEXT_JSON": json.dumps(context),
            "CDK_OUTDIR": outdir,
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        }
        started = time.perf_counter()
        subprocess.run(command, cwd=REPO_ROOT, env=env, check=True, capture_output=True)
        return time.perf_counter() - started


def _seconds(samples: list[float]) -> str:
    return ", ".join(f"{sample:.2f}" for sample in samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--env", default="dev")
    args = parser.parse_args()

    context = {**json.loads((REPO_ROOT / "cdk.json").read_text())["context"], "env": args.env}
    full = [timed_run([sys.executable, "app.py"], context) for _ in range(args.runs)]
    empty = [timed_run([sys.executable, "-c", EMPTY_APP], context) for _ in range(args.runs)]
    full_median, empty_median = statistics.median(full), statistics.median(empty)
    print(f"full {args.env} synth: median {full_median:.2f} s over {args.runs} runs ({_seconds(full)})")
    print(f"empty CDK app synth: median {empty_median:.2f} s over {args.runs} runs ({_seconds(empty)})")
    print(f"ratio full / empty: {full_median / empty_median:.2f}")


if __name__ == "__main__":
    main()
