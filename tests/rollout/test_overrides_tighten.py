"""Issue 20, sequence 16 (item 12): whoever may start a rollout must not be able to loosen its gates. An override
may only tighten a safety gate (more steps, longer warm-up and bakes, stricter thresholds, approval on, alarms
added, a faster reaction); loosening one is a config change, reviewed and deployed like any other. Prepare and
the CLI call the same check (rollout.policy.apply_overrides), so both refuse the same input with the same words,
each naming the field, the configured value and the direction allowed."""

from __future__ import annotations

import json

import pytest

from rollout.contract import Policy
from rollout.errors import StartRefusedError
from rollout.handler import dispatch
from rollout.policy import OverrideError, apply_overrides
from rollout.policy_fields import describe_fields
from stacks.config.rollout import AnalysisSpec, RolloutPolicy
from stacks.registration.catalog import build_catalog
from tessera_cli.main import main as tessera
from tests.rollout.harness import NEW_VERSION, SETTINGS_PREFIX, TABLE, RolloutWorld

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:tessera-dev-rollout:overrides"

# A service's policy as config might set it: every gate set, none at its limit, so each can move either way.
CONFIGURED: Policy = RolloutPolicy(
    steps=[10, 50],
    warmup_minutes=5,
    bake_minutes=10,
    manual_approval=True,
    approval_timeout_minutes=240,
    analysis=AnalysisSpec(alarms=["assistant-ttft"], max_cost_ratio_vs_stable=1.2),
).as_contract(ready_timeout_seconds=1800)

LOOSENING = [
    ({"steps": [100]}, "steps: [100] leaves out the configured step(s) 10, 50: an override may only add steps"),
    ({"steps": [50]}, "steps: [50] leaves out the configured step(s) 10"),
    ({"warmup_seconds": 60}, "warmup_seconds: 60 is below the configured 300: an override may only raise it"),
    ({"bake_seconds": 60}, "bake_seconds: 60 is below the configured 600: an override may only raise it"),
    ({"poll_seconds": 60}, "poll_seconds: 60 is above the configured 30: an override may only lower it"),
    ({"manual_approval": False}, "manual_approval: false, but the service's policy has it on"),
    ({"approval_timeout_seconds": 86400}, "approval_timeout_seconds: 86400 is above the configured 14400"),
    ({"ready_timeout_seconds": 3600}, "ready_timeout_seconds: 3600 is above the configured 1800"),
    ({"analysis": {"max_5xx_rate_percent": 100}}, "analysis.max_5xx_rate_percent: 100 is above the configured 1"),
    ({"analysis.max_5xx_ratio_vs_stable": 5}, "analysis.max_5xx_ratio_vs_stable: 5 is above the configured 2"),
    ({"analysis.max_p99_seconds": 60}, "analysis.max_p99_seconds: 60 is above the configured 10"),
    ({"analysis.max_p99_ratio_vs_stable": 3}, "analysis.max_p99_ratio_vs_stable: 3 is above the configured 1.5"),
    ({"analysis.min_requests": 10}, "analysis.min_requests: 10 is below the configured 200"),
    ({"analysis.alarms": []}, "analysis.alarms: [] leaves out the configured alarm(s) assistant-ttft"),
    ({"analysis.consecutive_failures": 5}, "analysis.consecutive_failures: 5 is above the configured 2"),
    ({"analysis.max_cost_ratio_vs_stable": 2}, "analysis.max_cost_ratio_vs_stable: 2 is above the configured 1.2"),
    ({"analysis.interval_seconds": 120}, "analysis.interval_seconds: 120 differs from the configured 60"),
    ({"analysis.metric_delay_seconds": 0}, "analysis.metric_delay_seconds: 0 differs from the configured 120"),
    ({"analysis.min_requests_per_interval": 5}, "analysis.min_requests_per_interval: 5 differs from the configured"),
    ({"analysis.min_requests_per_interval": 500}, "analysis.min_requests_per_interval: 500 differs from the"),
]


@pytest.mark.parametrize(("overrides", "message"), LOOSENING)
def test_an_override_that_loosens_a_gate_is_refused(overrides: dict, message: str) -> None:
    with pytest.raises(OverrideError) as refused:
        apply_overrides(CONFIGURED, overrides)
    [problem] = refused.value.problems
    assert problem.startswith(message)
    assert problem.endswith("is a config change)")


TIGHTENING = [
    {"steps": [5, 10, 25, 50]},
    {"steps": [10, 50, 100]},
    {"warmup_seconds": 600, "bake_seconds": 1200},
    {"poll_seconds": 10, "ready_timeout_seconds": 600, "approval_timeout_seconds": 3600},
    {"manual_approval": True},
    {"analysis": {"max_5xx_rate_percent": 0.5, "max_5xx_ratio_vs_stable": 1.5, "max_p99_seconds": 5}},
    {"analysis": {"max_p99_ratio_vs_stable": 1.2, "min_requests": 500, "consecutive_failures": 1}},
    {"analysis": {"alarms": ["assistant-ttft", "assistant-queue"], "max_cost_ratio_vs_stable": 1.0}},
    {"analysis": {"max_bake_extensions": 0}},  # not a gate: either way (see rollout.policy)
    {"analysis": {"max_bake_extensions": 6}},
    {"analysis": {"interval_seconds": 60, "metric_delay_seconds": 120, "min_requests_per_interval": 20}},  # as is
]


