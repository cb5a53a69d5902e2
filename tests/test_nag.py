"""cdk-nag AwsSolutions over the whole app: no unacknowledged finding, and each acknowledgment is
narrow (a resource, never a stack) and carries a specific reason."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_s3 as s3

from stacks.config.environment import config_path_for, load_config
from stacks.tessera_app import build_tessera
from tests.synth import CDK_JSON_CONTEXT, SynthesizedEnvironment

ACKNOWLEDGED = "aws:cdk:acknowledged-rules"


def _acknowledgments(env: SynthesizedEnvironment) -> list[tuple[str, str, str]]:
    found = []
    for metadata_file in env.outdir.glob("*.metadata.json"):
        for path, entries in json.loads(metadata_file.read_text()).items():
            for entry in entries:
                if entry["type"] == ACKNOWLEDGED:
                    found.extend((path, rule, reason) for rule, reason in entry["data"].items())
    return found


@pytest.mark.parametrize("environment", ["dev", "prod", "variant"])
def test_no_unacknowledged_findings(environment: str, request: pytest.FixtureRequest) -> None:
    synthesized: SynthesizedEnvironment = request.getfixturevalue(environment)
    # The fixture's synth would have raised on a failure; the report must also say so.
    report_path = synthesized.outdir / "validation-report.json"
    reports = json.loads(report_path.read_text())["pluginReports"] if report_path.exists() else []
    assert [report for report in reports if report["conclusion"] != "success"] == []


@pytest.mark.parametrize("environment", ["dev", "prod", "variant"])
def test_acknowledgments_are_narrow_and_explained(environment: str, request: pytest.FixtureRequest) -> None:
    synthesized: SynthesizedEnvironment = request.getfixturevalue(environment)
    ours = [item for item in _acknowledgments(synthesized) if "AwsSolutions-" in item[1]]
    assert ours, "expected the documented AwsSolutions acknowledgments"
    for path, rule, reason in ours:
        assert path.count("/") >= 2, f"{rule} is acknowledged on a whole stack ({path})"
        assert len(reason) >= 40, f"{rule} on {path}: reason too vague: {reason!r}"


def test_nag_fails_the_synth_on_a_new_finding(tmp_path) -> None:
    app = App(context=CDK_JSON_CONTEXT, outdir=str(tmp_path), builtin_cloud_formation_validation=False)
    build_tessera(app, load_config(config_path_for("dev")))
    careless = Stack(app, "Careless")
    s3.Bucket(careless, "NoLogsNoTls")
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for r in report["pluginReports"] for v in r["violations"]}
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= rules
