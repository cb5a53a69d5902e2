from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from stacks.config.environment import EnvironmentConfig, config_path_for, load_config
from tests.fake_aws import use_fake_credentials
from tests.rollout.chip import GPU_POOL, VERSION_POOLS, gpu_first_config, place_tracks
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
    with whole_rollouts(dev.config, definition_text, monkeypatch) as built:
        yield built


@contextlib.contextmanager
def whole_rollouts(
    config: EnvironmentConfig, definition_text: str, monkeypatch: pytest.MonkeyPatch, **fields: Any
) -> Iterator[Rollouts]:
    """A rollout world of `config` (and the RolloutWorld fields given) with the state machine under moto."""
    use_fake_credentials(monkeypatch, REGION)
    aws_config = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    with mock_aws(config=aws_config), KubernetesApiDouble() as kube:
        world = RolloutWorld(config=config, kube=kube, **fields).build()
        route_lambda_to(world, monkeypatch)
        make_waits_instant(world.clock, monkeypatch)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        machine = sfn.create_state_machine(
            name="tessera-dev-rollout", definition=definition_text, roleArn="arn:aws:iam::123456789012:role/rollout"
        )["stateMachineArn"]
        yield Rollouts(world=world, sfn=sfn, machine=machine)


@pytest.fixture
def chip_move(dev: SynthesizedEnvironment, definition_text: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rollouts]:
    """Whole rollouts of a version built for Trainium onto a service that runs on its GPU pool."""
    with whole_rollouts(gpu_first_config(), definition_text, monkeypatch, version_pools=VERSION_POOLS) as built:
        place_tracks(built.world, GPU_POOL)
        yield built
