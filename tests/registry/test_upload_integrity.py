"""Issue 21, problems 1 and 8, and What to build 3: `tessera models upload` reads the registry first, never
overwrites (every object is written with If-None-Match), resumes, reports what the registry records as soon as
it does, prints progress outside a terminal, and never drops or follows a path silently."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from registry.store import RegistryStore
from tessera_cli import environment, models
from tessera_cli.errors import EXIT_OK, EXIT_REJECTED, EXIT_USAGE
from tessera_cli.main import main
from tests.registry.world import ASSISTANT_ARTIFACTS, BUCKET, World, assistant_manifest

VERSION = "2026-11-20"
FOLDER = f"models/assistant/{VERSION}/"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def version_folder(tmp_path: Path, files: dict[str, bytes] | None = None, name: str = VERSION) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for path, data in (files or ASSISTANT_ARTIFACTS).items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    draft = assistant_manifest(name)
    del draft["artifacts"]
    (folder / "manifest.json").write_text(json.dumps(draft))
    return folder


class S3WriteLog:
    """moto's S3 behind the CLI, logging every write request with its arguments."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.writes: list[tuple[str, dict]] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name in ("put_object", "upload_part", "complete_multipart_upload", "create_multipart_upload", "upload_file"):

            def logged(*args: Any, **kwargs: Any) -> Any:
                self.writes.append((name, {k: v for k, v in kwargs.items() if k != "Body"}))
                return attribute(*args, **kwargs)

            return logged
        return attribute

    def written_keys(self) -> list[str]:
        return [kwargs["Key"] for name, kwargs in self.writes if name in ("put_object", "complete_multipart_upload")]


@pytest.fixture
def s3_log(world: World, monkeypatch: pytest.MonkeyPatch) -> S3WriteLog:
    log = S3WriteLog(world.s3)
    real = environment.Environment.client

    def client(self: environment.Environment, service: str) -> Any:
        return log if service == "s3" else real(self, service)

    monkeypatch.setattr(environment.Environment, "client", client)
    return log


def _object_versions(world: World) -> int:
    return len(world.s3.list_object_versions(Bucket=BUCKET, Prefix="models/").get("Versions", []))


