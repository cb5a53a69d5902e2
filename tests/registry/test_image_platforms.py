"""Issue 21, problem 7: a version's serving image is the one config declares for its target, CPU versions
included, and is built for the architecture of the pool it will run on."""

from __future__ import annotations

import json
from typing import Any

import pytest

from registry.image_platforms import image_architectures
from tests.registry.world import (
    ASSISTANT_ARTIFACTS,
    ASSISTANT_TAG,
    World,
    assistant_manifest,
    image_manifest,
)

GATEWAY_REPOSITORY = "tessera/dev/gateway"
GATEWAY_TAG = "1.4.2"


def _gateway_manifest(tag: str) -> dict:
    return assistant_manifest(
        service="gateway",
        model="gateway-routing",
        image={"repository": GATEWAY_REPOSITORY, "tag": tag},
        compile_target={"accelerator": "cpu", "architecture": "arm64"},
    )


def test_7_a_cpu_version_may_not_name_any_tag_of_its_repository(world: World) -> None:
    world.push_image(GATEWAY_REPOSITORY, GATEWAY_TAG)
    world.push_image(GATEWAY_REPOSITORY, "debug-amd64-unreviewed", architectures=("arm64",))
    world.upload(_gateway_manifest("debug-amd64-unreviewed"), ASSISTANT_ARTIFACTS)
    outcome = world.registrar().register("gateway", "2026-11-20")
    assert outcome.outcome == "REJECTED"
    assert "image tag debug-amd64-unreviewed is not gateway's serving image 1.4.2" in outcome.reasons[0]
    world.upload(_gateway_manifest(GATEWAY_TAG) | {"version": "2026-11-21"}, ASSISTANT_ARTIFACTS)
    assert world.registrar().register("gateway", "2026-11-21").outcome == "REGISTERED"


def test_7_an_image_for_another_architecture_than_the_pool_is_rejected(world: World, catalog: Any) -> None:
    world.push_image(GATEWAY_REPOSITORY, GATEWAY_TAG, architectures=("amd64",))
    world.upload(_gateway_manifest(GATEWAY_TAG), ASSISTANT_ARTIFACTS)
    outcome = world.registrar().register("gateway", "2026-11-20")
    assert outcome.outcome == "REJECTED"
    assert f"image {GATEWAY_REPOSITORY}:{GATEWAY_TAG} is built for amd64; pool general runs arm64" in outcome.reasons


def test_7_a_neuron_image_built_only_for_arm64_is_rejected(world: World) -> None:
    world.push_image("tessera/dev/assistant", ASSISTANT_TAG, architectures=("arm64",))
    world.upload(assistant_manifest(), ASSISTANT_ARTIFACTS)
    outcome = world.registrar().register("assistant", "2026-11-20")
    assert outcome.outcome == "REJECTED"
    assert (
        f"image tessera/dev/assistant:{ASSISTANT_TAG} is built for arm64; pool trainium runs amd64" in outcome.reasons
    )


def test_7_a_multi_platform_image_with_the_pools_architecture_passes(world: World, catalog: Any) -> None:
    world.push_image(GATEWAY_REPOSITORY, GATEWAY_TAG, architectures=("amd64", "arm64"))
    world.upload(_gateway_manifest(GATEWAY_TAG), ASSISTANT_ARTIFACTS)
    assert world.registrar().register("gateway", "2026-11-20").outcome == "REGISTERED"


class LayerDownloadDouble:
    """moto's ECR plus GetDownloadUrlForLayer, which moto lacks: the URL names the blob; `read` serves it,
    as the HTTPS GET of ECR's pre-signed layer URL would."""

    def __init__(self, ecr: Any, blobs: dict[str, bytes]) -> None:
        self._ecr = ecr
        self.blobs = blobs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ecr, name)

    def get_download_url_for_layer(self, *, repositoryName: str, layerDigest: str) -> dict:  # noqa: N803
        return {"downloadUrl": f"https://layers.example/{layerDigest}", "layerDigest": layerDigest}

    def read(self, url: str, limit: int) -> bytes:
        return self.blobs[url.rsplit("/", 1)[1]][:limit]


def test_7_a_single_platform_image_is_read_from_its_config_blob(world: World) -> None:
    manifest = image_manifest("single")
    config_digest = json.loads(manifest)["config"]["digest"]
    world.ecr.put_image(repositoryName=GATEWAY_REPOSITORY, imageManifest=manifest, imageTag="single")
    [image] = world.ecr.describe_images(repositoryName=GATEWAY_REPOSITORY)["imageDetails"]
    ecr = LayerDownloadDouble(world.ecr, {config_digest: json.dumps({"architecture": "amd64", "os": "linux"}).encode()})
    found = image_architectures(ecr, GATEWAY_REPOSITORY, image["imageDigest"], read_url=ecr.read)
    assert found == {"amd64"}


def test_7_an_unreadable_config_blob_is_a_reason_not_a_crash(world: World) -> None:
    manifest = image_manifest("single")
    config_digest = json.loads(manifest)["config"]["digest"]
    world.ecr.put_image(repositoryName=GATEWAY_REPOSITORY, imageManifest=manifest, imageTag="single")
    [image] = world.ecr.describe_images(repositoryName=GATEWAY_REPOSITORY)["imageDetails"]
    ecr = LayerDownloadDouble(world.ecr, {config_digest: b"[" * 100_000})
    with pytest.raises(ValueError, match="config blob"):
        image_architectures(ecr, GATEWAY_REPOSITORY, image["imageDigest"], read_url=ecr.read)
