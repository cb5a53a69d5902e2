"""Issue 11 through `tessera`'s main(): checks before writing, the lifecycle as the operator sees it,
the views (list, show, ignored) and the CLI conventions shared by `models` and `rollout`."""

from __future__ import annotations

import json

import pytest

from registry import handler
from tessera_cli import environment
from tessera_cli.errors import EXIT_NOT_FOUND, EXIT_OK, EXIT_REJECTED, EXIT_USAGE
from tessera_cli.main import main
from tests.registry.world import (
    ASSISTANT_ARTIFACTS,
    TABLE,
    LambdaContextDouble,
    World,
    assistant_manifest,
    object_created_event,
)

EVENT_DEPLOYED_CANARY, EVENT_PROMOTED = "deployed-canary", "promoted"  # tessera_shared.constants
V1, V2, V3 = "2026-11-01", "2026-11-20", "2026-11-24"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def registered(world: World, version: str) -> None:
    world.upload(assistant_manifest(version), ASSISTANT_ARTIFACTS)
    assert world.registrar().register("assistant", version).outcome == "REGISTERED"


def set_pointer(world: World, *, stable: str, canary: str | None = None) -> None:
    """What the rollout engine's ledger writes (lambda/rollout/ledger.py set_pointer)."""
    item = {"pk": {"S": "SERVICE#assistant"}, "sk": {"S": "POINTER"}, "stable": {"S": stable}}
    if canary:
        item["canary"] = {"S": canary}
    world.dynamodb.put_item(TableName=TABLE, Item=item)


class NoAwsDouble:
    """Stands in for Environment.client: any AWS call fails the test."""

    def __call__(self, *_: object) -> object:
        raise AssertionError("an AWS call was made")


# -- 1. register before upload ------------------------------------------------------------------------
def test_1_register_before_upload_is_not_found_and_stores_nothing(
    lambda_env: World, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "models", "register", "assistant", V2)
    assert code == EXIT_NOT_FOUND
    assert "manifest not found at s3://" in err
    assert lambda_env.store().get_version("assistant", V2) is None
    registered(lambda_env, V2)  # the real upload then registers


