"""Issue 20, sequence 14 (item 11): a Lambda invocation is not an authority. Whoever may invoke the rollout
function can hand any step any plan; the image (by digest) and the model URI a step writes to a Deployment
must come from the registry record of the version and the service's settings, and a plan that disagrees is
refused, naming the field, before anything is written. Events are sent as a direct `lambda invoke` sends
them: JSON, nothing typed."""

from __future__ import annotations

import json

import pytest

from rollout.errors import RolloutError, StartRefusedError
from rollout.handler import dispatch
from tests.rollout.harness import ACCOUNT, NAMESPACE, NEW_VERSION, REGION, STABLE_VERSION, RolloutWorld

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:tessera-dev-rollout:authority"
FOREIGN_DIGEST = "sha256:" + "e" * 64
REPOSITORY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/tessera/dev/assistant"


def invoke(world: RolloutWorld, action: str, **fields: object) -> dict:
    """The rollout function as `aws lambda invoke --payload` reaches it."""
    return dispatch(json.loads(json.dumps({"action": action, **fields})), world.clients)


@pytest.fixture
def started(world: RolloutWorld) -> tuple[dict, dict]:
    """A rollout that holds the lock and passed preflight: the plan and progress Step Functions would pass on.
    Another service's Deployment exists, so that a write aimed at it would land."""
    world.kube.add_deployment(NAMESPACE, "gateway-stable", replicas=2, env={"MODEL_VERSION": "1"})
    plan = invoke(world, "prepare", input={"service": "assistant", "version": NEW_VERSION}, execution=EXECUTION)
    invoke(world, "acquire_lock", plan=plan)
    progress = invoke(world, "preflight", plan=plan, progress={})
    return plan, progress


def server(world: RolloutWorld, track: str) -> dict:
    return world.kube.deployment(NAMESPACE, f"assistant-{track}")["spec"]["template"]["spec"]["containers"][0]


TAMPERED = [
    pytest.param("image", f"evil.example.com/miner@{FOREIGN_DIGEST}", id="another-registry"),
    pytest.param("image", f"{REPOSITORY}@{FOREIGN_DIGEST}", id="another-digest"),
    pytest.param("image", f"{REPOSITORY}:latest", id="a-tag"),
    pytest.param("image", "x" * 10_000, id="a-long-string"),
    pytest.param("model_uri", "s3://attacker-bucket/models/assistant/weights/", id="another-bucket"),
    pytest.param("model_uri", f"s3://models-bucket/models/gateway/{NEW_VERSION}/", id="another-service"),
    pytest.param("canary_deployment", "gateway-stable", id="another-deployment"),
]


@pytest.mark.parametrize(("field", "value"), TAMPERED)
def test_deploy_canary_refuses_a_plan_the_registry_does_not_back(
    world: RolloutWorld, started: tuple[dict, dict], field: str, value: str
) -> None:
    plan, progress = started
    before = server(world, "canary"), world.kube.deployment(NAMESPACE, "gateway-stable")
    with pytest.raises(RolloutError, match=rf"plan\.{field}"):
        invoke(world, "deploy_canary", plan={**plan, field: value}, progress=progress)
    assert (server(world, "canary"), world.kube.deployment(NAMESPACE, "gateway-stable")) == before


@pytest.mark.parametrize(
    ("field", "value"), [*TAMPERED, pytest.param("namespace", "kube-system", id="another-namespace")]
)
def test_promote_stable_refuses_a_plan_the_registry_does_not_back(
    world: RolloutWorld, started: tuple[dict, dict], field: str, value: str
) -> None:
    plan, progress = started
    field = "stable_deployment" if field == "canary_deployment" else field
    before = server(world, "stable"), world.kube.deployment(NAMESPACE, "gateway-stable")
    with pytest.raises(RolloutError, match=rf"plan\.{field}"):
        invoke(world, "promote_stable", plan={**plan, field: value}, progress=progress)
    assert (server(world, "stable"), world.kube.deployment(NAMESPACE, "gateway-stable")) == before


def test_another_registered_version_is_refused_under_this_versions_name(
    world: RolloutWorld, started: tuple[dict, dict]
) -> None:
    """Both digests are the service's own and registered; only the one recorded for the plan's version may run (the
    plan the rollout recorded names it: a plan that differs is refused before the registry is even asked)."""
    plan, progress = started
    before = server(world, "canary")
    digest = world.image_digests[STABLE_VERSION]
    tampered = {**plan, "image": f"{REPOSITORY}@{digest}", "image_digest": digest}
    with pytest.raises(RolloutError, match=r"plan\.image"):
        invoke(world, "deploy_canary", plan=tampered, progress=progress)
    assert server(world, "canary") == before


def test_the_steps_write_what_the_registry_recorded(world: RolloutWorld, started: tuple[dict, dict]) -> None:
    plan, progress = started
    invoke(world, "deploy_canary", plan=plan, progress=progress)
    canary = server(world, "canary")
    assert canary["image"] == f"{REPOSITORY}@{world.image_digests[NEW_VERSION]}"
    env = {entry["name"]: entry["value"] for entry in canary["env"]}
    assert env["MODEL_S3_URI"] == f"s3://models-bucket/models/assistant/{NEW_VERSION}/"
    assert env["MODEL_VERSION"] == NEW_VERSION


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"service": "assistant", "version": NEW_VERSION, "image": "evil:1"}, r"unknown field\(s\) \['image'\]"),
        ({"service": "assistant", "version": NEW_VERSION, "model_uri": "s3://x/"}, r"\['model_uri'\]"),
        ({"service": ["assistant"], "version": NEW_VERSION}, "start a rollout with"),
        (
            {"service": "assistant", "version": "v" * 5000},
            r"version: 'v+\.\.\. \(5002 characters\) is not a model version",
        ),
        ({"service": "assistant", "version": "2026-11-30"}, "version 2026-11-30 not found in the registry"),
    ],
)
def test_prepare_refuses_a_start_that_names_what_only_the_registry_decides(
    world: RolloutWorld, request_: dict, message: str
) -> None:
    """A start input is `{"service", "version", "overrides"}`; an image or model URI in it would be ignored,
    which a caller could take for obeyed: it is refused instead."""
    with pytest.raises(StartRefusedError, match=message):
        invoke(world, "prepare", input=request_, execution=EXECUTION)
