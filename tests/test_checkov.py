"""checkov over every environment's templates, the Kubernetes objects inside them (CDK manifests: NodePools,
EC2NodeClasses, the namespace's objects; the track owner's objects) and the Helm charts they install, rendered
offline (tests/helm_charts.py): no failed check outside the reviewed skip list (checkov-skips.yaml), and no entry in
that list that no longer matches anything.

checkov lives in its own virtual environment (`make .venv-checkov/.installed`): it pins packaging==23.2,
which conflicts with the test dependencies.
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
from aws_cdk import App

from stacks.config.environment import load_config
from stacks.pipeline.build import build_pipeline, plan_pipeline
from tests.helm_charts import helm_binary, render_charts
from tests.kubernetes_objects import manifest_objects
from tests.stacks.pipeline_fixture import write_pipeline_home
from tests.synth import CDK_JSON_CONTEXT, REPO_ROOT, SynthesizedEnvironment

CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
SKIP_LIST = REPO_ROOT / "checkov-skips.yaml"
ENVIRONMENTS = ("dev", "prod", "variant")
PIPELINE = "pipeline"  # the pipeline stack of tests/stacks/pipeline_fixture.py (its stages are dev's and prod's)
OWNERS = {"tessera", "cdk", "chart"}
OBJECT_STACKS = ("Cluster", "Services")  # the stacks that apply Kubernetes objects of Tessera's own


@dataclass(frozen=True)
class Finding:
    environment: str
    check: str
    # "<Component>/<checkov resource>" for templates, "k8s/<kind.namespace.name>" for Tessera's objects,
    # "chart-<chart>/<kind.namespace.name>" for a chart's
    subject: str

    def __str__(self) -> str:
        return f"{self.environment}: {self.check} {self.subject}"


def skip_entries() -> list[dict]:
    entries = yaml.safe_load(SKIP_LIST.read_text())["skips"]
    for entry in entries:
        assert entry["owner"] in OWNERS, entry
        assert len(entry["reason"]) >= 40, f"reason too vague: {entry}"
        checks = entry["checks"]
        # Tessera's own resources are skipped one check at a time; CDK's and the charts' by pattern, one reason each.
        assert entry["owner"] != "tessera" or len(checks) == 1, f"one check per Tessera entry: {entry}"
        assert entry["owner"] != "chart" or entry["resource"].startswith("chart-"), entry
    return entries


def _skipped_by(finding: Finding, entry: dict) -> bool:
    return (
        finding.check in entry["checks"]
        and fnmatch.fnmatchcase(finding.subject, entry["resource"])
        and finding.environment in entry.get("environments", ENVIRONMENTS)
    )


def _stage(env: SynthesizedEnvironment, target: Path, helm: Path) -> None:
    """`templates/` for the CloudFormation checks; `objects/`, the objects inside them and the rendered charts, for
    the Kubernetes ones."""
    templates, objects = target / "templates", target / "objects"
    templates.mkdir(parents=True)
    objects.mkdir()
    for template in env.template_paths:
        shutil.copy(template, templates / template.name)
    for component in OBJECT_STACKS:
        (objects / f"k8s-{component}.yaml").write_text(yaml.safe_dump_all(manifest_objects(env, component)))
    render_charts(env, helm, objects)


def _stage_pipeline(folder: Path, target: Path) -> None:
    """The pipeline stack's own template; the environments its stages deploy are scanned as dev and prod."""
    home = write_pipeline_home(folder)
    plan = plan_pipeline(load_config(home), home)
    assert plan is not None
    app = App(context=CDK_JSON_CONTEXT, outdir=str(folder / "cdk.out"), builtin_cloud_formation_validation=False)
    stack = build_pipeline(app, plan)
    app.synth()
    (target / "templates").mkdir(parents=True)
    (target / "objects").mkdir()
    shutil.copy(folder / "cdk.out" / stack.template_file, target / "templates" / stack.template_file)


def _findings(report: str, environment: str | None = None) -> list[Finding]:
    """Failed checks of one checkov report; the environment is the staged directory's (`<env>/templates/...`)
    unless given."""
    runs = json.loads(report)
    findings = []
    for run in runs if isinstance(runs, list) else [runs]:
        assert run["summary"]["parsing_errors"] == 0, run["summary"]
        for failed in run["results"]["failed_checks"]:
            path = Path(failed["file_path"])
            name = path.name
            if run["check_type"] == "cloudformation":
                component = name.removesuffix(".template.json").rsplit("-", 1)[-1]
            else:
                component = name.removesuffix(".yaml") if name.startswith("chart-") else "k8s"
            found_in = environment or path.parts[-3]
            findings.append(Finding(found_in, failed["check_id"], f"{component}/{failed['resource']}"))
    return findings


@pytest.fixture(scope="module")
def findings(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[Finding]:
    assert CHECKOV.exists(), f"{CHECKOV} missing: run `make .venv-checkov/.installed` (make test does)"
    helm = helm_binary(tmp_path_factory.mktemp("helm"))
    root = tmp_path_factory.mktemp("checkov")
    for environment in ENVIRONMENTS:
        _stage(request.getfixturevalue(environment), root / environment, helm)
    _stage_pipeline(tmp_path_factory.mktemp("pipeline"), root / PIPELINE)
    # One checkov per framework over every environment (its start-up is most of a small scan's time), both at once;
    # each skips the other's directories (the CloudFormation runner would try to parse the objects' YAML).
    runs = []
    for framework, other in (("cloudformation", "objects"), ("kubernetes", "templates")):
        command = [str(CHECKOV), "-d", str(root), "--framework", framework, "--skip-path", f"/{other}/"]
        command += ["--output", "json", "--quiet", "--compact", "--skip-download"]
        runs.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    found = []
    for process in runs:
        stdout, stderr = process.communicate(timeout=300)
        # checkov exits 1 when a check fails; anything else is a crash.
        assert process.returncode in (0, 1), stderr[-2000:]
        found += _findings(stdout)
    assert {finding.environment for finding in found} == {*ENVIRONMENTS, PIPELINE}
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
    assert Finding("test", "CKV_AWS_18", "bad/AWS::S3::Bucket.Open") in _findings(result.stdout, "test")


def test_the_scan_counts_the_objects_inside_the_templates_and_the_charts(findings: list[Finding]) -> None:
    """The scan is only as good as what it sees: Tessera's objects from both stacks and every rendered chart."""
    subjects = {finding.subject.split("/")[0] for finding in findings}
    assert {"k8s", "chart-keda", "chart-aws-load-balancer-controller", "chart-metrics-server"} <= subjects
