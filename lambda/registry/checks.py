"""The checks a model version must pass to be registered. Each returns the reasons it failed
(an empty list means it passed), so that a rejection lists every problem at once."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from registry.catalog import Catalog, CatalogService
from registry.manifest import CpuTarget, Manifest


def check_identity(manifest: Manifest, *, service: str, version: str) -> list[str]:
    """The folder the manifest sits in must name the same service and version as the manifest."""
    reasons = []
    if manifest.service != service:
        reasons.append(f"manifest names service {manifest.service!r} but sits under models/{service}/")
    if manifest.version != version:
        reasons.append(f"manifest names version {manifest.version!r} but sits in folder {version!r}")
    return reasons


def check_target_fit(manifest: Manifest, service: CatalogService) -> list[str]:
    """The compile target must fit the service's pool and serving image."""
    target = manifest.compile_target
    if isinstance(target, CpuTarget):
        if service.accelerator != "cpu":
            return [f"compiled for cpu but {service.name} runs on {service.accelerator}"]
        return []
    if service.accelerator != target.accelerator:
        return [f"compiled for {target.accelerator} but {service.name} runs on {service.accelerator}"]
    reasons = []
    if target.instance_family not in service.accepted_families:
        reasons.append(
            f"compiled for instance family {target.instance_family} but {service.name}'s pool is "
            f"{service.instance_family}"
        )
    if target.neuron_cores != service.neuron_cores:
        reasons.append(
            f"compiled for {target.neuron_cores} NeuronCores but {service.name} pods get {service.neuron_cores}"
        )
    if target.neuron_sdk != service.neuron_sdk:
        reasons.append(
            f"compiled with Neuron SDK {target.neuron_sdk} but {service.name}'s serving image has {service.neuron_sdk}"
        )
    return reasons


def check_artifacts(s3: Any, *, bucket: str, folder: str, manifest: Manifest) -> list[str]:
    """Every artifact exists with the listed size and the checksum S3 stored at upload (no download)."""
    reasons = []
    for artifact in manifest.artifacts:
        key = f"{folder}{artifact.path}"
        try:
            head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as error:
            if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                reasons.append(f"artifact {artifact.path} is missing (s3://{bucket}/{key})")
                continue
            raise
        if head["ContentLength"] != artifact.size_bytes:
            reasons.append(
                f"artifact {artifact.path} is {head['ContentLength']} bytes, manifest says {artifact.size_bytes}"
            )
            continue
        stored = head.get("ChecksumSHA256")
        if stored is None:
            reasons.append(f"artifact {artifact.path} has no SHA-256 checksum in S3; upload it with one")
        elif stored != artifact.expected_s3_checksum:
            if "-" in stored and artifact.s3_checksum_sha256 is None:
                reasons.append(
                    f"artifact {artifact.path} was uploaded in parts (S3 checksum {stored}); "
                    "record that value as s3_checksum_sha256"
                )
            else:
                reasons.append(
                    f"artifact {artifact.path} checksum mismatch: S3 has {stored}, "
                    f"manifest expects {artifact.expected_s3_checksum}"
                )
    return reasons


def check_image(ecr: Any, manifest: Manifest, service: CatalogService, catalog: Catalog) -> list[str]:
    """The serving image is the service's, exists, and its scan shows nothing at or above the threshold."""
    image = manifest.image
    if image.repository != service.repository:
        return [f"image repository {image.repository!r} is not {service.name}'s repository {service.repository!r}"]
    image_id = {"imageTag": image.tag}
    try:
        ecr.describe_images(repositoryName=image.repository, imageIds=[image_id])
    except ClientError as error:
        if error.response["Error"]["Code"] in ("ImageNotFoundException", "RepositoryNotFoundException"):
            return [f"image {image.repository}:{image.tag} does not exist"]
        raise
    try:
        scan = ecr.describe_image_scan_findings(repositoryName=image.repository, imageId=image_id)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ScanNotFoundException":
            return [f"image {image.repository}:{image.tag} has not been scanned"]
        raise
    status = scan.get("imageScanStatus", {}).get("status")
    if status != "COMPLETE":
        return [f"image {image.repository}:{image.tag} scan is {status}; register again when it completes"]
    counts = scan.get("imageScanFindings", {}).get("findingSeverityCounts", {})
    blocking = {severity: counts[severity] for severity in catalog.blocking_severities() if counts.get(severity)}
    if blocking:
        found = ", ".join(f"{count} {severity}" for severity, count in blocking.items())
        return [f"image {image.repository}:{image.tag} has findings at or above {catalog.block_severity}: {found}"]
    return []


def check_local_artifacts(root: Path, manifest: Manifest) -> list[str]:
    """Before upload: every artifact file exists under `root` with the listed size and SHA-256."""
    reasons = []
    for artifact in manifest.artifacts:
        path = root / artifact.path
        if not path.is_file():
            reasons.append(f"artifact {artifact.path} is missing ({path})")
            continue
        size = path.stat().st_size
        if size != artifact.size_bytes:
            reasons.append(f"artifact {artifact.path} is {size} bytes, manifest says {artifact.size_bytes}")
            continue
        if artifact.sha256 is None:
            continue  # only the multipart S3 checksum is recorded; S3 verifies it at registration
        if _sha256_of(path) != artifact.sha256:
            reasons.append(f"artifact {artifact.path} sha256 does not match the manifest")
    return reasons


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