def test_1_an_upload_over_a_registered_version_is_refused_before_any_byte(
    world: World, s3_log: S3WriteLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world.upload(assistant_manifest(), ASSISTANT_ARTIFACTS)
    assert world.registrar().register("assistant", VERSION).outcome == "REGISTERED"
    before = _object_versions(world)
    folder = version_folder(tmp_path, {"model.neff": b"other weights", "tokenizer.json": b"{}"})
    code, _, err = run(capsys, "models", "upload", "assistant", VERSION, str(folder), "--timeout", "0")
    assert code == EXIT_REJECTED
    assert f"assistant {VERSION} is REGISTERED" in err
    assert s3_log.writes == []
    assert _object_versions(world) == before


def test_1_an_upload_of_a_version_that_ran_is_refused(
    world: World, s3_log: S3WriteLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world.upload(assistant_manifest(), ASSISTANT_ARTIFACTS)
    world.registrar().register("assistant", VERSION)
    world.store().record_lifecycle_event("assistant", VERSION, "rolled-back", {}, key="e1#rolled-back")
    code, _, err = run(
        capsys, "models", "upload", "assistant", VERSION, str(version_folder(tmp_path)), "--timeout", "0"
    )
    assert code == EXIT_REJECTED
    assert "ROLLED_BACK" in err
    assert s3_log.writes == []


def test_every_write_is_conditional(
    world: World, s3_log: S3WriteLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = os.urandom((11 << 20) + 5)  # three 5 MiB parts
    folder = version_folder(tmp_path, {"model.neff": big, "tokenizer.json": b"{}"})
    code, _, err = run(
        capsys, "models", "upload", "assistant", VERSION, str(folder), "--part-size-mib", "5", "--no-wait"
    )
    assert code == EXIT_OK, err
    completing = [kwargs for name, kwargs in s3_log.writes if name in ("put_object", "complete_multipart_upload")]
    assert sorted(kwargs["Key"] for kwargs in completing) == [
        f"{FOLDER}manifest.json",
        f"{FOLDER}model.neff",
        f"{FOLDER}tokenizer.json",
    ]
    assert all(kwargs.get("IfNoneMatch") == "*" for kwargs in completing), completing
    assert [name for name, _ in s3_log.writes].count("upload_part") == 3


def test_an_interrupted_upload_resumes_without_sending_what_is_there(
    world: World, s3_log: S3WriteLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = version_folder(tmp_path)
    world.s3.put_object(
        Bucket=BUCKET, Key=f"{FOLDER}model.neff", Body=ASSISTANT_ARTIFACTS["model.neff"], ChecksumAlgorithm="SHA256"
    )
    code, _, err = run(capsys, "models", "upload", "assistant", VERSION, str(folder), "--no-wait")
    assert code == EXIT_OK, err
    assert s3_log.written_keys() == [f"{FOLDER}tokenizer.json", f"{FOLDER}manifest.json"]
    assert "model.neff: already uploaded with the same checksum" in err


def test_an_object_in_the_way_with_other_content_is_refused_by_path(
    world: World, s3_log: S3WriteLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = version_folder(tmp_path)
    world.s3.put_object(Bucket=BUCKET, Key=f"{FOLDER}tokenizer.json", Body=b"not this", ChecksumAlgorithm="SHA256")
    code, _, err = run(capsys, "models", "upload", "assistant", VERSION, str(folder), "--no-wait")
    assert code == EXIT_REJECTED
    assert "tokenizer.json: S3 already holds other content" in err
    assert s3_log.writes == []


def test_a_write_that_loses_a_race_is_refused_by_s3_and_reported(
    world: World,
    s3_log: S3WriteLog,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between the CLI's look and its write, someone else writes the key: If-None-Match makes S3 refuse."""
    folder = version_folder(tmp_path)
    real_put = world.s3.put_object

    def someone_else_first(**kwargs: Any) -> Any:
        if kwargs["Key"].endswith("tokenizer.json"):
            real_put(Bucket=BUCKET, Key=kwargs["Key"], Body=b"theirs")
        return real_put(**kwargs)

    monkeypatch.setattr(world.s3, "put_object", someone_else_first)
    code, _, err = run(capsys, "models", "upload", "assistant", VERSION, str(folder), "--no-wait")
    assert code == EXIT_REJECTED
    assert "tokenizer.json: S3 refused the write: the object appeared meanwhile" in err
    body = world.s3.get_object(Bucket=BUCKET, Key=f"{FOLDER}tokenizer.json")["Body"].read()
    assert body == b"theirs"
    assert "Contents" not in world.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{FOLDER}manifest.json")


def test_a_conflict_is_reported_as_soon_as_the_registry_records_it(
    lambda_env: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another manifest registered the version between the CLI's look and its write: the wait reports the
    registry's conflict at its first poll instead of waiting out --timeout."""
    polls: list[str] = []
    real_get = RegistryStore.get_version

    def registered_meanwhile(store: RegistryStore, service: str, version: str) -> Any:
        polls.append(version)
        if len(polls) == 2:  # after the CLI's look and write, at its first poll
            lambda_env.upload(assistant_manifest(model="another"), ASSISTANT_ARTIFACTS)
            lambda_env.registrar().register("assistant", VERSION)
        return real_get(store, service, version)

    monkeypatch.setattr(RegistryStore, "get_version", registered_meanwhile)
    monkeypatch.setattr(models.time, "sleep", lambda _: pytest.fail("waited instead of reporting the conflict"))
    code, _, err = run(
        capsys, "models", "upload", "assistant", VERSION, str(version_folder(tmp_path)), "--timeout", "0"
    )
    assert code == EXIT_REJECTED
    assert "is already REGISTERED" in err


def test_progress_lines_when_output_is_not_a_terminal(
    world: World, s3_log: S3WriteLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "models", "upload", "assistant", VERSION, str(version_folder(tmp_path)), "--no-wait")
    assert code == EXIT_OK
    lines = err.splitlines()
    assert any(line.startswith("checksummed model.neff") for line in lines), lines
    assert any(line.startswith("uploaded model.neff") for line in lines), lines
    assert any(line.startswith("uploaded manifest.json") for line in lines), lines


# -- problem 8: nothing dropped or followed silently ---------------------------------------------------------
def test_8_a_nested_manifest_json_is_an_artifact_like_any_file(
    world: World, s3_log: S3WriteLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = version_folder(tmp_path, {**ASSISTANT_ARTIFACTS, "tokenizer/manifest.json": b'{"vocab": 1}'})
    code, out, err = run(capsys, "--json", "models", "upload", "assistant", VERSION, str(folder), "--no-wait")
    assert code == EXIT_OK, err
    paths = [artifact["path"] for artifact in json.loads(out)["manifest"]["artifacts"]]
    assert "tokenizer/manifest.json" in paths


@pytest.mark.parametrize(
    ("make", "named", "expected"),
    [
        (lambda f: (f / ".cache").mkdir() or (f / ".cache" / "x.bin").write_bytes(b"x"), ".cache/x.bin", "hidden"),
        (lambda f: (f / "outside.bin").symlink_to(f.parent / "secret"), "outside.bin", "symbolic link"),
        (lambda f: (f / "gone.bin").symlink_to(f / "nowhere"), "gone.bin", "symbolic link"),
        (
            lambda f: (f / "linked").symlink_to(f.parent / "elsewhere", target_is_directory=True),
            "linked",
            "symbolic link",
        ),
    ],
    ids=["hidden", "file-symlink", "dangling-symlink", "folder-symlink"],
)
def test_8_hidden_paths_and_symlinks_are_refused_by_name(
    world: World,
    s3_log: S3WriteLog,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make: Any,
    named: str,
    expected: str,
) -> None:
    (tmp_path / "secret").write_bytes(b"not part of the model")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "y.bin").write_bytes(b"y")
    folder = version_folder(tmp_path)
    make(folder)
    code, _, err = run(capsys, "models", "upload", "assistant", VERSION, str(folder), "--no-wait")
    assert code == EXIT_USAGE
    assert named in err
    assert expected in err
    assert s3_log.writes == []


def test_8_a_listed_hidden_file_is_uploaded_as_declared(
    world: World, s3_log: S3WriteLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = version_folder(tmp_path, {**ASSISTANT_ARTIFACTS, ".config/settings.json": b"{}"})
    draft = json.loads((folder / "manifest.json").read_text())
    draft["artifacts"] = [{"path": path} for path in ["model.neff", "tokenizer.json", ".config/settings.json"]]
    (folder / "manifest.json").write_text(json.dumps(draft))
    code, _, err = run(capsys, "--json", "models", "upload", "assistant", VERSION, str(folder), "--no-wait")
    assert code == EXIT_OK, err
    assert f"{FOLDER}.config/settings.json" in s3_log.written_keys()
