"""Config checks, `make manifests` and the operator CLI load without the CDK: stacks/config/ imports no
aws_cdk (nor constructs or cdk_nag), checked in a fresh interpreter where importing them fails."""

from __future__ import annotations

import subprocess
import sys

from tests.synth import REPO_ROOT

BLOCKER = """
import importlib.abc, sys

class BlockCdk(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("aws_cdk", "constructs", "cdk_nag", "jsii"):
            raise ImportError(f"blocked: {name}")
        return None

sys.meta_path.insert(0, BlockCdk())
"""

MODULES = [
    "stacks.config.base",
    "stacks.config.cluster",
    "stacks.config.environment",
    "stacks.config.errors",
    "stacks.config.instance_types",
    "stacks.config.rollout",
    "stacks.config.services",
    "stacks.config.yaml_loader",
    "stacks.services.kubernetes_objects",
    "stacks.registration.catalog",
    "tools.check_config",
    "tools.render_manifests",
    "tools.write_config_schema",
    "tessera_cli.main",
]


def test_config_tools_and_cli_import_without_the_cdk() -> None:
    script = (
        BLOCKER
        + "".join(f"import {module}\n" for module in MODULES)
        + (
            "from stacks.config.environment import config_path_for, load_config\n"
            "load_config(config_path_for('dev'))\n"
            "assert not any(m.split('.')[0] in ('aws_cdk', 'constructs') for m in sys.modules)\n"
        )
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_the_blocker_does_block() -> None:
    """Guards the test above: with the blocker in place, importing the CDK fails."""
    script = BLOCKER + "import aws_cdk\n"
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "blocked: aws_cdk" in result.stderr
