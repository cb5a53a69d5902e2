"""Issue 11, case 2: uploads that work for large models. `tessera models upload` against moto S3, the
composite-checksum rules of the registry, `models validate`'s multipart warning, and the end-to-end
path from a local folder to a REGISTERED version (and a broken version fixed and re-uploaded)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

from registry import handler
from registry.manifest import ManifestError, parse_manifest
from tessera_cli import environment, models
from tessera_cli.errors import EXIT_OK, EXIT_REJECTED, EXIT_UNREACHABLE
from tessera_cli.main import main
from tests.registry.world import (
    ASSISTANT_ARTIFACTS,
    BUCKET,
    LambdaContextDouble,
    World,
    assistant_manifest,
    object_created_event,
    sha256_hex,
)

V2, V3, V4 = "2026-11-20", "2026-11-24", "2026-11-25"
PART = 5 << 20
BIG = (11 << 20) + 123  # three 5 MiB parts; above both the CLI's 8 MiB and our 5 MiB thresholds


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def version_folder(tmp_path: Path, version: str, *, big: bytes, artifacts: bool = False) -> Path:
    """A folder as a training pipeline leaves it: weights, tokenizer, and a manifest without checksums."""
    folder = tmp_path / version
    (folder / "compiled").mkdir(parents=True)
    (folder / "compiled" / "model.neff").write_bytes(big)
    (folder / "tokenizer.json").write_bytes(ASSISTANT_ARTIFACTS["tokenizer.json"])
    draft = assistant_manifest(version)
    if artifacts:
        draft["artifacts"] = [
            {"path": "compiled/model.neff", "size_bytes": len(big), "sha256": sha256_hex(big)},
            {"path": "tokenizer.json", "size_bytes": 21, "sha256": sha256_hex(ASSISTANT_ARTIFACTS["tokenizer.json"])},
        ]
    else:
        del draft["artifacts"]
    (folder / "manifest.json").write_text(json.dumps(draft))
    return folder


def parts_by_hand(data: bytes, part: int) -> list[bytes]:
    return [hashlib.sha256(data[i : i + part]).digest() for i in range(0, len(data), part)]


def composite_by_hand(data: bytes, part: int) -> str:
    """S3's composite SHA-256, from its definition: checksum of the concatenated part checksums, -N."""
    parts = parts_by_hand(data, part)
    return base64.b64encode(hashlib.sha256(b"".join(parts)).digest()).decode() + f"-{len(parts)}"


def deliver(key: str) -> dict:
    """EventBridge's delivery of the manifest's Object Created event to the register Lambda."""
    return handler.handle(object_created_event(key), LambdaContextDouble())


@pytest.fixture
def big() -> bytes:
    return os.urandom(BIG)


# -- the checksum model ------------------------------------------------------------------------------------
def test_2_local_composite_matches_the_definition_and_moto(world: World, tmp_path: Path, big: bytes) -> None:
    from registry.checksums import file_checksums

    path = tmp_path / "weights.bin"
    path.write_bytes(big)
    local = file_checksums(path, part_size=PART)
    assert local.s3_checksum_sha256 == composite_by_hand(big, PART)
    assert (local.part_count, local.sha256) == (3, sha256_hex(big))
    world.s3.upload_file(
        str(path), BUCKET, "probe", ExtraArgs={"ChecksumAlgorithm": "SHA256"},
        Config=TransferConfig(multipart_threshold=PART, multipart_chunksize=PART),
    )  # fmt: skip
    stored = world.s3.head_object(Bucket=BUCKET, Key="probe", ChecksumMode="ENABLED")["ChecksumSHA256"]
    assert stored == local.s3_checksum_sha256.rsplit("-", 1)[0]  # moto drops the -N suffix


