"""The environment config: both shipped files load, and every broken file fails with its field path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stacks.config.environment import config_path_for, load_config, parse_config
from stacks.config.errors import ConfigError

BROKEN_DIR = Path(__file__).parent / "broken_configs"
BROKEN_FILES = sorted(BROKEN_DIR.glob("*.yaml"))


def _dev_data() -> dict:
    return yaml.safe_load(config_path_for("dev").read_text())


def _problems(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_config(data, source="test")
    return raised.value.problems


def test_dev_loads_with_its_documented_shape() -> None:
    config = load_config(config_path_for("dev"))
    assert config.name == "dev"
    assert config.account is None
    assert config.region is None
    assert config.removal_policy == "destroy"
    assert config.network.nat_gateways == 1
    assert [service.name for service in config.services] == ["assistant", "embeddings", "gateway"]


def test_prod_retains_state_and_has_a_nat_gateway_per_az() -> None:
    config = load_config(config_path_for("prod"))
    assert config.is_retained
    assert config.network.nat_gateways == config.network.az_count == 3


def test_parsed_config_is_immutable() -> None:
    config = load_config(config_path_for("dev"))
    with pytest.raises(ValueError, match="frozen"):
        config.name = "other"  # type: ignore[misc]


def test_defaults_fill_optional_sections() -> None:
    data = _dev_data()
    del data["artifacts"]
    data["network"] = {"nat_gateways": 1}
    config = parse_config(data, source="test")
    assert config.network.az_count == 3
    assert config.network.vpc_cidr == "10.0.0.0/16"
    assert config.artifacts.untagged_image_expiry_days == 7


def test_tags_include_the_environment_name() -> None:
    config = load_config(config_path_for("dev"))
    assert config.tags.as_dict(config.name) == {
        "project": "tessera",
        "environment": "dev",
        "cost-center": "ml-platform",
        "owner": "platform-team",
    }


@pytest.mark.parametrize("path", BROKEN_FILES, ids=[path.stem for path in BROKEN_FILES])
def test_broken_file_fails_with_field_path(path: Path) -> None:
    expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert any(expected in problem for problem in raised.value.problems), raised.value.problems


def test_every_problem_is_reported_at_once() -> None:
    data = _dev_data()
    data["services"][0]["name"] = "Bad Name"
    data["network"]["az_count"] = 9
    data["tags"]["colour"] = "blue"
    problems = _problems(data)
    assert len(problems) == 3
    assert {problem.split(":")[0] for problem in problems} == {"services[0].name", "network.az_count", "tags.colour"}


def test_two_services_may_share_an_image_repository() -> None:
    data = _dev_data()
    data["services"][1]["image"]["repository"] = data["services"][0]["image"]["repository"]
    config = parse_config(data, source="test")
    assert config.image_repositories == ["tessera/dev/assistant", "tessera/dev/gateway"]


def test_explicit_zones_in_the_region_are_accepted() -> None:
    data = _dev_data()
    data["region"] = "eu-west-1"
    data["network"]["availability_zones"] = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    config = parse_config(data, source="test")
    assert config.network.availability_zones == ["eu-west-1a", "eu-west-1b", "eu-west-1c"]


@pytest.mark.parametrize(
    ("region", "valid"),
    [("us-east-1", True), ("ap-southeast-2", True), ("us-gov-west-1", True), ("us-east", False), ("US-EAST-1", False)],
)
def test_region_format(region: str, valid: bool) -> None:
    data = _dev_data()
    data["region"] = region
    if valid:
        assert parse_config(data, source="test").region == region
    else:
        assert _problems(data)[0].startswith("region: ")


def test_missing_file_is_one_line() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config("config/nowhere.yaml")
    assert raised.value.problems == ["file not found"]
    assert str(raised.value) == "config/nowhere.yaml: file not found"


def test_check_config_command_accepts_a_valid_file() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.check_config", "config/prod.yaml"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    assert result.stdout.startswith("config/prod.yaml: OK, environment prod")
    assert "service(s) in 1 stack group(s)" in result.stdout


def test_check_config_command_lists_each_problem_and_exits_1() -> None:
    path = BROKEN_DIR / "network-key-typo.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "tools.check_config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines == [
        f"{path}: network.nat_gateways: required field is missing",
        f"{path}: network.nat_gateway: unknown key 'nat_gateway'; did you mean 'nat_gateways'? "
        "allowed keys: vpc_cidr, az_count, availability_zones, nat_gateways, flow_log_retention_days",
    ]


def test_every_accepted_retention_maps_to_a_cdk_retention() -> None:
    from stacks.common.log_retention import RETENTION_BY_DAYS
    from stacks.config.base import LOG_RETENTION_DAYS

    assert tuple(RETENTION_BY_DAYS) == LOG_RETENTION_DAYS


def test_check_config_warns_when_nobody_can_use_kubectl() -> None:
    """Issue 12 (access): no admin roles and no creator admin leaves the cluster unusable with kubectl."""
    result = subprocess.run(
        [sys.executable, "-m", "tools.check_config", "config/prod.yaml"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    [warning] = result.stderr.splitlines()
    assert warning.startswith("config/prod.yaml: warning: cluster.admin_role_arns: empty")
    assert "nobody can use kubectl" in warning


def test_no_warning_once_an_admin_role_is_named() -> None:
    data = _dev_data()
    data["cluster"]["admin_role_arns"] = ["arn:aws:iam::111122223333:role/platform-admin"]
    assert parse_config(data, source="test").cluster.warnings() == []


def test_pool_pinned_to_a_reservation_zone() -> None:
    """Issue 12 case 9: a capacity block launches only in its zone."""
    data = _dev_data()
    data["region"] = "us-east-1"
    data["network"]["availability_zones"] = ["us-east-1a", "us-east-1b", "us-east-1c"]
    data["cluster"]["accelerator_pools"][0]["capacity"] = {
        "type": "capacity_block",
        "reservation_id": "cr-0123456789abcdef0",
        "availability_zone": "us-east-1c",
    }
    pool = parse_config(data, source="test").cluster.accelerator_pools[0]
    assert pool.zone == "us-east-1c"


def test_4_one_rule_for_where_models_live_s3_prefix_is_refused() -> None:
    """Issue 11, case 4: the handler, its event rule, the catalog and the services all use models/<service>/;
    a config that says otherwise is refused instead of silently breaking auto-registration."""
    data = _dev_data()
    data["services"][0]["model"]["s3_prefix"] = "models/assistant-v2/"
    assert _problems(data) == ["services[0].model.s3_prefix: unknown key 's3_prefix'; allowed keys: name, version"]


def test_calls_name_other_services_of_the_environment() -> None:
    data = _dev_data()
    gateway = data["services"][2]
    gateway["calls"] = ["assistant", "ranker", "gateway", "assistant"]
    assert _problems(data) == [
        "services[2].calls[3]: 'assistant' duplicates services[2].calls[0]",
        "services[2].calls[1]: no service named 'ranker' (services: assistant, embeddings, gateway)",
        "services[2].calls[2]: a service does not call itself through the load balancer",
    ]


def test_no_service_calls_a_public_one() -> None:
    """A public service is routed only on the outside load balancer; calls go through the internal one."""
    data = _dev_data()
    data["services"][0]["calls"] = ["gateway"]
    assert _problems(data) == [
        "services[0].calls[0]: 'gateway' is public, routed only on the outside load balancer; services call each "
        "other through the internal one"
    ]


def test_egress_names_networks_outside_the_vpc_and_the_cluster_ips() -> None:
    data = _dev_data()
    data["services"][0]["egress"] = ["10.40.3.0/24", "172.20.0.1/32", "8.8.8.8/33", "10.0.0.1/8", "0.0.0.0/0"]
    assert _problems(data) == [
        "services[0].egress[2]: '8.8.8.8/33' is not an IPv4 CIDR ('33' is not a valid netmask)",
        "services[0].egress[3]: '10.0.0.1/8' is not an IPv4 CIDR (10.0.0.1/8 has host bits set)",
    ]
    data["services"][0]["egress"] = ["10.40.3.0/24", "172.20.0.1/32", "0.0.0.0/0"]
    assert _problems(data) == [
        "services[0].egress[0]: 10.40.3.0/24 lies in the VPC (10.40.0.0/16); pods reach other services through "
        "`calls`, and nothing else inside",
        "services[0].egress[1]: 172.20.0.1/32 lies in EKS's Service ClusterIPs (172.20.0.0/16); pods reach other "
        "services through `calls`, and nothing else inside",
    ]


def test_shipped_gateway_is_the_public_service_and_calls_the_model_services() -> None:
    for environment in ("dev", "prod"):
        services = {service.name: service for service in load_config(config_path_for(environment)).services}
        assert services["gateway"].calls == ["assistant", "embeddings"]
        assert services["assistant"].calls == services["embeddings"].calls == []
        assert [name for name, service in services.items() if service.public] == ["gateway"]
        assert all(service.egress == [] for service in services.values())


def test_allowed_targets_lists_the_current_target_first_then_each_alternative_with_its_pool() -> None:
    """Issue 15: one typed answer to "where may this service run", each target resolved to its pool."""
    config = load_config(config_path_for("dev"))
    assistant = next(service for service in config.services if service.name == "assistant")
    current, gpu = config.allowed_targets(assistant)
    assert (current.is_current, current.accelerator.type, current.name, current.neuron_sdk) == (
        True,
        "trainium",
        "trainium",
        "2.31.1",
    )
    assert current.image_tag == assistant.image.tag
    assert (gpu.is_current, gpu.accelerator.type, gpu.accelerator.gpus, gpu.name) == (False, "gpu", 1, "gpu")
    assert gpu.pool is not None
    assert gpu.pool.gpu_model == "l4"
    assert gpu.image_tag == "vllm-0.16.0-cuda12.8"
    gateway = next(service for service in config.services if service.name == "gateway")
    [only] = config.allowed_targets(gateway)
    assert (only.pool, only.name) == (None, "general")


def test_key_users_are_role_arns_and_may_be_patterns() -> None:
    data = _dev_data()
    data["artifacts"]["key_user_arns"] = ["arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/*", "admin"]
    assert _problems(data) == [
        "artifacts.key_user_arns[1]: 'admin' is not an IAM role ARN (arn:<partition>:iam::<account>:role/<name>)"
    ]
    data["cluster"]["admin_role_arns"] = ["arn:aws:iam::111122223333:role/*"]  # access entries name one role
    assert (
        "cluster.admin_role_arns[0]: 'arn:aws:iam::111122223333:role/*' is not an IAM role ARN "
        "(arn:<partition>:iam::<account>:role/<name>)"
    ) in _problems(data)
