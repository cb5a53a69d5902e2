"""Synthesizes a Tessera environment the way `cdk synth` does, for the template tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from aws_cdk import App
from aws_cdk.assertions import Template

from stacks.config.environment import EnvironmentConfig
from stacks.tessera_app import TesseraStacks, build_tessera

REPO_ROOT = Path(__file__).resolve().parent.parent
CDK_JSON_CONTEXT: dict = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


@dataclass
class SynthesizedEnvironment:
    config: EnvironmentConfig
    stacks: TesseraStacks
    outdir: Path
    _templates: dict[str, dict] = field(default_factory=dict)

    def template_json(self, component: str) -> dict:
        name = self.config.stack_name(component)
        if name not in self._templates:
            self._templates[name] = json.loads((self.outdir / f"{name}.template.json").read_text())
        return self._templates[name]

    def resources(self, component: str, resource_type: str) -> dict[str, dict]:
        """Logical id -> resource, for every resource of one type in a stack's template."""
        return self.template(component).find_resources(resource_type)

    def template(self, component: str) -> Template:
        return Template.from_json(self.template_json(component))

    @property
    def template_paths(self) -> list[Path]:
        return sorted(self.outdir.glob("*.template.json"))


def synthesize(config: EnvironmentConfig, outdir: Path) -> SynthesizedEnvironment:
    """A real App with cdk.json's feature flags (a bare App() ignores them); CloudFormation's built-in
    validator is off because cfn-lint checks the templates in its own test."""
    app = App(context=CDK_JSON_CONTEXT, outdir=str(outdir), builtin_cloud_formation_validation=False)
    stacks = build_tessera(app, config)
    app.synth()
    return SynthesizedEnvironment(config=config, stacks=stacks, outdir=outdir)
