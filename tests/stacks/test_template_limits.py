"""A template over one of CloudFormation's per-template quotas is refused at synth with the stack, the figure and the
quota (stacks/template_limits.py; the shipped environments' margin: tests/test_cloudformation_checks.py)."""

from __future__ import annotations

import json
from pathlib import Path

from stacks.template_limits import BODY_BYTES, OUTPUTS, PARAMETERS, RESOURCES, over_limits


def _template(outdir: Path, stack: str, *, resources: int, outputs: int, parameters: int, padding: int = 0) -> None:
    template = {
        "Parameters": {f"P{index}": {"Type": "String"} for index in range(parameters)},
        "Resources": {f"R{index}": {"Type": "AWS::SNS::Topic"} for index in range(resources)},
        "Outputs": {f"O{index}": {"Value": "x"} for index in range(outputs)},
        "Metadata": {"padding": "x" * padding},
    }
    (outdir / f"{stack}.template.json").write_text(json.dumps(template))


def test_each_quota_exceeded_is_named_with_its_figure(tmp_path: Path) -> None:
    _template(tmp_path, "Tessera-big-Services", resources=RESOURCES + 1, outputs=OUTPUTS + 1, parameters=2)
    _template(tmp_path, "Tessera-big-Observability", resources=1, outputs=0, parameters=PARAMETERS + 1)
    _template(tmp_path, "Tessera-big-Rollout", resources=1, outputs=0, parameters=0, padding=BODY_BYTES)
    _template(tmp_path, "Tessera-big-Network", resources=RESOURCES, outputs=OUTPUTS, parameters=PARAMETERS)
    problems = over_limits(tmp_path)
    assert problems[0].startswith("Tessera-big-Observability: 61 parameters exceeds CloudFormation's limit of 60")
    assert [problem.split(":")[0] for problem in problems] == [
        "Tessera-big-Observability",
        "Tessera-big-Rollout",
        "Tessera-big-Services",
        "Tessera-big-Services",
    ]
    assert "template body 1,000," in problems[1]
    assert problems[1].endswith("exceeds CloudFormation's limit of 1,000,000 bytes")
    assert problems[2] == "Tessera-big-Services: 501 resources exceeds CloudFormation's limit of 500"
    assert problems[3] == "Tessera-big-Services: 201 outputs exceeds CloudFormation's limit of 200"


def test_half_a_quota_is_the_margin_the_shipped_environments_keep(tmp_path: Path) -> None:
    _template(tmp_path, "Tessera-half-Services", resources=RESOURCES // 2 + 1, outputs=1, parameters=1)
    assert over_limits(tmp_path) == []
    assert over_limits(tmp_path, share=0.5) == [
        "Tessera-half-Services: 251 resources exceeds 50% of CloudFormation's limit of 500"
    ]
