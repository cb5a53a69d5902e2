"""Benchmark (not a test): wall time of a full `dev` synth against an empty CDK app's synth, and the size of every
template of generated environments of more services.

Both synths run as the CDK CLI runs an app: a fresh Python process, cdk.json's context passed in
CDK_CONTEXT_JSON, output to a temporary CDK_OUTDIR. Prints the median of several runs of each, their ratio (so the
figure means the same on a faster or slower machine) and the milliseconds per resource above the empty app. Then
synthesizes `dev` with 10, 20 and 50 services (tools/scale_config.py) and prints each template's figures as a share
of CloudFormation's quotas (stacks/template_limits.py), or why it does not synthesize.
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
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "lambda")]

from stacks.template_limits import assembly_figures  # noqa: E402  # after the path: the bench runs as a script

EMPTY_APP = "import aws_cdk; aws_cdk.App().synth()"


def timed_run(command: list[str], context: dict, resources: list[int] | None = None) -> float:
    with tempfile.TemporaryDirectory() as outdir:
        env = {
            **os.environ,
            "CDK_CONTEXT_JSON": json.dumps(context),
            "CDK_OUTDIR": outdir,
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        }
        started = time.perf_counter()
        subprocess.run(command, cwd=REPO_ROOT, env=env, check=True, capture_output=True)
        elapsed = time.perf_counter() - started
        if resources is not None:
            resources.append(sum(figures.resources for figures in assembly_figures(Path(outdir))))
        return elapsed


def _seconds(samples: list[float]) -> str:
    return ", ".join(f"{sample:.2f}" for sample in samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--env", default="dev")
    parser.add_argument("--services", type=int, nargs="*", default=[10, 20, 50], help="generated environments' sizes")
    args = parser.parse_args()

    context = {**json.loads((REPO_ROOT / "cdk.json").read_text())["context"], "env": args.env}
    resources: list[int] = []
    full, empty = [], []
    for _ in range(args.runs):  # interleaved, so a slower moment of the machine weighs on both alike
        full.append(timed_run([sys.executable, "app.py"], context, resources))
        empty.append(timed_run([sys.executable, "-c", EMPTY_APP], context))
    full_median, empty_median = statistics.median(full), statistics.median(empty)
    print(f"full {args.env} synth: median {full_median:.2f} s over {args.runs} runs ({_seconds(full)})")
    print(f"empty CDK app synth: median {empty_median:.2f} s over {args.runs} runs ({_seconds(empty)})")
    print(f"ratio full / empty: {full_median / empty_median:.2f}")
    per_resource = (full_median - empty_median) / resources[0] * 1000
    print(f"resources: {resources[0]}; {per_resource:.1f} ms per resource above the empty app")
    for count in args.services:
        print_scale(count)


def print_scale(count: int) -> None:
    """Synthesizes `dev` with `count` services in a child process and prints each template's figures."""
    code = f"from tools.bench_synth import scale_figures; scale_figures({count})"
    env = {
        **os.environ,
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'lambda'}",
    }
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    print(result.stdout, end="")
    if result.returncode:
        reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"
        print(f"dev with {count} services does not synthesize: {reason[:400]}")


def scale_figures(count: int) -> None:
    from aws_cdk import App

    from stacks.tessera_app import build_tessera
    from tools.scale_config import scaled_config

    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    with tempfile.TemporaryDirectory() as outdir:
        # As the tests synthesize: the built-in validation off (cdk synth has it off too).
        app = App(context=context, outdir=outdir, builtin_cloud_formation_validation=False)
        build_tessera(app, scaled_config(count))
        app.synth()
        print(f"dev with {count} services (share of CloudFormation's quota: body, resources, outputs, parameters):")
        for figures in assembly_figures(Path(outdir)):
            shares = ", ".join(f"{share:.0%}" for share in figures.shares().values())
            flag = "  OVER HALF" if max(figures.shares().values()) > 0.5 else ""
            print(
                f"  {figures.stack:32s} {figures.body_bytes / 1024:7.0f} KB {figures.resources:4d} res "
                f"{figures.outputs:4d} out {figures.parameters:3d} par  ({shares}){flag}"
            )


if __name__ == "__main__":
    main()
