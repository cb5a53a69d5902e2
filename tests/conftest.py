from __future__ import annotations

import functools
from collections.abc import Iterator

import botocore.loaders
import botocore.session
import pytest
import yaml

from stacks.config.environment import EnvironmentConfig, config_path_for, load_config, parse_config
from tests.synth import SynthesizedEnvironment, synthesize

TLS_CERTIFICATE_ARN = "arn:aws:acm:us-east-1:111122223333:certificate/0b8a1f2c-3d4e-4f50-8a6b-7c8d9e0f1a2b"


@pytest.fixture(scope="session", autouse=True)
def no_default_amis() -> Iterator[None]:
    """moto's EC2 backend (which every load balancer and VPC call starts) loads some 2,600 AMIs, 0.36 s per mocked
    test; no Tessera test reads an AMI."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        yield


@pytest.fixture(scope="session", autouse=True)
def one_botocore_loader() -> Iterator[None]:
    """moto gives every mocked test a new default boto3 session, and each session parses botocore's service
    models (JSON) again: about a second per test. One loader for the run shares the parsed models across
    sessions, as one session already shares them across its clients."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session, "create_loader", functools.cache(botocore.loaders.create_loader))
        yield


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedEnvironment:
    """The default environment, synthesized once per test session and shared by every template test."""
    return synthesize(load_config(config_path_for("dev")), tmp_path_factory.mktemp("cdk.out.dev"))


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedEnvironment:
    return synthesize(load_config(config_path_for("prod")), tmp_path_factory.mktemp("cdk.out.prod"))


def variant_config() -> EnvironmentConfig:
    """dev pinned to a region and zones, with access entries, an EFA pool, a capacity-block pool, a service
    whose cores need the Neuron scheduler extension and calls one service of two, and an internet-facing HTTPS load
    balancer: the options
    the shipped environments leave off."""
    data = yaml.safe_load(config_path_for("dev").read_text())
    data["name"] = "variant"
    data["region"] = "us-east-1"
    data["account"] = "111122223333"
    data["network"]["availability_zones"] = ["us-east-1a", "us-east-1b", "us-east-1c"]
    data["cluster"]["admin_role_arns"] = ["arn:aws:iam::111122223333:role/platform-admin"]
    data["cluster"]["read_only_role_arns"] = ["arn:aws:iam::111122223333:role/oncall-viewer"]
    data["cluster"]["node_session_manager"] = True
    data["load_balancer"] |= {
        "internet_facing": True,
        "certificate_arn": TLS_CERTIFICATE_ARN,
        "allowed_cidrs": ["198.51.100.0/24"],
    }
    data["services"][0]["accelerator"]["pool"] = "trainium"
    data["services"][1]["rollout"] = {"auto_start": True, "strategy": "linear", "manual_approval": True}
    ranker = yaml.safe_load(yaml.safe_dump(data["services"][0]))
    ranker |= {"name": "ranker", "port": 8100, "route": {"path_prefix": "/v1/ranker"}}
    ranker["image"]["repository"] = "tessera/variant/ranker"
    # 3 cores on trn1n (2 per device): neither whole devices nor one core, so the scheduler extension.
    ranker["accelerator"] = {"type": "trainium", "neuron_cores": 3, "pool": "training"}
    ranker["calls"] = ["embeddings"]  # a caller of some services, not all: it must not reach the others
    ranker["egress"] = ["198.51.100.16/28"]  # an identity provider outside the VPC, on HTTPS
    data["services"][2]["egress"] = ["0.0.0.0/0"]  # the internet on HTTPS, never the VPC or the ClusterIPs
    data["services"].append(ranker)
    data["cluster"]["accelerator_pools"] += [
        {
            "name": "training",
            "kind": "neuron",
            "instance_types": ["trn1n.32xlarge"],
            "max_nodes": 2,
            "efa": {"availability_zone": "us-east-1b"},
        },
        {
            "name": "reserved",
            "kind": "neuron",
            "instance_types": ["trn2.48xlarge"],
            "max_nodes": 1,
            "max_neuron_cores": 64,
            "capacity": {
                "type": "capacity_block",
                "reservation_id": "cr-0123456789abcdef0",
                "availability_zone": "us-east-1a",
            },
        },
    ]
    return parse_config(data, source="variant")


def grouped_config() -> EnvironmentConfig:
    """dev with embeddings and gateway in a stack group of their own (`edge`), assistant in the main stacks."""
    data = yaml.safe_load(config_path_for("dev").read_text())
    data["name"] = "grouped"
    for service in data["services"][1:]:
        service["stack_group"] = "edge"
    return parse_config(data, source="grouped")


@pytest.fixture(scope="session")
def grouped(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedEnvironment:
    return synthesize(grouped_config(), tmp_path_factory.mktemp("cdk.out.grouped"))


@pytest.fixture(scope="session")
def variant(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedEnvironment:
    return synthesize(variant_config(), tmp_path_factory.mktemp("cdk.out.variant"))
