"""app.py: picks the config from the CDK context and turns a bad config into one line per problem."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import aws_cdk
from aws_cdk import App

from stacks.tessera_app import config_file_from_context
from tests.synth import CDK_JSON_CONTEXT, REPO_ROOT


def test_default_environment_is_dev() -> None:
    assert config_file_from_context(App().node) == REPO_ROOT / "config" / "dev.yaml"


def test_env_context_selects_the_environment_file() -> None:
    assert config_file_from_context(App(context={"env": "prod"}).node) == REPO_ROOT / "config" / "prod.yaml"


def test_config_context_wins_over_env() -> None:
    node = App(context={"env": "prod", "config": "elsewhere/x.yaml"}).node
    assert config_file_from_context(node) == Path("elsewhere/x.yaml")


def test_cdk_json_carries_every_recommended_feature_flag_of_the_pinned_cdk() -> None:
    # aws-cdk-lib ships the flags `cdk init` writes inside its jsii bundle.
    bundle = next((Path(aws_cdk.__file__).parent / "_jsii").glob("aws-cdk-lib@*.jsii.tgz"))
    with tarfile.open(bundle) as archive:
        recommended = json.load(archive.extractfile("package/recommended-feature-flags.json"))
    assert {key: CDK_JSON_CONTEXT.get(key) for key in recommended} == recommended
    assert CDK_JSON_CONTEXT["@aws-cdk/aws-eks:defaultToAL2023"] is True


def test_app_reports_a_bad_config_without_a_traceback(tmp_path: Path) -> None:
    broken = REPO_ROOT / "tests" / "config" / "broken_configs" / "service-name-uppercase.yaml"
    result = subprocess.run(
        [sys.executable, "app.py"],
        cwd=REPO_ROOT,
        env={**os.environ, "CDK_CONTEXT_JSON": json.dumps({"config": str(broken)}), "CDK_OUTDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{broken}: services[1].name: 'Assistant' must match ^[a-z][a-z0-9-]{{1,30}}$" in result.stderr.splitlines()
    assert list(tmp_path.iterdir()) == []
