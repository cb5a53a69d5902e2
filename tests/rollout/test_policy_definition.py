"""One definition of the rollout policy (issue 23, problem 6): every quantity's unit and bounds are written once
(rollout.policy_fields.FIELDS); config validation, the override checks and Prepare's check of the settings it reads
all take them from there, and a quantity config writes in minutes is converted in that one place."""

from __future__ import annotations

import json
from pathlib import Path

import annotated_types
import pytest
import yaml
from pydantic import BaseModel

from rollout.errors import StartRefusedError
from rollout.handler import dispatch
from rollout.policy import OverrideError, check_overrides
from rollout.policy_fields import FIELDS, PolicyField
from stacks.config.environment import config_path_for, parse_config
from stacks.config.errors import ConfigError
from stacks.config.rollout import AnalysisSpec, RolloutPolicy
from tests.rollout.harness import NEW_VERSION, SETTINGS_PREFIX, RolloutWorld

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:tessera-dev-rollout:policy-bounds"
CONFIGURED = {key: spec for key, spec in FIELDS.items() if spec.config_key is not None}


def _config_field(key: str) -> tuple[type[BaseModel], str]:
    spec = FIELDS[key]
    assert spec.config_key is not None
    model: type[BaseModel] = AnalysisSpec if key.startswith("analysis.") else RolloutPolicy
    return model, spec.config_key


def _config_bounds(model: type[BaseModel], name: str) -> dict[str, float]:
    bounds: dict[str, float] = {}
    for item in model.model_fields[name].metadata:
        for kind in ("ge", "gt", "le", "multiple_of"):
            if isinstance(item, getattr(annotated_types, kind.capitalize() if kind != "multiple_of" else "MultipleOf")):
                bounds[kind] = getattr(item, kind)
    return bounds


def _expected_bounds(spec: PolicyField) -> dict[str, float]:
    scale = spec.config_scale
    expected: dict[str, float] = {}
    if spec.low is not None and spec.kind is not list:
        expected["gt" if spec.low_open else "ge"] = spec.low / scale
    if spec.high is not None and spec.kind is not list:
        expected["le"] = spec.high / scale
    if spec.multiple_of is not None:
        expected["multiple_of"] = spec.multiple_of / scale
    return expected


@pytest.mark.parametrize("key", list(CONFIGURED))
def test_config_takes_each_quantity_s_bounds_from_the_one_definition(key: str) -> None:
    model, name = _config_field(key)
    assert _config_bounds(model, name) == _expected_bounds(FIELDS[key])
    assert FIELDS[key].help.lower() in (model.model_fields[name].description or "").lower()


def test_every_override_is_a_quantity_config_sets_or_one_the_service_derives() -> None:
    """poll_seconds is Tessera's own default and ready_timeout_seconds comes from the service's startup allowance;
    every other overridable quantity has its config field."""
    assert set(FIELDS) - set(CONFIGURED) == {"poll_seconds", "ready_timeout_seconds"}
    for key in CONFIGURED:
        model, name = _config_field(key)
        assert name in model.model_fields, key


@pytest.mark.parametrize(
    ("analysis", "problem"),
    [
        ({"max_p99_seconds": 601}, "max_p99_seconds: 601 must be <= 600"),
        ({"min_requests": 10**9 + 1}, "min_requests: 1000000001 must be <= 1000000000"),
        ({"min_requests_per_interval": 10**9 + 1}, "min_requests_per_interval: 1000000001 must be <= 1000000000"),
        ({"max_5xx_ratio_vs_stable": 1}, "max_5xx_ratio_vs_stable: 1 must be > 1"),
    ],
)
def test_config_refuses_what_an_override_could_not_set(analysis: dict, problem: str) -> None:
    """Before: config accepted a p99 ceiling of 601 s that no override may hold (the override table stopped at 600)."""
    data = yaml.safe_load(config_path_for("dev").read_text())
    data["services"][2]["rollout"] = {"analysis": analysis}
    with pytest.raises(ConfigError) as refused:
        parse_config(data, source="test")
    assert any(line.endswith(problem) for line in refused.value.problems), refused.value.problems


def test_the_shortest_bake_config_allows_is_one_an_override_allows() -> None:
    """Config speaks minutes, overrides seconds: one minute of bake is 60 s to both."""
    policy = RolloutPolicy(bake_minutes=1).as_contract(ready_timeout_seconds=600)
    assert policy.bake_seconds == 60
    check_overrides({"bake_seconds": 60})
    with pytest.raises(OverrideError, match=r"bake_seconds: 59 is out of range: must be at least 60"):
        check_overrides({"bake_seconds": 59})


def test_minutes_become_seconds_in_one_place() -> None:
    policy = RolloutPolicy(warmup_minutes=3, bake_minutes=7, approval_timeout_minutes=30).as_contract(
        ready_timeout_seconds=600
    )
    assert (policy.warmup_seconds, policy.bake_seconds, policy.approval_timeout_seconds) == (180, 420, 1800)
    for key in ("warmup_seconds", "bake_seconds", "approval_timeout_seconds"):
        assert FIELDS[key].config_key == key.replace("_seconds", "_minutes")
        assert FIELDS[key].config_scale == 60


def test_prepare_refuses_settings_whose_policy_is_out_of_bounds(world: RolloutWorld) -> None:
    """Settings are read from SSM, where whoever can write the parameter could loosen a gate past any bound: Prepare
    checks the policy it reads against the same definition."""
    name = f"{SETTINGS_PREFIX}assistant"
    settings = json.loads(world.clients.ssm.get_parameter(Name=name)["Parameter"]["Value"])
    settings["policy"]["analysis"]["max_p99_seconds"] = 1e9
    world.clients.ssm.put_parameter(Name=name, Value=json.dumps(settings), Type="String", Overwrite=True)
    start = {"service": "assistant", "version": NEW_VERSION}
    event = {"action": "prepare", "input": start, "execution": EXECUTION}
    with pytest.raises(StartRefusedError) as refused:
        dispatch(event, world.clients)
    assert (
        "policy.analysis.max_p99_seconds: 1000000000.0 is out of range: must be above 0 and at most 600 seconds"
        in str(refused.value)
    )
    assert world.clients.ledger.locks.holder("assistant") is None


def _number(value: float | None) -> str:
    assert value is not None
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _documented_range(spec: PolicyField) -> str:
    if spec.kind in (bool, list):
        return ""
    if spec.low_open:
        return f"above {_number(spec.low)}" + (f", at most {_number(spec.high)}" if spec.high is not None else "")
    return f"{_number(spec.low)}-{_number(spec.high)}"


def test_the_docs_table_shows_each_quantity_s_unit_and_range() -> None:
    rows = {}
    for line in (Path(__file__).parents[2] / "docs" / "rollouts.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 5 and cells[0].strip("`") in FIELDS:
            rows[cells[0].strip("`")] = cells
    assert set(rows) == set(FIELDS)
    for key, (_, unit, documented, _, _) in rows.items():
        spec = FIELDS[key]
        assert unit == (spec.unit or "true/false"), key
        expected = _documented_range(spec)
        assert documented == expected or documented.startswith(f"{expected},") or spec.kind is list, key
