from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from stacks.config.environment import config_path_for, load_config
from tests.fake_aws import use_fake_credentials
from tests.rollout.definition import state_machine_definition
from tests.rollout.harness import FUNCTION_ARN, REGION, RolloutWorld, make_waits_instant, route_lambda_to
from tests.rollout.kube_double import KubernetesApiDouble
from tests.rollout.scenarios import Rollouts
from tests.synth import SynthesizedEnvironment


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[RolloutWorld]:
    """The rollout's AWS and Kubernetes surroundings, without the state machine."""
    use_fake_credentials(monkeypatch, REGION)
    with mock_aws(), KubernetesApiDouble() as kube:
        yield RolloutWorld(config=load_config(config_path_for("dev")), kube=kube).build()


@pytest.fixture(scope="session")
def definition_text(dev: SynthesizedEnvironment) -> str:
    return json.dumps(state_machine_definition(dev, function_arn=FUNCTION_ARN))


@pytest.fixture
def rollouts(dev: SynthesizedEnvironment, definition_text: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rollouts]:
    """Whole rollouts: the synthesized state machine under moto's Step Functions, every task run by the
    real handler in this process, waits instant."""
    use_fake_credentials(monkeypatch, REGION)
    aws_config = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    with mock_aws(config=aws_config), KubernetesApiDouble() as kube:
        world = RolloutWorld(config=dev.config, kube=kube).build()
        route_lambda_to(world, monkeypatch)
        make_waits_instant(world.clock, monkeypatch)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        machine = sfn.create_state_machine(
            name="tessera-dev-rollout", definition=definition_text, roleArn="arn:aws:iam::123456789012:role/rollout"
        )["stateMachineArn"]
        yield Rollouts(world=world, sfn=sfn, machine=machine)
