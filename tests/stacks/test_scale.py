"""Fifty services (tools/scale_config.py: eight to a stack group) synthesize with every template under half of each of
CloudFormation's per-template quotas. A synth of about 20 s: `make faults` runs it (marked long_scenario)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.template_limits import assembly_figures, over_limits
from tests.synth import synthesize
from tools.scale_config import scaled_config


@pytest.mark.long_scenario
def test_fifty_services_fit_in_half_of_every_quota(tmp_path: Path) -> None:
    synthesize(scaled_config(50), tmp_path)  # cdk-nag runs at synth: a finding fails it
    figures = assembly_figures(tmp_path)
    assert len(figures) == 7 + 2 * 6  # six groups beyond main, a Services and an Observability stack each
    for each in figures:
        print(f"{each.stack}: {each.body_bytes:,} bytes, {each.resources} resources, {each.outputs} outputs")
    assert over_limits(tmp_path, share=0.5) == []
