"""Which CPU architectures a serving image is built for, read from ECR without pulling it.

A multi-platform image (an OCI index or Docker manifest list) names its platforms; buildx adds attestation
manifests with platform `unknown/unknown`, which are not platforms. A single-platform image states its
architecture only in its config blob, which ECR hands out through GetDownloadUrlForLayer (a pre-signed
HTTPS URL); the blob is read bounded, and its JSON parsed bounded like any input.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

from registry.bounded_json import deeper_than

INDEX_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
MAX_DOCUMENT_BYTES = 1 << 20  # an image manifest or config blob; real ones are a few KB
MAX_DEPTH = 64
DOWNLOAD_TIMEOUT_SECONDS = 10

UrlReader = Callable[[str, int], bytes]


def read_https(url: str, limit: int) -> bytes:
    """GET a pre-signed layer URL ECR returned, reading at most `limit` bytes."""
    if not url.startswith("https://"):
        raise ValueError(f"ECR returned a layer URL that is not HTTPS: {url[:80]}")
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:  # noqa: S310 (https only)
        body: bytes = response.read(limit)
        return body


def image_architectures(ecr: Any, repository: str, image_digest: str, *, read_url: UrlReader = read_https) -> set[str]:
    """The architectures the image with this digest runs on. ValueError if ECR's answer cannot be read."""
    images = ecr.batch_get_image(
        repositoryName=repository,
        imageIds=[{"imageDigest": image_digest}],
        acceptedMediaTypes=[*INDEX_MEDIA_TYPES, *MANIFEST_MEDIA_TYPES],
    )["images"]
    if not images:
        raise ValueError(f"image {repository}@{image_digest} has no manifest in ECR")
    manifest = _document(images[0]["imageManifest"].encode(), "image manifest")
    if "manifests" in manifest:
        return {
            entry["platform"]["architecture"]
            for entry in _list(manifest, "manifests")
            if isinstance(entry, dict)
            and isinstance(entry.get("platform"), dict)
            and entry["platform"].get("architecture") not in (None, "unknown")
        }
    config = manifest.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("digest"), str):
        raise ValueError(f"image {repository}@{image_digest}: its manifest names no config blob")
    url = ecr.get_download_url_for_layer(repositoryName=repository, layerDigest=config["digest"])["downloadUrl"]
    blob = _document(read_url(url, MAX_DOCUMENT_BYTES + 1), "config blob")
    architecture = blob.get("architecture")
    if not isinstance(architecture, str):
        raise ValueError(f"image {repository}@{image_digest}: its config blob names no architecture")
    return {architecture}


def _document(raw: bytes, what: str) -> dict[str, Any]:
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"the image's {what} is over {MAX_DOCUMENT_BYTES} bytes")
    if deeper_than(raw, MAX_DEPTH):
        raise ValueError(f"the image's {what} is nested deeper than {MAX_DEPTH} levels")
    try:
        document = json.loads(raw)
    except ValueError as error:
        raise ValueError(f"the image's {what} is not JSON: {str(error)[:120]}") from None
    if not isinstance(document, dict):
        raise ValueError(f"the image's {what} is not a JSON object")
    return document


def _list(document: dict[str, Any], key: str) -> list[Any]:
    value = document.get(key)
    return value if isinstance(value, list) else []