# -- 3. check before writing -----------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["2026 11 24", "../embeddings/2026-10-20"])
def test_3_a_malformed_version_is_a_usage_error_before_any_aws_call(
    version: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(environment.Environment, "client", NoAwsDouble())
    code, _, err = run(capsys, "models", "register", "assistant", version)
    assert code == EXIT_USAGE
    assert f"version {version!r} must match" in err


def test_3_an_unknown_service_is_not_found_and_nothing_is_stored(
    lambda_env: World, capsys: pytest.CaptureFixture[str]
) -> None:
    lambda_env.upload(assistant_manifest(V2, service="painter"), ASSISTANT_ARTIFACTS)
    code, _, err = run(capsys, "models", "register", "painter", V2)
    assert code == EXIT_NOT_FOUND
    assert "service 'painter' is not in environment dev" in err
    assert lambda_env.store().list_versions("painter") == []
    assert run(capsys, "models", "list", "nosuchservice")[0] == EXIT_NOT_FOUND


def test_3_ignored_uploads_are_listed(lambda_env: World, capsys: pytest.CaptureFixture[str]) -> None:
    handler.handle(object_created_event("models/assistant/2026+11+24/manifest.json"), LambdaContextDouble())
    capsys.readouterr()  # the handler's metrics
    code, out, _ = run(capsys, "models", "ignored")
    assert code == EXIT_OK
    assert "models/assistant/2026 11 24/manifest.json" in out
    code, out, _ = run(capsys, "models", "ignored", "--json")
    [item] = json.loads(out)["ignored"]
    assert set(item) == {"at", "kind", "reason", "key", "source"}


# -- 6. the history and views ----------------------------------------------------------------------------
def test_6_list_marks_live_versions_with_a_header_digest_and_time(
    lambda_env: World, capsys: pytest.CaptureFixture[str]
) -> None:
    for version in (V1, V2, V3):
        registered(lambda_env, version)
    store = lambda_env.store()
    for version in (V1, V2):
        store.record_lifecycle_event("assistant", version, EVENT_PROMOTED, {}, key=f"{version}#promote")
    store.record_lifecycle_event("assistant", V3, EVENT_DEPLOYED_CANARY, {}, key="e3#deploy")
    set_pointer(lambda_env, stable=V2, canary=V3)
    code, out, _ = run(capsys, "models", "list", "assistant")
    assert code == EXIT_OK
    header, *rows = out.splitlines()
    assert header.split() == ["VERSION", "STATE", "LIVE", "IMAGE", "REGISTERED"]
    digest = store.get_version("assistant", V1).image_digest
    assert [row.split()[:4] for row in rows] == [
        [V1, "PROMOTED", "-", digest[7:19]],
        [V2, "PROMOTED", "stable", digest[7:19]],
        [V3, "REGISTERED", "canary", digest[7:19]],
    ]
    assert rows[0].split()[4] == store.get_version("assistant", V1).created_at
    code, out, _ = run(capsys, "models", "list", "assistant", "--json")
    document = json.loads(out)
    assert [row["live"] for row in document["versions"]] == [None, "stable", "canary"]
    assert set(document["versions"][0]) == {
        "version", "state", "model", "image", "image_digest", "registered_at", "updated_at", "live",
    }  # fmt: skip


def test_6_show_prints_the_digest_and_the_whole_history_without_storage_keys(
    lambda_env: World, capsys: pytest.CaptureFixture[str]
) -> None:
    registered(lambda_env, V2)
    lambda_env.store().record_lifecycle_event("assistant", V2, EVENT_PROMOTED, {"execution": "e1"}, key="e1#p")
    digest = lambda_env.store().get_version("assistant", V2).image_digest
    code, out, _ = run(capsys, "models", "show", "assistant", V2)
    assert code == EXIT_OK
    assert f"image digest: {digest}" in out
    assert [line.split()[1] for line in out.split("history:\n")[1].splitlines()] == ["registered", "promoted"]
    code, out, _ = run(capsys, "--json", "models", "show", "assistant", V2)
    document = json.loads(out)
    assert not {"pk", "sk"} & set(document)
    assert all("pk" not in event and "sk" not in event for event in document["history"])
    assert [event["kind"] for event in document["history"]] == ["registered", "promoted"]
    assert document["image_digest"] == digest


# -- CLI conventions ----------------------------------------------------------------------------------------
def test_global_options_work_before_or_after_the_command(lambda_env: World, capsys: pytest.CaptureFixture[str]) -> None:
    registered(lambda_env, V2)
    before = run(capsys, "--env", "dev", "--json", "models", "list", "assistant")
    after = run(capsys, "models", "list", "assistant", "--json", "--env", "dev", "--region", "us-east-1")
    assert before[0] == after[0] == EXIT_OK
    assert json.loads(before[1]) == json.loads(after[1])
    code, _, err = run(capsys, "models", "list", "assistant", "--env", "staging")
    assert code == 4
    assert "/tessera/staging/" in err


def test_rollout_commands_take_global_options_after_the_command(
    lambda_env: World, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "rollout", "history", "assistant", "--json")
    assert code == EXIT_OK
    assert json.loads(out) == {"service": "assistant", "rollouts": []}


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == EXIT_OK
    assert out.strip() == "tessera 0.1.0"


@pytest.mark.parametrize(
    ("command", "example"),
    [
        (["models", "upload"], "tessera models upload assistant 2026-11-20 ./assistant-2026-11-20"),
        (["models", "list"], "tessera models list assistant --json"),
        (["models", "ignored"], "tessera --env prod models ignored"),
        (["rollout", "start"], "tessera rollout start assistant 2026-11-20 --override bake_seconds=1800"),
        (["rollout", "abort"], 'tessera rollout abort assistant --reason "latency regression seen by on-call"'),
    ],
)
def test_each_command_help_shows_an_example_and_the_exit_codes(
    command: list[str], example: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, *command, "--help")
    assert code == EXIT_OK
    assert f"  {example}" in out
    assert "exit codes:" in out
    assert "  3   not found" in out


def test_rejected_registration_exit_code_is_unchanged(lambda_env: World, capsys: pytest.CaptureFixture[str]) -> None:
    lambda_env.upload(assistant_manifest(V2, neuron_sdk="2.32.0"), ASSISTANT_ARTIFACTS)
    assert run(capsys, "models", "register", "assistant", V2)[0] == EXIT_REJECTED
