from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from stacks.config import config_path_for, load_config
from tests.rollout.harness import REGION, RolloutWorld
from tests.rollout.kube_double import KubernetesApiDouble


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[RolloutWorld]:
    """The rollout's AWS and Kubernetes surroundings, without the state machine."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws(), KubernetesApiDouble() as kube:
        yield RolloutWorld(config=load_config(config_path_for("dev")), kube=kube).build()
