"""Track objects run images by digest: the track owner pins every `repository:tag` the Services stack rendered to
the digest ECR holds for that tag at deploy time, so a fresh environment never runs a tag (which a lifecycle rule
could expire and a push could reuse), and the admission policy in `inference` (stacks/services/admission.py)
admits it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from registry.images import IMAGE_DIGEST
from tessera_shared.constants import POD_CONTAINER_LISTS

ImageResolver = Callable[[str], str]


def pin_images(objects: list[dict[str, Any]], resolve: ImageResolver) -> None:
    """Replace each tagged image of the Deployments' pods with the same repository at its digest, in place."""
    for obj in objects:
        if obj.get("kind") != "Deployment":
            continue
        pod = obj["spec"]["template"]["spec"]
        for field in POD_CONTAINER_LISTS:
            for container in pod.get(field) or []:
                if "@" not in container["image"]:
                    container["image"] = resolve(container["image"])


def ecr_resolver(ecr: Any) -> ImageResolver:
    """`<registry>/<repository>:<tag>` -> `<registry>/<repository>@sha256:...`, as ECR has it now."""
    found: dict[str, str] = {}

    def resolve(image: str) -> str:
        if image in found:
            return found[image]
        location, _, tag = image.rpartition(":")
        registry, _, repository = location.partition("/")
        if not tag or not repository:
            raise ValueError(f"image {image!r} is not <registry>/<repository>:<tag>")
        try:
            details = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])["imageDetails"]
        except ClientError as error:
            if error.response["Error"]["Code"] in ("ImageNotFoundException", "RepositoryNotFoundException"):
                raise ValueError(f"image {image} does not exist in ECR: push it before deploying") from None
            raise
        digest = details[0]["imageDigest"]
        if not IMAGE_DIGEST.match(digest):
            raise ValueError(f"ECR answered digest {digest!r} for {image}")
        found[image] = f"{registry}/{repository}@{digest}"
        return found[image]

    return resolve
