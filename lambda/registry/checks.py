"""The checks a model version must pass to be registered. Each returns the reasons it failed
(an empty list means it passed), so that a rejection lists every problem at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from registry.catalog import Catalog, CatalogService
from registry.checksums import file_checksums
from registry.manifest import CpuTarget, Manifest

# `aws s3 cp` switches to multipart at 8 MiB (its multipart_threshold default).
AWS_CLI_MULTIPART_THRESHOLD = 8 << 20
# No item may carry more reasons than this; the rest is counted.
MAX_REASONS = 20
MAX_REASON_CHARS = 400


def cap_reasons(reasons: list[str]) -> list[str]:
    """The first MAX_REASONS reasons (each at most MAX_REASON_CHARS) plus a count of the others."""
    kept = [reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 1] + "…" for reason in reasons]
    if len(kept) <= MAX_REASONS:
        return kept
    return [*kept[:MAX_REASONS], f"... and {len(kept) - MAX_REASONS} more problems"]


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
    if manifest.image.tag != service.image_tag:
        # The SDK is known for the image the config declares; the version runs the image its manifest names.
        reasons.append(
            f"image tag {manifest.image.tag} is not {service.name}'s serving image {service.image_tag} (Neuron SDK "
            f"{service.neuron_sdk}); its Neuron SDK is unknown: declare the image and its neuron_sdk in config first"
        )
    elif target.neuron_sdk != service.neuron_sdk:
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
            if "-" in stored and artifact.part_count is None:
                reasons.append(
                    f"artifact {artifact.path} was uploaded in {stored.rsplit('-', 1)[1]} parts (S3 checksum "
                    f"{stored}), which S3 cannot compare with the file's sha256: upload with `tessera models "
                    "upload`, which records s3_checksum_sha256 with part_size_bytes and part_count"
                )
            else:
                reasons.append(
                    f"artifact {artifact.path} checksum mismatch: S3 has {stored}, "
                    f"manifest expects {artifact.expected_s3_checksum}"
                )
    return reasons


def check_image(
    ecr: Any, manifest: Manifest, service: CatalogService, catalog: Catalog
) -> tuple[list[str], str | None]:
    """The serving image is the service's, exists, and its scan shows nothing at or above the threshold.
    Also returns the digest the tag points to now (None if the image does not exist)."""
    image = manifest.image
    if image.repository != service.repository:
        reason = f"image repository {image.repository!r} is not {service.name}'s repository {service.repository!r}"
        return [reason], None
    image_id = {"imageTag": image.tag}
    try:
        details = ecr.describe_images(repositoryName=image.repository, imageIds=[image_id])["imageDetails"]
    except ClientError as error:
        if error.response["Error"]["Code"] in ("ImageNotFoundException", "RepositoryNotFoundException"):
            return [f"image {image.repository}:{image.tag} does not exist"], None
        raise
    image_digest = details[0]["imageDigest"]
    return _scan_reasons(ecr, image.repository, image.tag, catalog), image_digest


def _scan_reasons(ecr: Any, repository: str, tag: str, catalog: Catalog) -> list[str]:
    name = f"{repository}:{tag}"
    try:
        scan = ecr.describe_image_scan_findings(repositoryName=repository, imageId={"imageTag": tag})
    except ClientError as error:
        if error.response["Error"]["Code"] == "ScanNotFoundException":
            return [f"image {name} has not been scanned"]
        raise
    status = scan.get("imageScanStatus", {}).get("status")
    if status != "COMPLETE":
        return [f"image {name} scan is {status}; register again when it completes"]
    counts = scan.get("imageScanFindings", {}).get("findingSeverityCounts", {})
    blocking = {severity: counts[severity] for severity in catalog.blocking_severities() if counts.get(severity)}
    if blocking:
        found = ", ".join(f"{count} {severity}" for severity, count in blocking.items())
        return [f"image {name} has findings at or above {catalog.block_severity}: {found}"]
    return []


def check_local_artifacts(root: Path, manifest: Manifest) -> list[str]:
    """Before upload: every artifact file exists under `root` with the listed size and checksums; a
    composite S3 checksum is recomputed from the file with the recorded part size."""
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
        local = file_checksums(path, part_size=artifact.part_size_bytes)
        if artifact.sha256 is not None and local.sha256 != artifact.sha256:
            reasons.append(f"artifact {artifact.path} sha256 does not match the manifest")
        if artifact.composite_parts is not None and local.s3_checksum_sha256 != artifact.s3_checksum_sha256:
            reasons.append(
                f"artifact {artifact.path} s3_checksum_sha256 is not the composite of its "
                f"{artifact.part_size_bytes}-byte parts ({local.s3_checksum_sha256})"
            )
    return reasons


def multipart_warnings(manifest: Manifest) -> list[str]:
    """Artifacts that a plain `aws s3 cp` would upload in parts, which registration could then not verify."""
    return [
        f"artifact {artifact.path} is {artifact.size_bytes} bytes: `aws s3 cp` uploads it in parts and S3 then "
        "records a composite checksum that sha256 cannot match; upload with `tessera models upload`"
        for artifact in manifest.artifacts
        if artifact.size_bytes >= AWS_CLI_MULTIPART_THRESHOLD and artifact.part_count is None
    ]
