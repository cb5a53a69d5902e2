"""Rollout stack: the state machine's shape, the rollout function, its access and settings."""

from __future__ import annotations

import dataclasses
import json
import subprocess

import pytest

from stacks.rollout.settings import RoutingArns, rollout_settings
from tessera_shared.constants import (
    EXECUTION_TIMEOUT_SECONDS,
    LOCK_LEASE_SECONDS,
    MAX_ROLLOUT_SECONDS,
    QUIESCENCE_SECONDS,
    ROLLOUT_FUNCTION_TIMEOUT_SECONDS,
)
from tests.rollout.definition import state_machine_definition
from tests.synth import REPO_ROOT, SynthesizedEnvironment

ASL_VALIDATOR = REPO_ROOT / "node_modules" / ".bin" / "asl-validator"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:tessera-dev-rollout"


@pytest.fixture(scope="module")
def definition(dev: SynthesizedEnvironment) -> dict:
    return state_machine_definition(dev, function_arn=FUNCTION_ARN)


def test_definition_passes_asl_validator(definition: dict, tmp_path) -> None:
    path = tmp_path / "rollout.asl.json"
    path.write_text(json.dumps(definition))
    result = subprocess.run([str(ASL_VALIDATOR), "--json-path", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_asl_validator_rejects_a_broken_definition(tmp_path) -> None:
    path = tmp_path / "broken.asl.json"
    path.write_text(json.dumps({"StartAt": "Nowhere", "States": {"Here": {"Type": "Succeed"}}}))
    result = subprocess.run([str(ASL_VALIDATOR), "--json-path", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode != 0


def test_waiting_happens_in_wait_states_of_one_poll(definition: dict) -> None:
    """Every wait is one poll long (the bake's at most one: JudgeInterval sets it, see
    test_continuous_judgement), so an abort request is seen within a poll."""
    waits = {name: state for name, state in definition["States"].items() if state["Type"] == "Wait"}
    assert {"WarmUpWait", "BakeWait", "CanarySettling", "ScaledSettling", "StableSettling"} == waits.keys()
    bake = waits.pop("BakeWait")
    assert {state["SecondsPath"] for state in waits.values()} == {"$.plan.policy.poll_seconds"}
    assert bake["SecondsPath"] == "$.progress.wait_seconds"
    assert bake["Next"] == "JudgeInterval"
    assert definition["States"]["ShiftTraffic"]["Next"] == "BakeWait"


def test_every_task_after_the_lock_rolls_back_on_error(definition: dict) -> None:
    states = definition["States"]
    for name, state in states.items():
        if state["Type"] != "Task" or name in ("Prepare", "AcquireLock", "Rollback", "HandToOperator"):
            continue
        catchers = [c for c in state.get("Catch", []) if "States.ALL" in c["ErrorEquals"]]
        assert catchers, name
        assert catchers[0]["Next"] == "Rollback", name
    assert states["AcquireLock"]["Catch"][0]["Next"] == "Refused"
    assert states["Prepare"]["Catch"][0]["Next"] == "NotStarted"


def test_a_rollback_that_cannot_finish_hands_over_to_an_operator(definition: dict) -> None:
    """Case 2: Rollback is retried while its clean-up is incomplete, then HandToOperator records and
    notifies; every ending is a Fail state whose error names the outcome."""
    states = definition["States"]
    rollback = states["Rollback"]
    cleanup_retry = next(r for r in rollback["Retry"] if r["ErrorEquals"] == ["CleanupIncompleteError"])
    assert cleanup_retry["MaxAttempts"] >= 3
    assert rollback["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.cleanup_error", "Next": "HandToOperator"}
    ]
    assert rollback["Next"] == states["HandToOperator"]["Next"] == "RollbackOutcome"
    endings = {c["StringEquals"]: c["Next"] for c in states["RollbackOutcome"]["Choices"]}
    assert endings == {
        "ROLLED_BACK": "RolledBack",
        "ABORTED": "Aborted",
        "FAILED": "RolloutFailed",
        "NEEDS_OPERATOR": "NeedsOperator",
        "PROMOTED": "Promoted",  # Finalize's retries ran out after its commit: the promotion stands
    }
    fails = {name for outcome, name in endings.items() if outcome != "PROMOTED"}
    assert all(states[name]["Type"] == "Fail" and states[name]["Error"] == name for name in fails)
    assert states["Promoted"]["Type"] == "Succeed"


def test_a_lambda_timeout_is_retried(definition: dict) -> None:
    """Case 2: a Lambda timeout surfaces as Lambda.Unknown; every action is idempotent, so it is retried."""
    for name, state in definition["States"].items():
        if state["Type"] == "Task":
            retried = {error for retry in state["Retry"] for error in retry["ErrorEquals"]}
            assert {"Lambda.Unknown", "Lambda.TooManyRequestsException"} <= retried, name


def test_transient_errors_are_retried_with_backoff(definition: dict) -> None:
    for state in definition["States"].values():
        if state["Type"] == "Task":
            [retry] = [r for r in state["Retry"] if "TransientError" in r["ErrorEquals"]]
            assert retry["BackoffRate"] == 2
            assert retry["MaxAttempts"] >= 3


def test_judgement_routes_each_verdict(definition: dict) -> None:
    choices = {c["StringEquals"]: c["Next"] for c in definition["States"]["Verdict"]["Choices"]}
    assert choices == {"PASS": "NextStep", "FAIL": "CanaryFailed"}
    assert definition["States"]["JudgeInterval"]["Next"] == "Verdict"
    assert definition["States"]["Verdict"]["Default"] == "BakeWait"  # no verdict yet: the bake goes on


def test_approval_waits_for_a_task_token(definition: dict) -> None:
    approval = definition["States"]["AwaitApproval"]
    assert approval["Resource"].endswith(":states:::lambda:invoke.waitForTaskToken")
    assert approval["TimeoutSecondsPath"] == "$.plan.policy.approval_timeout_seconds"


def test_state_machine_is_standard_traced_and_logged(dev: SynthesizedEnvironment) -> None:
    [machine] = dev.resources("Rollout", "AWS::StepFunctions::StateMachine").values()
    props = machine["Properties"]
    assert props["StateMachineType"] == "STANDARD"
    definition = json.loads("".join(p if isinstance(p, str) else "" for p in props["DefinitionString"]["Fn::Join"][1]))
    # Case 3: the execution outlives the longest valid policy, and the lock's lease outlives the execution.
    assert definition["TimeoutSeconds"] == EXECUTION_TIMEOUT_SECONDS > MAX_ROLLOUT_SECONDS
    assert LOCK_LEASE_SECONDS > EXECUTION_TIMEOUT_SECONDS
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"


def test_rollout_function_runs_in_the_vpc(dev: SynthesizedEnvironment) -> None:
    [function] = dev.resources("Rollout", "AWS::Lambda::Function").values()
    props = function["Properties"]
    assert props["Handler"] == "rollout.handler.handle"
    assert len(props["VpcConfig"]["SubnetIds"]) == 3
    for key in ("CLUSTER_NAME", "CLUSTER_ENDPOINT", "CLUSTER_CA", "REGISTRY_TABLE", "TOPIC_ARN", "SETTINGS_PREFIX"):
        assert key in props["Environment"]["Variables"]


def test_only_the_rules_may_be_modified(dev: SynthesizedEnvironment) -> None:
    [policy] = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in dev.resources("Rollout", "AWS::IAM::Policy").values()
        if "StepsRole" in json.dumps(p["Properties"]["Roles"])
    ]
    by_sid = {s.get("Sid"): s for s in policy}
    assert by_sid["MoveTraffic"]["Action"] == "elasticloadbalancing:ModifyRule"
    assert len(by_sid["MoveTraffic"]["Resource"]) == 3
    assert "*" not in json.dumps(by_sid["MoveTraffic"]["Resource"])


def test_settings_parameter_per_service(dev: SynthesizedEnvironment) -> None:
    names = {
        p["Properties"]["Name"]
        for p in dev.resources("Rollout", "AWS::SSM::Parameter").values()
        if isinstance(p["Properties"].get("Name"), str)
    }
    for service in ("assistant", "embeddings", "gateway"):
        assert f"/tessera/dev/rollout/services/{service}" in names


def test_auto_start_is_off_by_default(dev: SynthesizedEnvironment) -> None:
    sources = [
        r["Properties"]["EventPattern"]["source"] for r in dev.resources("Rollout", "AWS::Events::Rule").values()
    ]
    assert sources == [["aws.states"]]  # only the safety net


def test_notifications_topic_is_encrypted_and_tls_only(dev: SynthesizedEnvironment) -> None:
    [topic] = dev.resources("Rollout", "AWS::SNS::Topic").values()
    assert "alias/aws/sns" in json.dumps(topic["Properties"]["KmsMasterKeyId"])
    [policy] = dev.resources("Rollout", "AWS::SNS::TopicPolicy").values()
    assert "aws:SecureTransport" in json.dumps(policy)


def test_auto_start_rule_for_services_that_want_it(variant: SynthesizedEnvironment) -> None:
    [rule] = [
        r
        for r in variant.resources("Rollout", "AWS::Events::Rule").values()
        if r["Properties"]["EventPattern"].get("source") == ["tessera.registry"]
    ]
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["tessera.registry"]
    assert pattern["detail"] == {"service": ["embeddings"], "environment": ["variant"]}
    [target] = rule["Properties"]["Targets"]
    assert "StateMachine" in json.dumps(target["Arn"])
    transformer = target["InputTransformer"]
    assert transformer["InputPathsMap"] == {"detail-version": "$.detail.version"}
    assert json.loads(transformer["InputTemplate"].replace("<detail-version>", '"v"')) == {
        "service": "embeddings",
        "version": "v",
    }


def test_linear_policy_with_approval_reaches_the_settings(variant: SynthesizedEnvironment) -> None:
    [parameter] = [
        p["Properties"]
        for p in variant.template("Rollout").find_resources("AWS::SSM::Parameter").values()
        if p["Properties"].get("Name") == "/tessera/variant/rollout/services/embeddings"
    ]
    text = json.dumps(parameter["Value"])
    assert '\\"steps\\":[25,50,75,100]' in text
    assert '\\"manual_approval\\":true' in text


def test_the_safety_net_sends_every_ending_to_the_function(dev: SynthesizedEnvironment) -> None:
    """Every execution's end reaches the rollout function: one that fails, times out or is stopped where no state
    catches it is settled, and a SUCCEEDED one has its promotion announced if nobody did."""
    [rule] = [
        r["Properties"]
        for r in dev.resources("Rollout", "AWS::Events::Rule").values()
        if r["Properties"]["EventPattern"].get("source") == ["aws.states"]
    ]
    pattern = rule["EventPattern"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert pattern["detail"]["status"] == ["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"]
    assert "StateMachine" in json.dumps(pattern["detail"]["stateMachineArn"])
    [target] = rule["Targets"]
    assert "Steps" in json.dumps(target["Arn"])
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 8
    assert "DeadLetterConfig" in target


def test_failed_safety_net_invocations_go_to_an_on_failure_destination(dev: SynthesizedEnvironment) -> None:
    """A target's dead-letter queue only catches events EventBridge could not deliver; a safety-net invocation that
    failed (say, its announcement) is retried by Lambda, then kept in the function's on-failure destination."""
    [config] = dev.resources("Rollout", "AWS::Lambda::EventInvokeConfig").values()
    properties = config["Properties"]
    assert properties["MaximumRetryAttempts"] == 2
    destination = properties["DestinationConfig"]["OnFailure"]["Destination"]
    queues = dev.resources("Rollout", "AWS::SQS::Queue")
    assert destination["Fn::GetAtt"][0] in queues


def test_the_second_pass_waits_for_quiescence_on_its_own_queue(dev: SynthesizedEnvironment) -> None:
    """The settle queue feeds the rollout function one message at a time, keeps a message out of sight longer than
    six runs of the function, and ends in a dead-letter queue; the function knows its URL and may send to it."""
    [mapping] = dev.resources("Rollout", "AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["BatchSize"] == 1
    queues = dev.resources("Rollout", "AWS::SQS::Queue")
    settle = queues[mapping["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]]["Properties"]
    assert settle["VisibilityTimeout"] >= 6 * ROLLOUT_FUNCTION_TIMEOUT_SECONDS
    assert settle["RedrivePolicy"]["maxReceiveCount"] == 10
    assert QUIESCENCE_SECONDS <= 900  # SQS delays a message at most 15 minutes
    [function] = [
        f["Properties"]
        for f in dev.resources("Rollout", "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "rollout.handler.handle"
    ]
    assert function["Timeout"] == ROLLOUT_FUNCTION_TIMEOUT_SECONDS
    assert "SETTLE_QUEUE_URL" in function["Environment"]["Variables"]


def _settings(env: SynthesizedEnvironment, service: str) -> dict:
    """A service's rollout settings as the SSM parameter holds them (deploy-time ARNs left as tokens)."""
    [parameter] = [
        p["Properties"]
        for p in env.resources("Rollout", "AWS::SSM::Parameter").values()
        if p["Properties"].get("Name") == f"/tessera/{env.config.name}/rollout/services/{service}"
    ]
    return parameter["Value"]


def test_each_service_watches_its_own_composite_alarm_by_default(dev: SynthesizedEnvironment) -> None:
    composites = {
        alarm["Properties"]["AlarmName"]
        for alarm in dev.resources("Observability", "AWS::CloudWatch::CompositeAlarm").values()
    }
    for placed in dev.config.placed_services:
        name = f"tessera-dev-{placed.name}"
        assert name in composites
        assert f'\\"service_alarm\\":\\"{name}\\"' in json.dumps(_settings(dev, placed.name))
    # The alarms exist before the settings that name them: Prepare refuses a rollout whose alarm is missing.
    assert dev.stacks.observability in dev.stacks.rollout.dependencies


def test_a_policy_may_stop_watching_the_service_alarm(dev: SynthesizedEnvironment) -> None:
    placed = next(p for p in dev.config.placed_services if p.name == "gateway")
    quiet = placed.spec.model_copy(
        update={"rollout": placed.spec.rollout.model_copy(update={"watch_service_alarms": False})}
    )
    routing = RoutingArns(rule="r", stable_target_group="s", canary_target_group="c", load_balancer="lb")
    watched = rollout_settings(placed, environment="dev", routing=routing, image_registry="i", model_bucket="b")
    unwatched = rollout_settings(
        dataclasses.replace(placed, spec=quiet),
        environment="dev",
        routing=routing,
        image_registry="i",
        model_bucket="b",
    )
    assert watched.service_alarm == "tessera-dev-gateway"
    assert unwatched.service_alarm is None


def test_the_stable_autoscaler_kind_follows_the_scaling_config(dev: SynthesizedEnvironment) -> None:
    for placed in dev.config.placed_services:
        text = json.dumps(_settings(dev, placed.name))
        kind = "ScaledObject" if placed.spec.scaling else "HorizontalPodAutoscaler"
        assert f'\\"stable_autoscaler_kind\\":\\"{kind}\\"' in text
