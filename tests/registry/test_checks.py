"""Every registration check and every rejection reason, under moto."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest

from registry.checks import check_artifacts, check_identity, check_image, check_target_fit, fitting_target
from registry.checksums import composite_checksum
from registry.manifest import parse_manifest
from tests.registry.world import (
    ASSISTANT_ARTIFACTS,
    BUCKET,
    WEIGHTS,
    World,
    assistant_manifest,
    image_manifest,
    s3_checksum,
)

FOLDER = "models/assistant/2026-11-20/"


def _manifest(**changes: object):
    return parse_manifest(json.dumps(assistant_manifest(**changes)).encode())


def test_identity_matches_the_folder() -> None:
    manifest = _manifest()
    assert check_identity(manifest, service="assistant", version="2026-11-20") == []
    assert check_identity(manifest, service="embeddings", version="v2") == [
        "manifest names service 'assistant' but sits under models/embeddings/",
        "manifest names version '2026-11-20' but sits in folder 'v2'",
    ]


def test_target_fits_the_assistant_pool(catalog) -> None:
    assert check_target_fit(_manifest(), catalog.services["assistant"]) == []


def test_trn1n_artifacts_run_on_a_trn1_pool(catalog) -> None:
    assert check_target_fit(_manifest(instance_family="trn1n"), catalog.services["assistant"]) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"instance_family": "trn2"}, "compiled for instance family trn2 but assistant's pool is trn1"),
        ({"neuron_cores": 4, "tensor_parallel_degree": 4}, "compiled for 4 NeuronCores but assistant pods get 2"),
        ({"neuron_sdk": "2.32.0"}, "compiled with Neuron SDK 2.32.0 but assistant's serving image has 2.31.1"),
    ],
)
def test_target_mismatches(catalog, changes: dict, expected: str) -> None:
    assert check_target_fit(_manifest(**changes), catalog.services["assistant"]) == [expected]


def test_wrong_accelerator(catalog) -> None:
    manifest = _manifest(compile_target={"accelerator": "cpu", "architecture": "arm64"})
    assert check_target_fit(manifest, catalog.services["assistant"]) == [
        "compiled for cpu but assistant runs on trainium and may move to gpu"
    ]
    inferentia = _manifest(
        compile_target={
            "accelerator": "inferentia",
            "instance_family": "inf2",
            "neuron_cores": 1,
            "tensor_parallel_degree": 1,
            "batch_size": 1,
            "sequence_length": 512,
            "neuron_sdk": "2.31.1",
        }
    )
    assert check_target_fit(inferentia, catalog.services["assistant"]) == [
        "compiled for inferentia but assistant runs on trainium and may move to gpu"
    ]
    gateway = _manifest(
        compile_target={"accelerator": "cpu", "architecture": "arm64"},
        image={"repository": "tessera/dev/gateway", "tag": catalog.services["gateway"].image_tag},
    )
    assert check_target_fit(gateway, catalog.services["gateway"]) == []


def test_artifacts_pass_when_sizes_and_checksums_match(world: World) -> None:
    world.upload(assistant_manifest(), ASSISTANT_ARTIFACTS)
    assert check_artifacts(world.s3, bucket=BUCKET, folder=FOLDER, manifest=_manifest()) == []


def test_missing_artifact(world: World) -> None:
    world.upload(assistant_manifest(), {"model.neff": WEIGHTS})
    assert check_artifacts(world.s3, bucket=BUCKET, folder=FOLDER, manifest=_manifest()) == [
        f"artifact tokenizer.json is missing (s3://{BUCKET}/{FOLDER}tokenizer.json)"
    ]


def test_size_mismatch(world: World) -> None:
    world.upload(assistant_manifest(), {**ASSISTANT_ARTIFACTS, "model.neff": WEIGHTS + b"x"})
    reasons = check_artifacts(world.s3, bucket=BUCKET, folder=FOLDER, manifest=_manifest())
    assert reasons == [f"artifact model.neff is {len(WEIGHTS) + 1} bytes, manifest says {len(WEIGHTS)}"]


def test_checksum_mismatch_with_the_same_size(world: World) -> None:
    tampered = bytes(reversed(WEIGHTS))
    world.upload(assistant_manifest(), {**ASSISTANT_ARTIFACTS, "model.neff": tampered})
    [reason] = check_artifacts(world.s3, bucket=BUCKET, folder=FOLDER, manifest=_manifest())
    assert reason.startswith(f"artifact model.neff checksum mismatch: S3 has {s3_checksum(tampered)}")


def test_upload_without_a_checksum(world: World) -> None:
    world.upload(assistant_manifest(), ASSISTANT_ARTIFACTS, checksums=False)
    reasons = check_artifacts(world.s3, bucket=BUCKET, folder=FOLDER, manifest=_manifest())
    assert reasons == [
        "artifact model.neff has no SHA-256 checksum in S3; upload it with one",
        "artifact tokenizer.json has no SHA-256 checksum in S3; upload it with one",
    ]


class MultipartHeadDouble:
    """Test double of S3 HeadObject for an object uploaded in parts: moto leaves out the `-<parts>` suffix."""

    def __init__(self, size: int, checksum: str) -> None:
        self.size = size
        self.checksum = checksum

    def head_object(self, **_: object) -> dict:
        return {"ContentLength": self.size, "ChecksumSHA256": self.checksum}


def test_multipart_upload_needs_the_recorded_s3_checksum() -> None:
    parts = [hashlib.sha256(f"part {number}".encode()).digest() for number in range(3)]
    composite = composite_checksum(parts)
    size = 11 << 20  # three parts of 5 MiB
    manifest = _manifest(artifacts=[{"path": "model.neff", "size_bytes": size, "sha256": "0" * 64}])
    reasons = check_artifacts(MultipartHeadDouble(size, composite), bucket=BUCKET, folder=FOLDER, manifest=manifest)
    assert reasons == [
        f"artifact model.neff was uploaded in 3 parts (S3 checksum {composite}), which S3 cannot compare with the "
        "file's sha256: upload with `tessera models upload`, which records s3_checksum_sha256 with part_size_bytes "
        "and part_count"
    ]
    recorded = _manifest(
        artifacts=[
            {
                "path": "model.neff",
                "size_bytes": size,
                "s3_checksum_sha256": composite,
                "part_size_bytes": 5 << 20,
                "part_count": 3,
                "parts_sha256": [part.hex() for part in parts],
            }
        ]
    )
    assert check_artifacts(MultipartHeadDouble(size, composite), bucket=BUCKET, folder=FOLDER, manifest=recorded) == []


def test_image_with_a_clean_scan_passes(world: World, catalog) -> None:
    assert check_image(world.ecr, _manifest(), catalog.services["assistant"], catalog)[0] == []


def test_image_from_another_repository(world: World, catalog) -> None:
    manifest = _manifest(image={"repository": "tessera/dev/gateway", "tag": "1.4.2"})
    assert check_image(world.ecr, manifest, catalog.services["assistant"], catalog)[0] == [
        "image repository 'tessera/dev/gateway' is not assistant's repository 'tessera/dev/assistant'"
    ]


def test_image_tag_missing(world: World, catalog) -> None:
    manifest = _manifest(image={"repository": "tessera/dev/assistant", "tag": "not-pushed"})
    assert check_image(world.ecr, manifest, catalog.services["assistant"], catalog)[0] == [
        "image tessera/dev/assistant:not-pushed does not exist"
    ]


def test_image_never_scanned(world: World, catalog) -> None:
    world.ecr.put_image(
        repositoryName="tessera/dev/assistant", imageManifest=image_manifest("unscanned"), imageTag="unscanned"
    )
    manifest = _manifest(image={"repository": "tessera/dev/assistant", "tag": "unscanned"})
    assert check_image(world.ecr, manifest, catalog.services["assistant"], catalog)[0] == [
        "image tessera/dev/assistant:unscanned has not been scanned"
    ]


def test_scan_still_running(world: World, catalog) -> None:
    world.push_image("tessera/dev/assistant", "fresh", status="IN_PROGRESS")
    manifest = _manifest(image={"repository": "tessera/dev/assistant", "tag": "fresh"})
    assert check_image(world.ecr, manifest, catalog.services["assistant"], catalog)[0] == [
        "image tessera/dev/assistant:fresh scan is IN_PROGRESS; register again when it completes"
    ]


def test_findings_at_or_above_the_threshold_block(world: World, catalog) -> None:
    world.push_image("tessera/dev/assistant", "vulnerable", findings={"CRITICAL": 2, "HIGH": 1, "LOW": 7})
    manifest = _manifest(image={"repository": "tessera/dev/assistant", "tag": "vulnerable"})
    assert catalog.block_severity == "HIGH"
    assert check_image(world.ecr, manifest, catalog.services["assistant"], catalog)[0] == [
        "image tessera/dev/assistant:vulnerable has findings at or above HIGH: 1 HIGH, 2 CRITICAL"
    ]


def test_findings_below_the_threshold_pass(world: World, catalog) -> None:
    world.push_image("tessera/dev/assistant", "minor", findings={"MEDIUM": 3, "LOW": 9})
    manifest = _manifest(image={"repository": "tessera/dev/assistant", "tag": "minor"})
    assert check_image(world.ecr, manifest, catalog.services["assistant"], catalog)[0] == []
    strict = replace(catalog, block_severity="MEDIUM")
    assert check_image(world.ecr, manifest, catalog.services["assistant"], strict)[0] == [
        "image tessera/dev/assistant:minor has findings at or above MEDIUM: 3 MEDIUM"
    ]


GPU_TARGET = {
    "accelerator": "gpu",
    "gpu_model": "l4",
    "gpus": 1,
    "cuda": "12.8",
    "min_driver_version": "570.86.10",
}


def _gpu_manifest(**target: object):
    return _manifest(
        compile_target={**GPU_TARGET, **target},
        image={"repository": "tessera/dev/assistant", "tag": "vllm-0.16.0-cuda12.8"},
    )


def test_a_version_built_for_an_allowed_gpu_target_fits_that_target(catalog) -> None:
    """Issue 15: the assistant runs on Trainium and may move to the L4 pool; an L4 build fits the gpu target,
    and the record of which target it fits is what the rollout places it by."""
    target, reasons = fitting_target(_gpu_manifest(), catalog.services["assistant"])
    assert reasons == []
    assert target is not None
    assert (target.pool, target.accelerator, target.gpus) == ("gpu", "gpu", 1)
    trainium, _ = fitting_target(_manifest(), catalog.services["assistant"])
    assert trainium is not None
    assert trainium.pool == "trainium"
    # By compute capability alone: any GPU of that major at least that minor (L4 is 8.9).
    by_capability = _gpu_manifest(gpu_model=None, compute_capability="8.6")
    assert check_target_fit(by_capability, catalog.services["assistant"]) == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"gpu_model": "h100"}, "compiled for GPU h100 but assistant's pool gpu has l4"),
        (
            {"gpu_model": None, "compute_capability": "9.0"},
            "compiled for compute capability 9.0 but assistant's pool gpu has l4 (8.9)",
        ),
        ({"gpus": 2}, "compiled for 2 GPUs but assistant pods get 1"),
        (
            {"min_driver_version": "590.10"},
            "needs NVIDIA driver 590.10 or newer but assistant's pool gpu runs 580.159.03 (the pinned AMI's)",
        ),
    ],
)
def test_a_gpu_version_that_does_not_fit_its_pool_is_rejected_with_the_reason(catalog, change, reason) -> None:
    assert check_target_fit(_gpu_manifest(**change), catalog.services["assistant"]) == [reason]


def test_a_gpu_version_for_a_service_without_a_gpu_target_is_rejected(catalog) -> None:
    assert check_target_fit(_gpu_manifest(), catalog.services["embeddings"]) == [
        "compiled for gpu but embeddings runs on inferentia"
    ]


def test_a_gpu_target_names_a_gpu() -> None:
    from registry.manifest import ManifestError

    with pytest.raises(ManifestError, match="give gpu_model or compute_capability"):
        _gpu_manifest(gpu_model=None)
