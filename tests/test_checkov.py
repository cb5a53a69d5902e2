"""checkov over every environment's templates and Tessera's own Kubernetes objects: no failed check outside the
reviewed skip list (checkov-skips.yaml), and no entry in that list that no longer matches anything.

checkov lives in its own virtual environment (`make .venv-checkov/.installed`): it pins packaging==23.2,
which conflicts with the test dependencies. Helm charts are not scanned (they cannot be rendered offline).
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.synth import REPO_ROOT, SynthesizedEnvironment
from tools.render_manifests import write_manifests

CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
SKIP_LIST = REPO_ROOT / "checkov-skips.yaml"
ENVIRONMENTS = ("dev", "prod", "variant")
OWNERS = {"tessera", "cdk"}


@dataclass(frozen=True)
class Finding:
    environment: str
    check: str
    subject: str  # "<Component>/<checkov resource>" for templates, "k8s/<kind.namespace.name>" for objects

    def __str__(self) -> str:
        return f"{self.environment}: {self.check} {self.subject}"


def skip_entries() -> list[dict]:
    entries = yaml.safe_load(SKIP_LIST.read_text())["skips"]
    for entry in entries:
        assert entry["owner"] in OWNERS, entry
        assert len(entry["reason"]) >= 40, f"reason too vague: {entry}"
        checks = entry["checks"]
        # Tessera's own resources are skipped one check at a time; CDK's by pattern, one reason each.
        assert entry["owner"] == "cdk" or len(checks) == 1, f"one check per Tessera entry: {entry}"
    return entries


def _skipped_by(finding: Finding, entry: dict) -> bool:
    return (
        finding.check in entry["checks"]
        and fnmatch.fnmatchcase(finding.subject, entry["resource"])
        and finding.environment in entry.get("environments", ENVIRONMENTS)
    )


def _stage(env: SynthesizedEnvironment, target: Path) -> Path:
    """Templates and rendered objects of one environment in one directory, for one checkov run."""
    target.mkdir()
    for template in env.template_paths:
        shutil.copy(template, target / template.name)
    for manifest in write_manifests(env.config, target / "k8s"):
        manifest.rename(target / f"k8s-{manifest.name}")
    return target


def _findings(environment: str, report: str) -> list[Finding]:
    runs = json.loads(report)
    findings = []
    for run in runs if isinstance(runs, list) else [runs]:
        assert run["summary"]["parsing_errors"] == 0, run["summary"]
        for failed in run["results"]["failed_checks"]:
            if run["check_type"] == "cloudformation":
                component = Path(failed["file_path"]).name.removesuffix(".template.json").rsplit("-", 1)[-1]
            else:
                component = "k8s"
            findings.append(Finding(environment, failed["check_id"], f"{component}/{failed['resource']}"))
    return findings


@pytest.fixture(scope="module")
def findings(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[Finding]:
    assert CHECKOV.exists(), f"{CHECKOV} missing: run `make .venv-checkov/.installed` (make test does)"
    runs = {}
    for environment in ENVIRONMENTS:
        synthesized: SynthesizedEnvironment = request.getfixturevalue(environment)
        staged = _stage(synthesized, tmp_path_factory.mktemp(f"checkov-{environment}") / "scan")
        command = [str(CHECKOV), "-d", str(staged), "--framework", "cloudformation", "kubernetes"]
        command += ["--output", "json", "--quiet", "--compact", "--skip-download"]
        # One checkov per environment, all three at once.
        runs[environment] = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    found = []
    for environment, process in runs.items():
        stdout, stderr = process.communicate(timeout=300)
        # checkov exits 1 when a check fails; anything else is a crash.
        assert process.returncode in (0, 1), stderr[-2000:]
        found += _findings(environment, stdout)
    return found


def test_no_failed_check_outside_the_skip_list(findings: list[Finding]) -> None:
    entries = skip_entries()
    unexplained = [str(f) for f in findings if not any(_skipped_by(f, entry) for entry in entries)]
    assert unexplained == [], "\n".join(unexplained)


def test_every_skip_entry_still_matches_a_finding(findings: list[Finding]) -> None:
    stale = [entry for entry in skip_entries() if not any(_skipped_by(f, entry) for f in findings)]
    assert stale == []


def test_checkov_reports_a_known_bad_resource(tmp_path: Path) -> None:
    template = {"Resources": {"Open": {"Type": "AWS::S3::Bucket", "Properties": {}}}}
    (tmp_path / "bad.template.json").write_text(json.dumps(template))
    command = [str(CHECKOV), "-d", str(tmp_path), "--framework", "cloudformation", "--output", "json", "--quiet"]
    result = subprocess.run([*command, "--compact", "--skip-download"], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert Finding("test", "CKV_AWS_18", "bad/AWS::S3::Bucket.Open") in _findings("test", result.stdout)
