"""Serving images by digest, and kept while they run.

Registration records the digest an image tag points to; the rollout deploys `repository@sha256:...`
(a tag could be expired by a lifecycle rule and pushed again with other content) and adds a protective
tag to the image it deploys, which the ECR lifecycle rule of highest priority keeps
(stacks/artifacts/stack.py).
"""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import ClientError

from tessera_shared.constants import PROTECTED_IMAGE_TAG_PREFIX

IMAGE_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
MAX_TAG_LENGTH = 128


def image_reference(repository_uri: str, image_digest: str | None) -> str:
    """What a Deployment's container should run: `<registry>/<repository>@sha256:...`."""
    if image_digest is None or not IMAGE_DIGEST.match(image_digest):
        raise ValueError(f"image digest {image_digest!r} is not sha256:<64 hex>; was the version registered?")
    return f"{repository_uri}@{image_digest}"


def protective_tag(version: str) -> str:
    """The tag that keeps a version's image: `tessera-live-<version>` (ECR tags allow what versions allow)."""
    return f"{PROTECTED_IMAGE_TAG_PREFIX}{_TAG_UNSAFE.sub('-', version)}"[:MAX_TAG_LENGTH]


def protect_image(ecr: Any, *, repository: str, image_digest: str, version: str) -> str:
    """Add the protective tag to the image with this digest (idempotent); returns the tag.

    ECR adds a tag by putting the image's own manifest again under the new tag: no layers move. In an
    immutable repository the tag then stays on this image."""
    tag = protective_tag(version)
    images = ecr.batch_get_image(
        repositoryName=repository,
        imageIds=[{"imageDigest": image_digest}],
        acceptedMediaTypes=[
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
        ],
    )["images"]
    if not images:
        raise LookupError(f"image {repository}@{image_digest} does not exist")
    image = images[0]
    put: dict[str, Any] = {"repositoryName": repository, "imageManifest": image["imageManifest"], "imageTag": tag}
    if image.get("imageManifestMediaType"):
        put["imageManifestMediaType"] = image["imageManifestMediaType"]
    try:
        ecr.put_image(**put, imageDigest=image_digest)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ImageAlreadyExistsException":
            raise  # ImageTagAlreadyExistsException: the tag names another image, which must not be hidden
    return tag
