"""Issue 21, problem 12: the operator CLI as operators meet it. Each command's --help shows its own description,
example and the one exit-code table; the same situation gets the same exit code in every command; no input ends
in a traceback; Ctrl-C exits 130; `validate` accepts what `upload` accepts; prompts go to stderr; `rollout status`
is a short block."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tessera_cli import models
from tessera_cli.errors import (
    EXIT_CODES,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_USAGE,
)
from tessera_cli.main import build_parser, command_parsers, main
from tessera_cli.status_view import status_block
from tests.registry.world import ASSISTANT_ARTIFACTS, World, assistant_manifest

COMMANDS = [
    ("models", "list"),
    ("models", "show"),
    ("models", "register"),
    ("models", "validate"),
    ("models", "upload"),
    ("models", "ignored"),
    ("rollout", "start"),
    ("rollout", "status"),
    ("rollout", "approve"),
    ("rollout", "abort"),
    ("rollout", "unlock"),
    ("rollout", "history"),
    ("cost",),
]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _help_of(command: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--help"])
    return buffer.getvalue()


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_each_commands_help_shows_its_description_example_and_the_exit_codes(command: tuple[str, ...]) -> None:
    text = _help_of(command)
    description = command_parsers(build_parser())[" ".join(command)].description
    assert description
    assert " ".join(description.split()) in " ".join(text.split()), text
    example = text.split("example", 1)[1].splitlines()[1]
    assert example.strip().startswith("tessera"), text
    assert command[-1] in example, text
    assert "exit codes:" in text
    for code, meaning in EXIT_CODES.items():
        assert f"{code} {' '.join(meaning.split())}" in " ".join(text.split()), (code, text)


def test_rollout_starts_help_keeps_its_overridable_keys() -> None:
    text = _help_of(("rollout", "start"))
    assert "overridable keys" in text
    assert "bake_seconds" in text


@pytest.mark.parametrize(
    "argv",
    [
        ("models", "show", "Bad_Name!", "v1"),
        ("models", "show", "assistant", "../v1"),
        ("rollout", "start", "Bad_Name!", "v1"),
        ("rollout", "status", "Bad_Name!"),
        ("rollout", "history", "Bad_Name!"),
        ("rollout", "approve", "Bad_Name!"),
        ("rollout", "abort", "Bad_Name!"),
        ("rollout", "unlock", "Bad_Name!", "--force"),
        ("models", "upload", "assistant", "v1", ".", "--part-size-mib", "6000"),
        ("models", "upload", "assistant", "v1", ".", "--part-size-mib", "four"),
    ],
)
def test_malformed_arguments_are_usage_errors_in_every_command(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == EXIT_USAGE
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(("error:", "tessera")), err


@pytest.mark.parametrize(
    "argv",
    [
        ("models", "list", "nosuchservice"),
        ("rollout", "status", "nosuchservice"),
        ("rollout", "history", "nosuchservice"),
        ("rollout", "start", "nosuchservice", "v1"),
    ],
)
def test_an_unknown_service_is_not_found_in_every_command(
    world: World, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == EXIT_NOT_FOUND, err
    assert "nosuchservice" in err


@pytest.mark.parametrize(
    "argv", [("models", "validate", "{folder}", "--config", "{missing}"), ("cost", "--config", "{missing}")]
)
def test_a_missing_config_file_is_a_usage_error_in_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    folder = tmp_path / "v"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps(assistant_manifest()))
    filled = [part.format(folder=folder, missing=tmp_path / "missing.yaml") for part in argv]
    code, _, err = run(capsys, *filled)
    assert code == EXIT_USAGE, err
    assert "missing.yaml" in err


def _folder(tmp_path: Path, manifest: bytes) -> Path:
    folder = tmp_path / "v"
    folder.mkdir(exist_ok=True)
    for path, data in ASSISTANT_ARTIFACTS.items():
        (folder / path).write_bytes(data)
    (folder / "manifest.json").write_bytes(manifest)
    return folder


DRAFT = assistant_manifest()
HOSTILE_MANIFESTS = {
    "nested": b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    "huge-int": b'{"schema_version": ' + b"9" * 5000 + b"}",
    "not-json": b"{not json",
    "a-list": b"[1, 2]",
    "artifacts-not-objects": json.dumps({**DRAFT, "artifacts": [1, "x"]}).encode(),
    "artifact-path-a-number": json.dumps({**DRAFT, "artifacts": [{"path": 5}]}).encode(),
    "artifacts-a-string": json.dumps({**DRAFT, "artifacts": "model.neff"}).encode(),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_MANIFESTS))
@pytest.mark.parametrize("command", ["validate", "upload"])
def test_no_input_ends_in_a_traceback(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, command: str
) -> None:
    folder = _folder(tmp_path, HOSTILE_MANIFESTS[name])
    upload = ["models", "upload", "assistant", "2026-11-20", str(folder), "--no-wait"]
    argv = ["models", "validate", str(folder)] if command == "validate" else upload
    code, out, err = run(capsys, *argv)
    assert code in (EXIT_REJECTED, EXIT_USAGE), (code, err)
    assert "Traceback" not in out + err
    lines = [line for line in (err if command == "upload" else out + err).splitlines() if line.strip()]
    assert lines, (out, err)
    assert all(len(line) < 2000 for line in lines)


def test_validate_accepts_the_draft_upload_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    draft = {key: value for key, value in assistant_manifest().items() if key != "artifacts"}
    folder = _folder(tmp_path, json.dumps(draft).encode())
    code, out, err = run(capsys, "models", "validate", str(folder))
    assert code == EXIT_OK, out + err
    assert "valid" in out


def test_ctrl_c_exits_130_with_one_line(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*_: Any, **__: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr("tessera_cli.upload.Uploader.upload_artifact", interrupted)
    folder = _folder(tmp_path, json.dumps({k: v for k, v in DRAFT.items() if k != "artifacts"}).encode())
    code, _, err = run(capsys, "models", "upload", "assistant", "2026-11-20", str(folder))
    assert code == EXIT_INTERRUPTED
    assert err.strip().splitlines()[-1] == "interrupted"
    assert "Traceback" not in err


def test_the_unlock_prompt_goes_to_stderr(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tessera_cli.rollout._ledger", lambda env: _LedgerWithAHeldLock())
    monkeypatch.setattr("tessera_cli.rollout.unlock_refusal", lambda *_: None)
    monkeypatch.setattr("sys.stdin", io.StringIO("not the service name\n"))
    code, out, err = run(capsys, "rollout", "unlock", "assistant", "--force")
    assert code == EXIT_REJECTED
    assert out == ""
    assert "Type the service name to free it" in err


class _HeldLock:
    """The rollout lock as Ledger.locks shows it while a rollout holds it (a test double)."""

    def holder(self, service: str) -> dict:
        return {"execution": "arn:aws:states:us-east-1:1:execution:tessera-dev-rollout:x", "version": "v1"}


class _LedgerWithAHeldLock:
    """A Ledger double whose service is locked by a rollout."""

    locks = _HeldLock()


def _status(**changes: Any) -> dict:
    status = {
        "service": "assistant",
        "version": "2026-11-20",
        "status": "RUNNING",
        "step": {"index": 1, "of": 1, "canary_weight": None},
        "weights": {"stable": 100, "canary": 0},
        "replicas": {"stable": 4, "canary": 1},
        "bake_seconds_left": None,
        "last_judgement": {
            "verdict": "PASS",
            "canary": {"requests": 1200, "errors_5xx": 0, "p99_seconds": 0.41, "cost_per_million_requests": 3.1},
            "stable": {"requests": 3600, "errors_5xx": 1, "p99_seconds": 0.44, "cost_per_million_requests": 4.2},
        },
        "last_interval": None,
        "problem": None,
        "reason": None,
        "left_to_undo": None,
        "approve_with": None,
        "dashboard": "https://console.aws.amazon.com/cloudwatch/home#dashboards:name=tessera-dev-assistant",
    }
    return status | changes


def test_rollout_status_is_a_short_readable_block() -> None:
    text = status_block(_status())
    lines = text.splitlines()
    assert lines[0] == "assistant 2026-11-20: RUNNING"
    assert "promoting" in text
    assert "None" not in text
    assert "2/1" not in text
    assert all(len(line) <= 100 for line in lines), lines
    assert len(lines) <= 10


def test_a_step_in_progress_reads_as_step_n_of_m() -> None:
    text = status_block(_status(step={"index": 0, "of": 3, "canary_weight": 10}))
    assert "  step:      1 of 3, canary at 10%" in text.splitlines()


def test_the_models_module_keeps_no_name_check_of_its_own() -> None:
    assert not hasattr(models, "_check_names")


def test_an_llm_services_status_shows_the_runtimes_figures_and_cost_per_million_output_tokens() -> None:
    runtime = {"ttft_p99_seconds": 0.9, "tpot_p99_seconds": 0.05, "e2e_p99_seconds": 8.1, "errors": 0}
    slower = {**runtime, "ttft_p99_seconds": 1.17}
    judgement = {
        "verdict": "FAIL",
        "canary": {"requests": 1200, "runtime": slower, "cost_per_million_output_tokens": 0.52},
        "stable": {"requests": 3600, "runtime": runtime, "cost_per_million_output_tokens": 0.61},
    }
    interval = {
        "window": ["2026-12-04T12:00:00Z", "2026-12-04T12:01:00Z"],
        "verdict": "FAIL",
        "failing_intervals": 1,
        "canary": {"requests": 1000, "runtime": slower},
        "stable": {"requests": 1000, "runtime": runtime},
    }
    lines = status_block(_status(last_judgement=judgement, last_interval=interval)).splitlines()
    assert "  runtime:   ttft p99 0.9s / 1.17s, tpot p99 0.05s / 0.05s, e2e p99 8.1s / 8.1s" in lines
    assert "             per million output tokens stable $0.61 / canary $0.52" in lines
    assert "             stable / canary ttft p99 0.9s / 1.17s, tpot p99 0.05s / 0.05s, e2e p99 8.1s / 8.1s" in lines
    assert all(len(line) <= 100 for line in lines), lines


def test_a_service_without_runtime_metrics_shows_no_runtime_line() -> None:
    text = status_block(_status())
    assert "runtime" not in text
    assert "output tokens" not in text
