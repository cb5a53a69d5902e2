""".github/workflows/diff.yml: pull requests get a read-only `cdk diff` per environment in the job summary, with
OIDC credentials and every action pinned by commit."""

from __future__ import annotations

import re

import yaml

from stacks.pipeline.diff_role import pull_request_subject
from tests.synth import REPO_ROOT

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "diff.yml"


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _steps() -> list[dict]:
    return _workflow()["jobs"]["cdk-diff"]["steps"]


def test_runs_on_pull_requests_with_an_oidc_token_and_read_only_contents() -> None:
    workflow = _workflow()
    assert list(workflow[True]) == ["pull_request"]  # YAML 1.1 reads the `on` key as True
    assert workflow["permissions"] == {"contents": "read", "id-token": "write"}
    # The role trusts exactly the subject GitHub gives a pull_request workflow of the configured repository.
    assert pull_request_subject("example-org/tessera") == "repo:example-org/tessera:pull_request"


def test_every_action_is_pinned_by_commit() -> None:
    for step in _steps():
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]


def test_assumes_the_diff_role_and_diffs_each_environment_without_change_sets() -> None:
    (credentials,) = [s for s in _steps() if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
    assert credentials["with"]["role-to-assume"] == "${{ vars.TESSERA_DIFF_ROLE_ARN }}"
    assert "aws-access-key-id" not in credentials["with"]
    (diff,) = [s for s in _steps() if s.get("name") == "cdk diff"]
    assert "cdk diff" in diff["run"]
    assert "--method=template" in diff["run"]
    assert '"Tessera-*-Pipeline/${ENVIRONMENT}-*/*"' in diff["run"]
    (summary,) = [s for s in _steps() if s.get("name") == "Job summary"]
    assert "$GITHUB_STEP_SUMMARY" in summary["run"]
    assert summary["if"] == "always()"
