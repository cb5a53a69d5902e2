"""The values both sides must agree on (lambda/tessera_shared/constants.py) agree where they meet:
the rendered Deployments and the rollout engine's Kubernetes client, the functions' environment in the
templates and what the handlers read, the registration announcement and the auto-start rule."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from rollout.kube.client import KubeClient
from tessera_shared import constants as shared
from tests.fake_aws import REGION, use_fake_credentials
from tests.rollout.kube_double import KubernetesApiDouble
from tests.synth import REPO_ROOT, SynthesizedEnvironment
from tools.render_manifests import rendered_objects

LAMBDA_DIR = REPO_ROOT / "lambda"


def _deployment(config: object, name: str) -> dict:
    for objects in rendered_objects(config).values():
        for obj in objects:
            if obj["kind"] == "Deployment" and obj["metadata"]["name"] == name:
                return obj
    raise AssertionError(f"no Deployment {name}")


def test_the_rollout_engine_changes_the_rendered_deployment_in_place(dev: SynthesizedEnvironment) -> None:
    rendered = _deployment(dev.config, "assistant-canary")
    container_names = [c["name"] for c in rendered["spec"]["template"]["spec"]["containers"]]
    assert container_names == [shared.SERVING_CONTAINER]
    initial = next(s for s in dev.config.services if s.name == "assistant").model.version
    assert rendered["spec"]["template"]["metadata"]["labels"][shared.MODEL_VERSION_LABEL] == initial

    with KubernetesApiDouble() as api:
        api.add_rendered_deployment(shared.NAMESPACE, rendered)
        updated = KubeClient(api.endpoint, lambda: "k8s-aws-v1.test").set_version(
            shared.NAMESPACE,
            "assistant-canary",
            image="registry.example/tessera/assistant@sha256:" + "0" * 64,
            model_version="2026-12-01",
            model_uri="s3://bucket/models/assistant/2026-12-01/",
        )

    template = updated["spec"]["template"]
    # Same label keys and env names as rendered: the engine wrote the renderer's names, added none.
    assert template["metadata"]["labels"].keys() == rendered["spec"]["template"]["metadata"]["labels"].keys()
    assert template["metadata"]["labels"][shared.MODEL_VERSION_LABEL] == "2026-12-01"
    [server] = template["spec"]["containers"]
    rendered_env = [e["name"] for e in rendered["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert [e["name"] for e in server["env"]] == rendered_env
    assert {e["name"]: e.get("value") for e in server["env"]}["MODEL_VERSION"] == "2026-12-01"


def _environment_names_read(module: Path) -> set[str]:
    """`shared.ENV_*` names a handler module reads from os.environ."""
    names = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("ENV_")
            and getattr(node.value, "id", "") == "shared"
        ):
            names.add(getattr(shared, node.attr))
    return names


def _function_environment(env: SynthesizedEnvironment, component: str, handler: str) -> set[str]:
    [function] = [
        f["Properties"]
        for f in env.resources(component, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == handler
    ]
    return set(function["Environment"]["Variables"])


@pytest.mark.parametrize(
    ("component", "handler", "module"),
    [
        ("Registry", "registry.handler.handle", "registry/handler.py"),
        ("Rollout", "rollout.handler.handle", "rollout/handler.py"),
    ],
)
def test_each_function_is_given_every_variable_its_handler_reads(
    dev: SynthesizedEnvironment, component: str, handler: str, module: str
) -> None:
    read = _environment_names_read(LAMBDA_DIR / module)
    assert read, f"{module} reads no shared environment variable: the scan found nothing"
    assert read <= _function_environment(dev, component, handler)


def test_the_registration_announcement_matches_the_auto_start_rule(
    variant: SynthesizedEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real event pattern from the template, on a moto event bus, receives what the handler puts."""
    [rule] = [
        r
        for r in variant.resources("Rollout", "AWS::Events::Rule").values()
        if r["Properties"]["EventPattern"].get("source") == ["tessera.registry"]
    ]
    pattern = rule["Properties"]["EventPattern"]
    use_fake_credentials(monkeypatch)
    monkeypatch.setenv(shared.ENV_ENVIRONMENT, variant.config.name)
    with mock_aws():
        from registry import handler

        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="announcements")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = boto3.client("events", region_name=REGION)
        bus = rule["Properties"]["EventBusName"]
        monkeypatch.setenv(shared.ENV_EVENT_BUS, bus)
        events.create_event_bus(Name=bus)
        events.put_rule(Name="auto-start", EventBusName=bus, EventPattern=json.dumps(pattern))
        events.put_targets(Rule="auto-start", EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}])

        handler._announce("embeddings", "2026-12-01")

        messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", [])
    assert len(messages) == 1
    assert json.loads(messages[0]["Body"])["detail"]["version"] == "2026-12-01"
