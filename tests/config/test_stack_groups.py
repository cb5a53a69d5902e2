"""Stack groups in config (stacks/config/stack_groups.py): a service names its group; a group holds at most eight."""

from __future__ import annotations

import pytest

from stacks.config.environment import parse_config
from stacks.config.errors import ConfigError
from stacks.config.stack_groups import SERVICES_PER_STACK_GROUP
from tools.scale_config import scaled_config, scaled_config_data


def test_services_are_grouped_as_config_says_the_main_group_first() -> None:
    config = scaled_config(SERVICES_PER_STACK_GROUP * 2 + 1)
    groups = config.stack_groups
    assert list(groups) == ["main", "group1", "group2"]
    assert [len(members) for members in groups.values()] == [8, 8, 1]


def test_a_ninth_service_in_a_group_is_refused_by_its_path() -> None:
    data = scaled_config_data(SERVICES_PER_STACK_GROUP + 1)
    del data["services"][SERVICES_PER_STACK_GROUP]["stack_group"]
    with pytest.raises(ConfigError) as refused:
        parse_config(data, source="test")
    [problem] = refused.value.problems
    assert problem.startswith("services[8].stack_group: group 'main' already holds 8 services (assistant-00, ")
    assert problem.endswith("give this service another stack_group")


def test_a_group_name_is_a_short_lower_case_word() -> None:
    data = scaled_config_data(3)
    data["services"][2]["stack_group"] = "Edge-Services"
    with pytest.raises(ConfigError, match=r"services\[2\]\.stack_group: 'Edge-Services' must match"):
        parse_config(data, source="test")
