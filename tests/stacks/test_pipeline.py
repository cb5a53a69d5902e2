"""The pipeline stack (config `pipeline`): stages and waves in config order, the approval before production, the
synth step running the README's commands, a post-deploy check per deployed target, cross-account access only
through the CDK bootstrap roles, the pull requests' read-only diff role, cdk-nag and cfn-lint clean."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from aws_cdk import App

from stacks.config.environment import config_path_for, load_config
from stacks.pipeline.build import build_pipeline, plan_pipeline
from stacks.pipeline.stack import PipelineStack
from tests.stacks.pipeline_fixture import PIPELINE, PIPELINE_ACCOUNT, PROD_ACCOUNTS, REPOSITORY, write_pipeline_home
from tests.synth import CDK_JSON_CONTEXT
from tests.test_cloudformation_checks import cfn_lint

STACK = "Tessera-dev-Pipeline"
BOOTSTRAP_ROLE = re.compile(r"role/cdk-hnb659fds-(deploy|lookup|file-publishing|image-publishing)-role-(\d{12})-")
READ_ONLY_DIFF_ACTIONS = {
    "sts:AssumeRole",  # the CDK bootstrap lookup roles only (asserted below)
    "cloudformation:DescribeStacks",
    "cloudformation:GetTemplate",
    "cloudformation:ListStacks",
    "ssm:GetParameter",
}


@dataclass
class SynthesizedPipeline:
    stack: PipelineStack
    outdir: Path
    home: Path

    @property
    def template(self) -> dict:
        return json.loads((self.outdir / f"{STACK}.template.json").read_text())

    def resources(self, resource_type: str) -> dict[str, dict]:
        return {k: r for k, r in self.template["Resources"].items() if r["Type"] == resource_type}

    @property
    def stages(self) -> list[dict]:
        (pipeline,) = self.resources("AWS::CodePipeline::Pipeline").values()
        return pipeline["Properties"]["Stages"]

    def stage(self, name: str) -> dict:
        return next(stage for stage in self.stages if stage["Name"] == name)

    def build_spec(self, action: dict) -> dict:
        project = action["Configuration"]["ProjectName"]["Ref"]
        return json.loads(self.template["Resources"][project]["Properties"]["Source"]["BuildSpec"])


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedPipeline:
    folder = tmp_path_factory.mktemp("pipeline")
    home = write_pipeline_home(folder)
    plan = plan_pipeline(load_config(home), home)
    assert plan is not None
    outdir = folder / "cdk.out"
    app = App(context=CDK_JSON_CONTEXT, outdir=str(outdir), builtin_cloud_formation_validation=False)
    stack = build_pipeline(app, plan)
    app.synth()  # raises on an unacknowledged cdk-nag finding
    return SynthesizedPipeline(stack=stack, outdir=outdir, home=home)


def _flat(value: object) -> str:
    """A template value as one string (Fn::Join / Fn::Sub flattened), to read ARNs in."""
    return json.dumps(value)


def test_a_config_without_pipeline_builds_no_pipeline() -> None:
    path = config_path_for("prod")
    assert plan_pipeline(load_config(path), path) is None


def test_stages_follow_config_order_waves_included(pipeline: SynthesizedPipeline) -> None:
    names = [stage["Name"] for stage in pipeline.stages]
    assert names[:3] == ["Source", "Build", "UpdatePipeline"]
    deployed = [name for name in names if name not in ("Source", "Build", "UpdatePipeline", "Assets")]
    assert deployed == [
        f"dev-us-east-1-{PIPELINE_ACCOUNT}",
        f"prod-us-east-1-{PROD_ACCOUNTS[0]}",  # prod's first wave
        f"prod-us-east-1-{PROD_ACCOUNTS[1]}",  # prod's second wave
    ]


def test_each_target_deploys_its_environment_into_its_account(pipeline: SynthesizedPipeline) -> None:
    for account, environment in [(PIPELINE_ACCOUNT, "dev"), (PROD_ACCOUNTS[0], "prod"), (PROD_ACCOUNTS[1], "prod")]:
        actions = pipeline.stage(f"{environment}-us-east-1-{account}")["Actions"]
        deploys = [a for a in actions if a["ActionTypeId"]["Category"] == "Deploy"]
        assert {a["Configuration"]["StackName"] for a in deploys} == {
            f"Tessera-{environment}-{component}"
            for component in ("Network", "Artifacts", "Cluster", "Services", "Registry", "Observability", "Rollout")
        }
        for action in deploys:
            role = _flat(action["RoleArn"])
            assert f":iam::{account}:role/cdk-hnb659fds-deploy-role-{account}-us-east-1" in role


def test_a_manual_approval_comes_before_prod_and_only_there(pipeline: SynthesizedPipeline) -> None:
    first_prod = pipeline.stage(f"prod-us-east-1-{PROD_ACCOUNTS[0]}")["Actions"]
    approvals = [a for a in first_prod if a["ActionTypeId"]["Category"] == "Approval"]
    assert [a["Name"] for a in approvals] == ["Approve-prod"]
    others = [a["RunOrder"] for a in first_prod if a["ActionTypeId"]["Category"] != "Approval"]
    assert approvals[0]["RunOrder"] < min(others)
    for stage in pipeline.stages:
        if stage["Name"] != f"prod-us-east-1-{PROD_ACCOUNTS[0]}":
            assert all(a["ActionTypeId"]["Category"] != "Approval" for a in stage["Actions"]), stage["Name"]


def test_the_synth_step_runs_the_readmes_commands(pipeline: SynthesizedPipeline) -> None:
    (synth,) = pipeline.stage("Build")["Actions"]
    spec = pipeline.build_spec(synth)
    commands = spec["phases"]["build"]["commands"]
    assert commands[0] == "make test"
    assert "make test" in (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert commands[1] == "make synth ENV=prod"
    # The home file last: the cloud assembly the pipeline deploys holds the pipeline and every stage.
    assert commands[-1].startswith("make synth CONFIG=")
    assert commands[-1].endswith("dev.yaml")
    assert spec["phases"]["install"]["runtime-versions"] == {"python": "3.12", "nodejs": "22"}


def test_the_source_is_the_configured_connection_and_branch(pipeline: SynthesizedPipeline) -> None:
    (source,) = pipeline.stage("Source")["Actions"]
    configuration = source["Configuration"]
    assert configuration["FullRepositoryId"] == REPOSITORY
    assert configuration["BranchName"] == "main"
    assert configuration["ConnectionArn"].startswith("arn:aws:codeconnections:")


def test_the_pipeline_updates_itself(pipeline: SynthesizedPipeline) -> None:
    (mutate,) = pipeline.stage("UpdatePipeline")["Actions"]
    spec = json.dumps(pipeline.build_spec(mutate))
    assert f"deploy {STACK}" in spec
    cli = json.loads((Path(__file__).resolve().parents[2] / "package.json").read_text())["devDependencies"]["aws-cdk"]
    assert f"aws-cdk@{cli}" in spec  # the CLI package.json pins


def test_every_deployed_target_is_checked_after_its_deploys(pipeline: SynthesizedPipeline) -> None:
    for account, environment in [(PIPELINE_ACCOUNT, "dev"), (PROD_ACCOUNTS[0], "prod"), (PROD_ACCOUNTS[1], "prod")]:
        stage_id = f"{environment}-us-east-1-{account}"
        actions = pipeline.stage(stage_id)["Actions"]
        (check,) = [a for a in actions if a["Name"] == f"Check-{stage_id}"]
        deploys = [a["RunOrder"] for a in actions if a["ActionTypeId"]["Category"] == "Deploy"]
        assert check["RunOrder"] > max(deploys)
        (command,) = pipeline.build_spec(check)["phases"]["build"]["commands"]
        lookup = f"arn:aws:iam::{account}:role/cdk-hnb659fds-lookup-role-{account}-us-east-1"
        assert command == (
            f"python3 tools/post_deploy_check.py --environment {environment} --region us-east-1 --role-arn {lookup}"
        )


def _policies(pipeline: SynthesizedPipeline) -> dict[str, list[dict]]:
    return {
        logical_id: resource["Properties"]["PolicyDocument"]["Statement"]
        for logical_id, resource in pipeline.resources("AWS::IAM::Policy").items()
    }


def test_other_accounts_are_reached_only_through_cdk_bootstrap_roles(pipeline: SynthesizedPipeline) -> None:
    assumed = []
    for statements in _policies(pipeline).values():
        for statement in statements:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if any(action.startswith("sts:AssumeRole") for action in actions):
                resources = (
                    statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                )
                assumed.extend(_flat(resource) for resource in resources)
    # A role of this stack (Fn::GetAtt) or one named in the pipeline's own account stays in that account.
    elsewhere = [
        arn for arn in assumed if "Fn::GetAtt" not in arn and not re.search(rf":iam::(\*|{PIPELINE_ACCOUNT}):", arn)
    ]
    assert elsewhere, "expected the targets' bootstrap roles"
    for arn in elsewhere:
        match = BOOTSTRAP_ROLE.search(arn)
        assert match, f"assumes a role in another account that is not a CDK bootstrap role: {arn}"
        assert match.group(2) in PROD_ACCOUNTS
    # And no role this stack creates trusts another account.
    for logical_id, role in pipeline.resources("AWS::IAM::Role").items():
        for statement in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
            principal = _flat(statement["Principal"])
            assert not any(account in principal for account in PROD_ACCOUNTS), logical_id


def _diff_role(pipeline: SynthesizedPipeline) -> tuple[str, dict]:
    roles = pipeline.resources("AWS::IAM::Role")
    (found,) = [(k, r) for k, r in roles.items() if k.startswith("PullRequestDiffRole")]
    return found


def test_the_diff_role_trusts_only_the_repositorys_pull_requests(pipeline: SynthesizedPipeline) -> None:
    _, role = _diff_role(pipeline)
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": f"repo:{REPOSITORY}:pull_request",
        }
    }
    (provider,) = pipeline.resources("AWS::IAM::OIDCProvider").values()
    assert provider["Properties"]["Url"] == "https://token.actions.githubusercontent.com"
    assert provider["Properties"]["ClientIdList"] == ["sts.amazonaws.com"]
    assert "GitHubOidcProvider" in _flat(statement["Principal"])


def test_the_diff_role_reads_only(pipeline: SynthesizedPipeline) -> None:
    role_id, _ = _diff_role(pipeline)
    policies = [
        r for r in pipeline.resources("AWS::IAM::Policy").values() if {"Ref": role_id} in r["Properties"]["Roles"]
    ]
    statements = [s for policy in policies for s in policy["Properties"]["PolicyDocument"]["Statement"]]
    actions = {a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert actions <= READ_ONLY_DIFF_ACTIONS
    (assume,) = [s for s in statements if s["Action"] == "sts:AssumeRole"]
    arns = [_flat(resource) for resource in assume["Resource"]]
    assert arns
    assert all("-lookup-role-" in arn for arn in arns), arns
    managed = pipeline.resources("AWS::IAM::ManagedPolicy").values()
    assert not [r for r in managed if {"Ref": role_id} in r["Properties"].get("Roles", [])]
    assert "ManagedPolicyArns" not in _diff_role(pipeline)[1]["Properties"]


@pytest.mark.long_scenario  # a second pipeline synth (6 s): in `make faults`, which CI runs too
def test_an_existing_oidc_provider_is_reused(tmp_path: Path) -> None:
    provider = f"arn:aws:iam::{PIPELINE_ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
    home = write_pipeline_home(tmp_path, {**PIPELINE, "github_oidc_provider_arn": provider})
    plan = plan_pipeline(load_config(home), home)
    assert plan is not None
    app = App(context=CDK_JSON_CONTEXT, outdir=str(tmp_path / "cdk.out"), builtin_cloud_formation_validation=False)
    build_pipeline(app, plan)
    template = app.synth().get_stack_by_name(STACK).template
    assert not [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::OIDCProvider"]
    assert provider in json.dumps(template)


def test_stage_stacks_keep_their_environment_names(pipeline: SynthesizedPipeline) -> None:
    for assembly in pipeline.outdir.glob("assembly-*"):
        manifest = json.loads((assembly / "manifest.json").read_text())
        names = {
            artifact["properties"]["stackName"]
            for artifact in manifest["artifacts"].values()
            if artifact["type"] == "aws:cloudformation:stack"
        }
        environment = "dev" if "-dev-us-east-1" in assembly.name else "prod"
        assert f"Tessera-{environment}-Network" in names, assembly.name


def test_cdk_nag_finds_nothing_unacknowledged_and_every_acknowledgment_is_explained(
    pipeline: SynthesizedPipeline,
) -> None:
    report = pipeline.outdir / "validation-report.json"
    reports = json.loads(report.read_text())["pluginReports"] if report.exists() else []
    assert [r for r in reports if r["conclusion"] != "success"] == []
    metadata = json.loads((pipeline.outdir / f"{STACK}.metadata.json").read_text())
    acknowledged = [
        (path, rule, reason)
        for path, entries in metadata.items()
        for entry in entries
        if entry["type"] == "aws:cdk:acknowledged-rules"
        for rule, reason in entry["data"].items()
    ]
    assert acknowledged
    for path, rule, reason in acknowledged:
        assert path.count("/") >= 2, f"{rule} is acknowledged on a whole stack ({path})"
        assert len(reason) >= 40, f"{rule} on {path}: reason too vague: {reason!r}"


def test_the_pipeline_template_passes_cfn_lint(pipeline: SynthesizedPipeline) -> None:
    result = cfn_lint([pipeline.outdir / f"{STACK}.template.json"])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.long_scenario  # a third pipeline synth (7 s): in `make faults`
def test_cdk_nag_also_checks_the_stacks_inside_the_stages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aws_cdk import Stack, Stage
    from aws_cdk import aws_s3 as s3

    import stacks.pipeline.build as build_module
    from stacks.config.environment import EnvironmentConfig

    build_environment = build_module._build_environment

    def careless(stage: Stage, config: EnvironmentConfig) -> None:
        build_environment(stage, config)
        s3.Bucket(stage.node.find_child(config.stack_name("Network")), "NoLogsNoTls")

    monkeypatch.setattr(build_module, "_build_environment", careless)
    home = write_pipeline_home(tmp_path)
    plan = plan_pipeline(load_config(home), home)
    assert plan is not None
    app = App(context=CDK_JSON_CONTEXT, outdir=str(tmp_path / "cdk.out"), builtin_cloud_formation_validation=False)
    build_pipeline(app, plan)
    assert isinstance(app.node.find_child(STACK), Stack)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