@pytest.mark.parametrize("overrides", TIGHTENING)
def test_an_override_that_tightens_is_applied(overrides: dict) -> None:
    policy = apply_overrides(CONFIGURED, overrides)
    flat = {**{k: v for k, v in overrides.items() if k != "analysis"}, **overrides.get("analysis", {})}
    applied = {**policy.to_json(), **policy.analysis.to_json()}
    assert {key: applied[key] for key in flat} == flat


def test_a_gate_the_config_leaves_off_may_be_turned_on() -> None:
    relaxed = RolloutPolicy(manual_approval=False).as_contract(ready_timeout_seconds=1800)
    assert apply_overrides(relaxed, {"manual_approval": True}).manual_approval is True
    assert apply_overrides(relaxed, {"analysis.max_cost_ratio_vs_stable": 1.5}).analysis.max_cost_ratio_vs_stable == 1.5


def test_every_refusal_is_listed_at_once() -> None:
    with pytest.raises(OverrideError) as refused:
        apply_overrides(CONFIGURED, {"steps": [100], "manual_approval": False, "analysis.max_5xx_rate_percent": 100})
    assert [problem.split(":")[0] for problem in refused.value.problems] == [
        "steps",
        "manual_approval",
        "analysis.max_5xx_rate_percent",
    ]


def test_help_says_which_way_each_field_may_move() -> None:
    described = describe_fields()
    assert "bake_seconds [seconds] (>=60, <=43200; may only rise)" in described
    assert "manual_approval (may only be turned on): wait for" in described
    assert "analysis.alarms [names] (may only be added to)" in described
    assert "analysis.max_bake_extensions [count] (>=0, <=20; either way)" in described
    assert "analysis.interval_seconds [seconds] (>=60, <=3600; config only)" in described


# -- as a real caller sends them --------------------------------------------------------------------------
def configure(world: RolloutWorld, **policy: object) -> None:
    """The service's config sets these policy fields (what the Rollout stack renders into its settings)."""
    name = f"{SETTINGS_PREFIX}assistant"
    settings = json.loads(world.clients.ssm.get_parameter(Name=name)["Parameter"]["Value"])
    settings["policy"] |= policy
    world.clients.ssm.put_parameter(Name=name, Value=json.dumps(settings), Type="String", Overwrite=True)


LOOSENING_STARTS = [
    {"manual_approval": False},
    {"steps": [100]},
    {"analysis": {"max_5xx_rate_percent": 100}},
    {"steps": [100], "manual_approval": False, "analysis": {"max_5xx_rate_percent": 100}},
]


@pytest.mark.parametrize("overrides", LOOSENING_STARTS)
def test_prepare_refuses_a_start_that_loosens_a_gate(world: RolloutWorld, overrides: dict) -> None:
    """The start as Step Functions passes it to Prepare, from `aws stepfunctions start-execution --input`."""
    configure(world, manual_approval=True)
    start = {"service": "assistant", "version": NEW_VERSION, "overrides": overrides}
    event = json.loads(json.dumps({"action": "prepare", "input": start, "execution": EXECUTION}))
    with pytest.raises(StartRefusedError, match=r"loosening it is a config change\)"):
        dispatch(event, world.clients)
    assert world.clients.ledger.locks.holder("assistant") is None


def test_the_cli_and_prepare_refuse_with_the_same_words(
    world: RolloutWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(world, manual_approval=True)
    for name, value in (
        ("artifacts/registry-table-name", TABLE),
        ("registry/catalog", build_catalog(world.config).to_json()),
    ):
        world.clients.ssm.put_parameter(Name=f"/tessera/dev/{name}", Value=value, Type="String", Overwrite=True)
    pairs = ["steps=[100]", "manual_approval=false", "analysis.max_5xx_rate_percent=100"]
    argv = ["--env", "dev", "rollout", "start", "assistant", NEW_VERSION]
    assert tessera([*argv, *(arg for pair in pairs for arg in ("--override", pair))]) == 2
    printed = capsys.readouterr().err
    start = {"service": "assistant", "version": NEW_VERSION, "overrides": dict(p.split("=", 1) for p in pairs)}
    start["overrides"] = {key: json.loads(value) for key, value in start["overrides"].items()}
    with pytest.raises(StartRefusedError) as refused:
        dispatch({"action": "prepare", "input": start, "execution": EXECUTION}, world.clients)
    problems = str(refused.value).removeprefix("invalid overrides: ").split("; ")  # as OverrideError joins them
    assert len(problems) == 3
    for problem in problems:
        assert problem in printed
