"""CloudFormation's checks over every synthesized template: cfn-lint, with the ignores listed (and explained) in
.cfnlintrc.yaml, and CloudFormation's per-template quotas (stacks/template_limits.py), of which the shipped
environments use at most half."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stacks.template_limits import over_limits
from tests.synth import REPO_ROOT, SynthesizedEnvironment

CFN_LINT = str(Path(sys.executable).parent / "cfn-lint")


def cfn_lint(templates: list[Path]) -> subprocess.CompletedProcess[str]:
    """cfn-lint over `templates` with the repository's ignores, as `make synth` runs it."""
    return subprocess.run(
        [CFN_LINT, "--config-file", str(REPO_ROOT / ".cfnlintrc.yaml"), "--", *map(str, templates)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("environment", ["dev", "prod", "variant"])
def test_templates_pass_cfn_lint(environment: str, request: pytest.FixtureRequest) -> None:
    synthesized: SynthesizedEnvironment = request.getfixturevalue(environment)
    assert len(synthesized.template_paths) == 7
    result = cfn_lint(synthesized.template_paths)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("environment", ["dev", "prod", "variant"])
def test_the_shipped_environments_use_at_most_half_of_each_quota(
    environment: str, request: pytest.FixtureRequest
) -> None:
    synthesized: SynthesizedEnvironment = request.getfixturevalue(environment)
    assert over_limits(synthesized.outdir, share=0.5) == []


def test_cfn_lint_would_catch_a_broken_template(tmp_path) -> None:
    broken = tmp_path / "broken.template.json"
    broken.write_text('{"Resources": {"Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"Versioned": true}}}}')
    result = cfn_lint([broken])
    assert result.returncode != 0
    assert "E3002" in result.stdout
