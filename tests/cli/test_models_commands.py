"""`tessera models ...` through the CLI's entry point: output, --json and exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tessera_cli.errors import EXIT_NOT_FOUND, EXIT_OK, EXIT_REJECTED, EXIT_UNREACHABLE, EXIT_USAGE
from tessera_cli.main import main
from tests.registry.world import ASSISTANT_ARTIFACTS, World, assistant_manifest

VERSION = "2026-11-20"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_console_script_is_installed() -> None:
    tessera = shutil.which("tessera") or str(Path(__import__("sys").executable).parent / "tessera")
    result = subprocess.run([tessera, "models", "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert "validate" in result.stdout


def test_register_then_show_and_list(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.upload(assistant_manifest(), ASSISTANT_ARTIFACTS)
    code, out, _ = run(capsys, "models", "register", "assistant", VERSION)
    assert code == EXIT_OK
    assert out.strip() == f"assistant {VERSION}: REGISTERED (state REGISTERED)"
    code, out, _ = run(capsys, "models", "show", "assistant", VERSION)
    assert code == EXIT_OK
    assert f"assistant {VERSION}: REGISTERED" in out
    assert "instance_family=trn1" in out
    assert " registered" in out  # the history line
    code, out, _ = run(capsys, "--json", "models", "list", "assistant")
    assert code == EXIT_OK
    assert json.loads(out)["versions"][0]["state"] == "REGISTERED"


def test_rejected_registration_exits_1_with_reasons(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.upload(assistant_manifest(neuron_sdk="2.32.0"), ASSISTANT_ARTIFACTS)
    code, out, _ = run(capsys, "--json", "models", "register", "assistant", VERSION)
    assert code == EXIT_REJECTED
    document = json.loads(out)
    assert document["outcome"] == "REJECTED"
    assert document["reasons"] == ["compiled with Neuron SDK 2.32.0 but assistant's serving image has 2.31.1"]


def test_show_unknown_version_exits_3(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--json", "models", "show", "assistant", "nope")
    assert code == EXIT_NOT_FOUND
    assert json.loads(out) == {"error": "assistant version nope is not in the registry"}


def test_undeployed_environment_exits_4(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--env", "staging", "models", "list", "assistant")
    assert code == EXIT_UNREACHABLE
    assert "SSM parameter /tessera/staging/registry/catalog not found" in err


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "models", "show", "assistant")[0] == EXIT_USAGE


def _local_version(tmp_path: Path, manifest: dict, artifacts: dict[str, bytes]) -> Path:
    folder = tmp_path / manifest["version"]
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    for name, data in artifacts.items():
        (folder / name).write_bytes(data)
    return folder


def test_validate_a_good_local_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _local_version(tmp_path, assistant_manifest(), ASSISTANT_ARTIFACTS)
    code, out, _ = run(capsys, "models", "validate", str(folder))
    assert code == EXIT_OK
    assert out.strip().endswith("manifest.json: valid")


def test_validate_reports_checksums_and_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = {**ASSISTANT_ARTIFACTS, "tokenizer.json": b'{"vocab": ["a", "c"]}'}
    folder = _local_version(tmp_path, assistant_manifest(instance_family="trn2"), broken)
    code, out, _ = run(capsys, "--json", "models", "validate", str(folder / "manifest.json"))
    assert code == EXIT_REJECTED
    assert json.loads(out)["reasons"] == [
        "artifact tokenizer.json sha256 does not match the manifest",
        "compiled for instance family trn2 but assistant's pool is trn1",
    ]


def test_validate_against_an_explicit_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _local_version(tmp_path, assistant_manifest(), ASSISTANT_ARTIFACTS)
    config = Path(__file__).resolve().parents[2] / "config" / "prod.yaml"
    assert run(capsys, "models", "validate", str(folder), "--config", str(config))[0] == EXIT_OK
    code, _, err = run(capsys, "models", "validate", str(folder), "--config", str(tmp_path / "missing.yaml"))
    assert code == EXIT_USAGE  # one exit code for a missing config file, in every command
    assert "file not found" in err


def test_validate_missing_path_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "models", "validate", str(tmp_path / "nothing"))[0] == EXIT_USAGE


def test_a_version_built_for_an_allowed_gpu_target_registers_with_that_pool(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 15: the registry records which allowed target a version fits; a rollout of it goes there."""
    gpu_tag = "vllm-0.16.0-cuda12.8"
    world.push_image("tessera/dev/assistant", gpu_tag)
    target = {"accelerator": "gpu", "gpu_model": "l4", "gpus": 1, "cuda": "12.8", "min_driver_version": "570.86.10"}
    manifest = assistant_manifest(compile_target=target, image={"repository": "tessera/dev/assistant", "tag": gpu_tag})
    world.upload(manifest, ASSISTANT_ARTIFACTS)
    code, out, _ = run(capsys, "--json", "models", "register", "assistant", VERSION)
    assert (code, json.loads(out)["state"]) == (EXIT_OK, "REGISTERED")
    code, out, _ = run(capsys, "models", "show", "assistant", VERSION)
    assert "runs on pool: gpu" in out
    code, out, _ = run(capsys, "--json", "models", "show", "assistant", VERSION)
    assert json.loads(out)["pool"] == "gpu"
