"""CloudFormation's per-template quotas, checked on the synthesized templates.

CDK refuses more than 500 resources in a stack at synth, but not a template body over CloudFormation's size limit nor
too many outputs or parameters: those fail only at `cdk deploy`, half-way through an environment. `app.py` checks
every template of the cloud assembly after synth and fails `cdk synth` naming the stack, the figure and the limit.
The figures are CloudFormation's documented quotas (template body in S3 1 MB, 500 resources, 200 outputs; 60
parameters, the older and lower of the published parameter quotas); the body is counted as written to cdk.out, which
is what the CDK CLI uploads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

BODY_BYTES = 1_000_000
RESOURCES = 500
OUTPUTS = 200
PARAMETERS = 60


@dataclass(frozen=True)
class TemplateFigures:
    stack: str
    body_bytes: int
    resources: int
    outputs: int
    parameters: int

    def shares(self) -> dict[str, float]:
        """Each figure as a fraction of its quota."""
        return {
            "body": self.body_bytes / BODY_BYTES,
            "resources": self.resources / RESOURCES,
            "outputs": self.outputs / OUTPUTS,
            "parameters": self.parameters / PARAMETERS,
        }

    def problems(self, *, share: float = 1.0) -> list[str]:
        """Where the template exceeds `share` of a quota (1.0: the quota itself)."""
        shown = {
            "body": f"template body {self.body_bytes:,} bytes",
            "resources": f"{self.resources} resources",
            "outputs": f"{self.outputs} outputs",
            "parameters": f"{self.parameters} parameters",
        }
        limits = {"body": f"{BODY_BYTES:,} bytes", "resources": RESOURCES, "outputs": OUTPUTS, "parameters": PARAMETERS}
        word = "CloudFormation's limit of" if share == 1.0 else f"{share:.0%} of CloudFormation's limit of"
        return [
            f"{self.stack}: {shown[name]} exceeds {word} {limits[name]}"
            for name, fraction in self.shares().items()
            if fraction > share
        ]


def template_figures(path: Path) -> TemplateFigures:
    template = json.loads(path.read_text())
    return TemplateFigures(
        stack=path.name.removesuffix(".template.json"),
        body_bytes=path.stat().st_size,
        resources=len(template.get("Resources", {})),
        outputs=len(template.get("Outputs", {})),
        parameters=len(template.get("Parameters", {})),
    )


def assembly_figures(outdir: Path) -> list[TemplateFigures]:
    return [template_figures(path) for path in sorted(outdir.glob("*.template.json"))]


def over_limits(outdir: Path, *, share: float = 1.0) -> list[str]:
    """Every quota a template of the cloud assembly in `outdir` exceeds (`share` of it)."""
    return [problem for figures in assembly_figures(outdir) for problem in figures.problems(share=share)]
