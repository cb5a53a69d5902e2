"""Issue 22, problem 3: registrations are announced on a Tessera event bus of the environment, where only the
register function may publish, and the auto-start rules listen there only: an event forged on the default bus (which
anyone allowed events:PutEvents reaches) starts nothing."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from stacks.common.resource_names import register_role_name, registration_bus_name
from tessera_shared import constants as shared
from tests.fake_aws import use_fake_credentials
from tests.security.endpoint_policies import PseudoParameters, Request, denies, resolve
from tests.synth import SynthesizedEnvironment

ACCOUNT = "111122223333"
REGION = "us-east-1"
BUS_ARN = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{registration_bus_name('variant')}"


def _auto_start_rules(env: SynthesizedEnvironment) -> list[dict]:
    return [
        r["Properties"]
        for r in env.resources("Rollout", "AWS::Events::Rule").values()
        if r["Properties"]["EventPattern"].get("source") == [shared.REGISTRATION_EVENT_SOURCE]
    ]


def test_the_auto_start_rules_listen_on_the_environments_bus_only(variant: SynthesizedEnvironment) -> None:
    rules = _auto_start_rules(variant)
    assert rules
    for rule in rules:
        assert rule["EventBusName"] == registration_bus_name("variant")


def test_only_the_register_function_publishes_on_the_bus(variant: SynthesizedEnvironment) -> None:
    [policy] = variant.resources("Registry", "AWS::Events::EventBusPolicy").values()
    statement = resolve(policy["Properties"]["Statement"], PseudoParameters(ACCOUNT, REGION))
    statement["Resource"] = BUS_ARN  # the bus's own ARN, which the template names by reference
    document = {"Statement": [statement]}
    register = f"arn:aws:iam::{ACCOUNT}:role/{register_role_name('variant')}"
    anyone = f"arn:aws:iam::{ACCOUNT}:role/SomeDeveloper"
    assert not denies(document, Request("events:PutEvents", BUS_ARN, ACCOUNT, register))
    assert denies(document, Request("events:PutEvents", BUS_ARN, ACCOUNT, anyone))


def test_the_register_function_may_publish_only_registrations_there(variant: SynthesizedEnvironment) -> None:
    [policy] = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in variant.resources("Registry", "AWS::IAM::Policy").values()
        if "RegisterRole" in json.dumps(p["Properties"]["Roles"])
    ]
    [announce] = [s for s in policy if s.get("Sid") == "AnnounceRegistrations"]
    assert "default" not in json.dumps(announce["Resource"])
    assert announce["Condition"] == {"StringEquals": {"events:source": shared.REGISTRATION_EVENT_SOURCE}}


def test_a_forged_registration_on_the_default_bus_starts_nothing(
    variant: SynthesizedEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The template's rule, on moto's EventBridge: what the handler announces reaches it, a forgery on the default
    bus does not."""
    [rule] = _auto_start_rules(variant)[:1]
    use_fake_credentials(monkeypatch)
    monkeypatch.setenv(shared.ENV_ENVIRONMENT, variant.config.name)
    monkeypatch.setenv(shared.ENV_EVENT_BUS, rule["EventBusName"])
    with mock_aws():
        from registry import handler

        sqs = boto3.client("sqs", region_name=REGION)
        queue = sqs.create_queue(QueueName="starts")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = boto3.client("events", region_name=REGION)
        events.create_event_bus(Name=rule["EventBusName"])
        events.put_rule(
            Name="auto-start", EventBusName=rule["EventBusName"], EventPattern=json.dumps(rule["EventPattern"])
        )
        events.put_targets(
            Rule="auto-start", EventBusName=rule["EventBusName"], Targets=[{"Id": "q", "Arn": queue_arn}]
        )
        service = rule["EventPattern"]["detail"]["service"][0]
        forged = {"service": service, "version": "2020-01-01", "environment": variant.config.name}
        events.put_events(
            Entries=[
                {
                    "Source": shared.REGISTRATION_EVENT_SOURCE,
                    "DetailType": shared.REGISTRATION_EVENT_DETAIL_TYPE,
                    "Detail": json.dumps(forged),
                }
            ]
        )
        assert sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", []) == []
        handler._announce(service, "2026-12-01")
        [message] = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"]
    assert json.loads(message["Body"])["detail"]["version"] == "2026-12-01"


def test_the_register_function_uses_the_artifacts_key_only_through_dynamodb_and_s3(
    variant: SynthesizedEnvironment,
) -> None:
    """Issue 22, problem 4 (the register role's part): no direct kms:Decrypt of anything the key protects."""
    [policy] = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in variant.resources("Registry", "AWS::IAM::Policy").values()
        if "RegisterRole" in json.dumps(p["Properties"]["Roles"])
    ]
    kms = [s for s in policy if any(str(action).startswith("kms:") for action in s["Action"])]
    assert len(kms) == 1
    services = resolve(kms[0]["Condition"]["StringEquals"]["kms:ViaService"], PseudoParameters(ACCOUNT, REGION))
    assert services == [f"dynamodb.{REGION}.amazonaws.com", f"s3.{REGION}.amazonaws.com"]
