"""Issue 21, What to build 2: the model loader (the init container of every model pod) loads exactly the registered
object versions into the model cache, verifies every byte, keeps what the cache already holds, and fails the pod
with the reason on any mismatch."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from model_loader import load_model
from model_loader.load_model import LoadError, load
from tests.registry.world import ASSISTANT_ARTIFACTS, BUCKET, World, assistant_manifest

VERSION = "2026-11-20"
MODEL_URI = f"s3://{BUCKET}/models/assistant/{VERSION}/"
RECORD = f"registered/assistant/{VERSION}.json"


class CountingS3:
    """moto's S3, counting the ranged GETs of artifacts."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3
        self.ranges: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)

    def get_object(self, **kwargs: Any) -> dict:
        if "Range" in kwargs:
            self.ranges.append((kwargs["Key"], kwargs["Range"]))
        return self._s3.get_object(**kwargs)


@pytest.fixture
def registered(world: World) -> World:
    world.upload(assistant_manifest(), ASSISTANT_ARTIFACTS)
    assert world.registrar().register("assistant", VERSION).outcome == "REGISTERED"
    return world


def _load(s3: Any, cache: Path, **options: Any) -> dict[str, int]:
    return load(
        s3, model_uri=MODEL_URI, service="assistant", version=VERSION, cache=cache, say=lambda _: None, **options
    )


def test_a_registered_version_is_loaded_and_verified(registered: World, tmp_path: Path) -> None:
    s3 = CountingS3(registered.s3)
    counts = _load(s3, tmp_path, range_bytes=1000)
    assert counts == {"downloaded": 2, "kept": 0}
    for path, data in ASSISTANT_ARTIFACTS.items():
        assert (tmp_path / path).read_bytes() == data
    assert len([key for key, _ in s3.ranges if key.endswith("model.neff")]) == 3  # 3,000 bytes in 1,000-byte ranges


def test_the_recorded_object_version_is_loaded_even_after_the_key_changed(registered: World, tmp_path: Path) -> None:
    """Someone with the power to change the bucket policy replaced the weights: pods still load what was
    registered, by its version id."""
    registered.s3.put_object(Bucket=BUCKET, Key=f"models/assistant/{VERSION}/model.neff", Body=b"replaced weights")
    _load(registered.s3, tmp_path)
    assert (tmp_path / "model.neff").read_bytes() == ASSISTANT_ARTIFACTS["model.neff"]


def _tamper_record(world: World, **changes: Any) -> None:
    """A record naming an object version whose bytes are not the registered ones (written over the policy, as an
    attacker with the bucket owner's power would)."""
    record = json.loads(world.s3.get_object(Bucket=BUCKET, Key=RECORD)["Body"].read())
    tampered = world.s3.put_object(
        Bucket=BUCKET, Key=f"models/assistant/{VERSION}/model.neff", Body=b"x" * len(ASSISTANT_ARTIFACTS["model.neff"])
    )
    record["artifacts"][0] |= {"version_id": tampered["VersionId"], **changes}
    world.s3.put_object(Bucket=BUCKET, Key=RECORD, Body=json.dumps(record).encode())


def test_an_artifact_that_differs_from_the_record_fails_the_pod_with_the_reason(
    registered: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _tamper_record(registered)
    monkeypatch.setenv("MODEL_S3_URI", MODEL_URI)
    monkeypatch.setenv("SERVICE_NAME", "assistant")
    monkeypatch.setenv("MODEL_VERSION", VERSION)
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path))
    termination = tmp_path.parent / "termination-log"
    termination.write_text("")
    monkeypatch.setattr(load_model, "TERMINATION_LOG", termination)
    assert load_model.main(registered.s3) == 1
    expected = hashlib.sha256(ASSISTANT_ARTIFACTS["model.neff"]).hexdigest()
    assert f"artifact model.neff has SHA-256 {hashlib.sha256(b'x' * 3000).hexdigest()}, registered {expected}" in (
        capsys.readouterr().err
    )
    assert termination.read_text().startswith("model not loaded: artifact model.neff has SHA-256")
    assert not (tmp_path / "model.neff").exists()
    assert not (tmp_path / "model.neff.partial").exists()


def test_a_tampered_part_of_a_multipart_artifact_is_found(registered: World, tmp_path: Path) -> None:
    data = ASSISTANT_ARTIFACTS["model.neff"]
    parts = [hashlib.sha256(data[i : i + 1000]).hexdigest() for i in range(0, len(data), 1000)]
    parts[1] = hashlib.sha256(b"another part").hexdigest()
    record = json.loads(registered.s3.get_object(Bucket=BUCKET, Key=RECORD)["Body"].read())
    record["artifacts"][0] |= {"sha256": None, "part_size_bytes": 1000, "parts_sha256": parts}
    registered.s3.put_object(Bucket=BUCKET, Key=RECORD, Body=json.dumps(record).encode())
    with pytest.raises(LoadError, match="has 1 part"):
        _load(registered.s3, tmp_path)


def test_what_the_cache_holds_with_the_registered_checksum_is_not_downloaded_again(
    registered: World, tmp_path: Path
) -> None:
    _load(registered.s3, tmp_path)
    (tmp_path / "tokenizer.json").write_bytes(b"corrupted on the node")
    s3 = CountingS3(registered.s3)
    assert _load(s3, tmp_path) == {"downloaded": 1, "kept": 1}
    assert {key for key, _ in s3.ranges} == {f"models/assistant/{VERSION}/tokenizer.json"}
    assert (tmp_path / "tokenizer.json").read_bytes() == ASSISTANT_ARTIFACTS["tokenizer.json"]


def test_an_unregistered_version_is_refused(world: World, tmp_path: Path) -> None:
    world.upload(assistant_manifest(), ASSISTANT_ARTIFACTS)  # uploaded, never registered
    with pytest.raises(LoadError, match=f"assistant {VERSION} is not registered"):
        _load(world.s3, tmp_path)


def test_a_record_path_cannot_leave_the_cache(registered: World, tmp_path: Path) -> None:
    record = json.loads(registered.s3.get_object(Bucket=BUCKET, Key=RECORD)["Body"].read())
    record["artifacts"][0]["path"] = "../../etc/passwd"
    registered.s3.put_object(Bucket=BUCKET, Key=RECORD, Body=json.dumps(record).encode())
    with pytest.raises(LoadError, match="leaves the model cache"):
        _load(registered.s3, tmp_path / "cache")


def test_a_missing_setting_is_named(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("MODEL_S3_URI", "SERVICE_NAME", "MODEL_VERSION", "MODEL_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    assert load_model.main(object()) == 1
    assert "MODEL_S3_URI is not set" in capsys.readouterr().err


def test_the_loader_needs_only_the_standard_library_and_boto3() -> None:
    source = Path(load_model.__file__).read_text()
    imported = {
        line.split()[1].split(".")[0]
        for line in source.splitlines()
        if line.startswith(("import ", "from ")) and not line.startswith("from __future__")
    }
    assert imported <= {"base64", "hashlib", "json", "os", "sys", "concurrent", "pathlib", "typing", "urllib"}
    assert "import boto3" in source
    assert os.path.getsize(load_model.__file__) < 64_000  # fits a ConfigMap with room to spare
