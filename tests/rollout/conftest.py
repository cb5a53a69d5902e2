from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from stacks.config.environment import config_path_for, load_config
from tests.fake_aws import use_fake_credentials
from tests.rollout.harness import REGION, RolloutWorld
from tests.rollout.kube_double import KubernetesApiDouble


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[RolloutWorld]:
    """The rollout's AWS and Kubernetes surroundings, without the state machine."""
    use_fake_credentials(monkeypatch, REGION)
    with mock_aws(), KubernetesApiDouble() as kube:
        yield RolloutWorld(config=load_config(config_path_for("dev")), kube=kube).build()