def test_2_a_composite_checksum_needs_part_size_and_count_that_reproduce_it() -> None:
    data = b"x" * BIG
    base = {"path": "model.neff", "size_bytes": BIG, "s3_checksum_sha256": composite_by_hand(data, PART)}
    for artifact, message in [
        (base, "s3_checksum_sha256 is a composite of 3 parts; give part_size_bytes and part_count"),
        ({**base, "part_size_bytes": PART, "part_count": 4}, "part_count 4 does not fit size_bytes"),
        ({**base, "part_size_bytes": PART}, "give part_size_bytes and part_count together"),
    ]:
        with pytest.raises(ManifestError) as raised:
            parse_manifest(json.dumps(assistant_manifest(artifacts=[artifact])).encode())
        assert message in raised.value.reasons[0]
    complete = {**base, "part_size_bytes": PART, "part_count": 3}
    with pytest.raises(ManifestError) as raised:
        parse_manifest(json.dumps(assistant_manifest(artifacts=[complete])).encode())
    assert "give parts_sha256" in raised.value.reasons[0]
    complete["parts_sha256"] = [part.hex() for part in parts_by_hand(data, PART)]
    parse_manifest(json.dumps(assistant_manifest(artifacts=[complete])).encode())


def test_2_validate_warns_about_files_aws_s3_cp_uploads_in_parts(
    tmp_path: Path, big: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = version_folder(tmp_path, V2, big=big, artifacts=True)
    code, out, _ = run(capsys, "--json", "models", "validate", str(folder))
    assert code == EXIT_OK
    document = json.loads(out)
    assert document["valid"] is True
    [warning] = document["warnings"]
    assert warning.startswith(f"artifact compiled/model.neff is {BIG} bytes: `aws s3 cp` uploads it in parts")
    assert "tessera models upload" in warning


def test_2_validate_recomputes_a_recorded_composite(
    tmp_path: Path, big: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = version_folder(tmp_path, V2, big=big, artifacts=True)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["artifacts"][0] |= {
        "s3_checksum_sha256": composite_by_hand(big, PART),
        "part_size_bytes": PART,
        "part_count": 3,
        "parts_sha256": [part.hex() for part in parts_by_hand(big, PART)],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert run(capsys, "models", "validate", str(folder))[0] == EXIT_OK
    # Self-consistent, but of other data: only the file itself shows it.
    manifest["artifacts"][0]["s3_checksum_sha256"] = composite_by_hand(big[::-1], PART)
    manifest["artifacts"][0]["parts_sha256"] = [part.hex() for part in parts_by_hand(big[::-1], PART)]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    code, out, _ = run(capsys, "models", "validate", str(folder))
    assert code == EXIT_REJECTED
    assert "s3_checksum_sha256 is not the composite of its 5242880-byte parts" in out


# -- the end-to-end path ---------------------------------------------------------------------------------
def test_2_end_to_end_upload_register_show_then_publish_a_fixed_version(
    lambda_env: World, tmp_path: Path, big: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = version_folder(tmp_path, V2, big=big)
    code, out, _ = run(
        capsys, "--json", "models", "upload", "assistant", V2, str(folder), "--part-size-mib", "5", "--no-wait"
    )
    assert code == EXIT_OK
    written = json.loads(out)["manifest"]
    weights = next(a for a in written["artifacts"] if a["path"] == "compiled/model.neff")
    assert (weights["part_size_bytes"], weights["part_count"], weights["sha256"]) == (PART, 3, sha256_hex(big))
    assert deliver(f"models/assistant/{V2}/manifest.json")["outcome"] == "REGISTERED"
    capsys.readouterr()
    digest = lambda_env.store().get_version("assistant", V2).image_digest
    code, out, _ = run(capsys, "models", "show", "assistant", V2)
    assert f"image digest: {digest}" in out
    assert digest.startswith("sha256:")

    # A new version uploaded the way the old docs said (`aws s3 cp`: multipart above 8 MiB) is rejected ...
    broken = version_folder(tmp_path, V3, big=big, artifacts=True)
    for path in ("compiled/model.neff", "tokenizer.json"):
        lambda_env.s3.upload_file(
            str(broken / path), BUCKET, f"models/assistant/{V3}/{path}", ExtraArgs={"ChecksumAlgorithm": "SHA256"},
            Config=TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20),
        )  # fmt: skip
    lambda_env.s3.upload_file(str(broken / "manifest.json"), BUCKET, f"models/assistant/{V3}/manifest.json")
    rejected = deliver(f"models/assistant/{V3}/manifest.json")
    assert rejected["outcome"] == "REJECTED"
    assert rejected["reasons"][0].startswith("artifact compiled/model.neff checksum mismatch")
    # ... and its objects stay as they are (S3 refuses to replace them): the fix is a new version, uploaded with
    # `tessera models upload`.
    code, _, err = run(capsys, "models", "upload", "assistant", V3, str(broken), "--part-size-mib", "5", "--no-wait")
    assert code == EXIT_REJECTED
    assert "compiled/model.neff: S3 already holds other content" in err
    fixed = version_folder(tmp_path, V4, big=big, artifacts=True)
    code, _, _ = run(capsys, "models", "upload", "assistant", V4, str(fixed), "--part-size-mib", "5", "--no-wait")
    assert code == EXIT_OK
    assert deliver(f"models/assistant/{V4}/manifest.json")["outcome"] == "REGISTERED"
    history = lambda_env.store().history("assistant", V3)
    assert [(e["kind"], e["attempt"]) for e in history] == [("rejected", 1)]


class S3CompositeSuffixDouble:
    """moto S3 as real S3 reports a multipart object's checksum: with its `-<parts>` suffix (moto drops it)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def head_object(self, **kwargs: Any) -> dict:
        head = self._client.head_object(**kwargs)
        parts = self._client.head_object(Bucket=kwargs["Bucket"], Key=kwargs["Key"], PartNumber=1).get("PartsCount")
        if parts and head.get("ChecksumSHA256"):
            head["ChecksumSHA256"] = f"{head['ChecksumSHA256']}-{parts}"
        return head

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_2_with_s3s_composite_suffix_the_manifest_records_it_and_registers(
    lambda_env: World, tmp_path: Path, big: bytes, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = environment.Environment.client
    monkeypatch.setattr(
        environment.Environment,
        "client",
        lambda self, name: S3CompositeSuffixDouble(real(self, name)) if name == "s3" else real(self, name),
    )
    folder = version_folder(tmp_path, V2, big=big)
    code, out, _ = run(
        capsys, "--json", "models", "upload", "assistant", V2, str(folder), "--part-size-mib", "5", "--no-wait"
    )
    assert code == EXIT_OK
    weights = json.loads(out)["manifest"]["artifacts"][0]
    assert weights["s3_checksum_sha256"] == composite_by_hand(big, PART)
    suffixed = lambda_env.registrar()
    suffixed._s3 = S3CompositeSuffixDouble(lambda_env.s3)
    assert suffixed.register("assistant", V2).outcome == "REGISTERED"


# -- waiting, and refusing before anything is uploaded ---------------------------------------------------
def test_2_upload_waits_for_the_registration_and_prints_it(
    lambda_env: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    delivered: list[dict] = []

    def eventbridge_delivery_double(_: float) -> None:
        """While the CLI sleeps between polls, EventBridge delivers the manifest's event to the Lambda."""
        if not delivered:
            delivered.append(deliver(f"models/assistant/{V2}/manifest.json"))

    monkeypatch.setattr(models.time, "sleep", eventbridge_delivery_double)
    folder = version_folder(tmp_path, V2, big=b"small weights")
    code, out, _ = run(capsys, "models", "upload", "assistant", V2, str(folder))
    assert code == EXIT_OK
    assert f"assistant {V2}: REGISTERED (image sha256:" in out


def test_2_upload_that_is_never_registered_times_out_with_exit_4(
    lambda_env: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = version_folder(tmp_path, V2, big=b"small weights")
    code, _, err = run(capsys, "models", "upload", "assistant", V2, str(folder), "--timeout", "0")
    assert code == EXIT_UNREACHABLE
    assert "no registration of assistant 2026-11-20 within 0 s" in err


def test_2_a_version_that_does_not_fit_uploads_nothing(
    lambda_env: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = version_folder(tmp_path, V2, big=b"weights")
    draft = json.loads((folder / "manifest.json").read_text())
    draft["compile_target"]["neuron_cores"] = 1
    draft["compile_target"]["tensor_parallel_degree"] = 1
    (folder / "manifest.json").write_text(json.dumps(draft))
    code, _, err = run(capsys, "models", "upload", "assistant", V2, str(folder))
    assert code == EXIT_REJECTED
    assert "compiled for 1 NeuronCores but assistant pods get 2" in err
    assert lambda_env.s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
