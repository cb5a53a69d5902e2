"""The vendored charts are the ones the templates install, byte for byte as their README records."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.helm_charts import NOT_RENDERED, VENDORED, installed_charts, tree_checksum
from tests.synth import SynthesizedEnvironment


def _recorded() -> dict[str, str]:
    rows = re.findall(r"^\| `([a-z0-9-]+)` \S+ \|.*\| `([0-9a-f]{64})` \|$", (VENDORED / "README.md").read_text(), re.M)
    return dict(rows)


def test_every_vendored_chart_matches_its_recorded_checksum() -> None:
    recorded = _recorded()
    vendored = sorted(path.name for path in VENDORED.iterdir() if path.is_dir())
    assert sorted(recorded) == vendored
    for name in vendored:
        assert tree_checksum(VENDORED / name) == recorded[name], name


@pytest.mark.parametrize("environment", ["dev", "prod", "variant"])
def test_every_installed_chart_is_vendored_at_its_version_or_says_why_not(
    environment: str, request: pytest.FixtureRequest
) -> None:
    env: SynthesizedEnvironment = request.getfixturevalue(environment)
    for chart in installed_charts(env):
        name = chart["Chart"]
        if name in NOT_RENDERED:
            continue
        metadata = yaml.safe_load((VENDORED / name / "Chart.yaml").read_text())
        assert str(metadata["version"]) == chart["Version"], name


def test_a_changed_file_changes_the_checksum(tmp_path: Path) -> None:
    chart = tmp_path / "chart"
    chart.mkdir()
    (chart / "values.yaml").write_text("a: 1\n")
    before = tree_checksum(chart)
    (chart / "values.yaml").write_text("a: 2\n")
    assert tree_checksum(chart) != before
