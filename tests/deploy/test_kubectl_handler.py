"""The kubectl double follows CDK's kubectl provider handler (the Python in the synthesized asset, aws-cdk-lib's
aws_eks_v2 kubectl-handler): these tests read that code, so a change in aws-cdk-lib that the double does not
follow fails here rather than at a user's deploy."""

from __future__ import annotations

import ast
import json
import warnings
from pathlib import Path

from tests.deploy.kubectl_double import HELM_TYPE, MANIFEST_TYPE
from tests.synth import SynthesizedEnvironment


def handler_source(env: SynthesizedEnvironment, module: str) -> ast.Module:
    [index] = [path for path in env.outdir.glob("asset.*/index.py") if "apply_handler" in path.read_text()]
    with warnings.catch_warnings():  # CDK's handler has regex literals without r-prefixes; not ours to fix
        warnings.simplefilter("ignore", DeprecationWarning)
        return ast.parse((index.parent / module / "__init__.py").read_text())


def calls(tree: ast.Module, function: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == function
    ]


def test_the_helm_handler_never_passes_skip_crds(dev: SynthesizedEnvironment) -> None:
    """`SkipCrds` is read but never handed to helm: the flag would be a no-op, so no Tessera chart sets it."""
    tree = handler_source(dev, "helm")
    [definition] = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "helm"]
    skip_position = [argument.arg for argument in definition.args.args].index("skip_crds")
    [upgrade] = [call for call in calls(tree, "helm") if ast.literal_eval(call.args[0]) == "upgrade"]
    assert len(upgrade.args) <= skip_position
    assert "skip_crds" not in {keyword.arg for keyword in upgrade.keywords}
    for chart in _resources(dev, HELM_TYPE):
        assert "SkipCrds" not in chart


def test_the_apply_handler_reads_overwrite_and_prune_label_as_the_double_does(dev: SynthesizedEnvironment) -> None:
    source = ast.unparse(handler_source(dev, "apply"))
    assert "props.get('Overwrite', 'false').lower() == 'true'" in source
    assert "['--prune', '-l', prune_label]" in source
    assert "manifest_list = json.loads(manifest_text)" in source
    for manifest in _resources(dev, MANIFEST_TYPE):
        assert "Manifest" in manifest


def _resources(env: SynthesizedEnvironment, resource_type: str) -> list[dict]:
    found = []
    for path in env.template_paths:
        for resource in json.loads(Path(path).read_text())["Resources"].values():
            if resource["Type"] == resource_type:
                found.append(resource["Properties"])
    return found
