"""The checks a model version must pass to be registered. Each returns the reasons it failed
(an empty list means it passed), so that a rejection lists every problem at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from registry.catalog import Catalog, CatalogService, CatalogTarget
from registry.checksums import file_checksums
from registry.image_platforms import UrlReader, image_architectures, read_https
from registry.manifest import Artifact, CpuTarget, Manifest, NeuronTarget, NvidiaTarget, version_tuple

# `aws s3 cp` switches to multipart at 8 MiB (its multipart_threshold default).
AWS_CLI_MULTIPART_THRESHOLD = 8 << 20
# No item may carry more reasons than this; the rest is counted.
MAX_REASONS = 20
MAX_REASON_CHARS = 400
HEAD_CONCURRENCY = 32
MAX_S3_KEY_BYTES = 1024


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
    """The compile target must fit one of the service's allowed targets (its pool and the serving image
    config declares for it); the reasons are those of the targets of the same accelerator."""
    return fitting_target(manifest, service)[1]


def fitting_target(manifest: Manifest, service: CatalogService) -> tuple[CatalogTarget | None, list[str]]:
    """The first allowed target the version fits (the current one first), or None and why none fits."""
    compiled = manifest.compile_target
    candidates = [target for target in service.targets if target.accelerator == compiled.accelerator]
    if not candidates:
        others = ", ".join(dict.fromkeys(target.accelerator for target in service.alternatives))
        may_move = f" and may move to {others}" if others else ""
        return None, [f"compiled for {compiled.accelerator} but {service.name} runs on {service.accelerator}{may_move}"]
    reasons: list[str] = []
    for target in candidates:
        problems = _target_problems(manifest, service.name, target)
        if not problems:
            return target, []
        suffix = f" (target {target.label})" if len(candidates) > 1 else ""
        reasons += [problem + suffix for problem in problems]
    return None, reasons


def _target_problems(manifest: Manifest, name: str, target: CatalogTarget) -> list[str]:
    compiled = manifest.compile_target
    if isinstance(compiled, CpuTarget):
        if manifest.image.tag != target.image_tag:
            return [f"image tag {manifest.image.tag} is not {name}'s serving image {target.image_tag}"]
        return []
    if isinstance(compiled, NvidiaTarget):
        return _gpu_problems(manifest, compiled, name, target)
    return _neuron_problems(manifest, compiled, name, target)


def _neuron_problems(manifest: Manifest, compiled: NeuronTarget, name: str, target: CatalogTarget) -> list[str]:
    reasons = []
    if compiled.instance_family not in target.accepted_families:
        reasons.append(
            f"compiled for instance family {compiled.instance_family} but {name}'s pool is {target.instance_family}"
        )
    if compiled.neuron_cores != target.neuron_cores:
        reasons.append(f"compiled for {compiled.neuron_cores} NeuronCores but {name} pods get {target.neuron_cores}")
    if manifest.image.tag != target.image_tag:
        # The SDK is known for the image the config declares; the version runs the image its manifest names.
        reasons.append(
            f"image tag {manifest.image.tag} is not {name}'s serving image {target.image_tag} (Neuron SDK "
            f"{target.neuron_sdk}); its Neuron SDK is unknown: declare the image and its neuron_sdk in config first"
        )
    elif compiled.neuron_sdk != target.neuron_sdk:
        reasons.append(
            f"compiled with Neuron SDK {compiled.neuron_sdk} but {name}'s serving image has {target.neuron_sdk}"
        )
    return reasons


def _gpu_problems(manifest: Manifest, compiled: NvidiaTarget, name: str, target: CatalogTarget) -> list[str]:
    """Same GPU model (or a GPU of the compiled compute capability's major and at least its minor), the GPUs a
    pod gets, a driver on the pool's AMI at least the minimum, and the serving image config declares."""
    reasons = []
    if compiled.gpu_model is not None and compiled.gpu_model != target.gpu_model:
        reasons.append(f"compiled for GPU {compiled.gpu_model} but {name}'s pool {target.pool} has {target.gpu_model}")
    if compiled.compute_capability is not None and target.compute_capability is not None:
        built, have = version_tuple(compiled.compute_capability), version_tuple(target.compute_capability)
        if built[0] != have[0] or have < built:
            reasons.append(
                f"compiled for compute capability {compiled.compute_capability} but {name}'s pool {target.pool} "
                f"has {target.gpu_model} ({target.compute_capability})"
            )
    if compiled.gpus != target.gpus:
        reasons.append(f"compiled for {compiled.gpus} GPUs but {name} pods get {target.gpus}")
    if target.gpu_driver is None or version_tuple(compiled.min_driver_version) > version_tuple(target.gpu_driver):
        reasons.append(
            f"needs NVIDIA driver {compiled.min_driver_version} or newer but {name}'s pool {target.pool} runs "
            f"{target.gpu_driver or 'an unknown driver'} (the pinned AMI's)"
        )
    if manifest.image.tag != target.image_tag:
        reasons.append(f"image tag {manifest.image.tag} is not {name}'s serving image {target.image_tag} for GPU")
    return reasons


def check_artifacts(s3: Any, *, bucket: str, folder: str, manifest: Manifest) -> list[str]:
    """Every artifact exists with the listed size and the checksum S3 stored at upload (no download)."""
    return inspect_artifacts(s3, bucket=bucket, folder=folder, manifest=manifest)[0]


def inspect_artifacts(
    s3: Any, *, bucket: str, folder: str, manifest: Manifest
) -> tuple[list[str], dict[str, str | None]]:
    """check_artifacts' reasons, and the S3 version id of each artifact (None in an unversioned bucket).
    HEADs go out in parallel: a thousand one after another would take most of the function's minute."""
    with ThreadPoolExecutor(max_workers=HEAD_CONCURRENCY) as pool:
        found = list(pool.map(lambda artifact: _artifact_problems(s3, bucket, folder, artifact), manifest.artifacts))
    reasons = [reason for problems, _ in found for reason in problems]
    return reasons, {artifact.path: version for artifact, (_, version) in zip(manifest.artifacts, found, strict=True)}


def _artifact_problems(s3: Any, bucket: str, folder: str, artifact: Artifact) -> tuple[list[str], str | None]:
    key = f"{folder}{artifact.path}"
    if len(key.encode()) > MAX_S3_KEY_BYTES:
        return [
            f"artifact {artifact.path[:80]}...: its S3 key is {len(key.encode())} bytes in UTF-8; S3 keys are at most "
            f"{MAX_S3_KEY_BYTES} bytes"
        ], None
    try:
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code in ("404", "NoSuchKey", "NotFound"):
            return [f"artifact {artifact.path} is missing (s3://{bucket}/{key})"], None
        if code in ("400", "KeyTooLongError", "InvalidArgument"):
            return [f"artifact {artifact.path}: S3 refused its key ({code})"], None
        raise  # throttling or access: the function fails and its retry asks again
    return _head_problems(head, artifact), head.get("VersionId")


def _head_problems(head: dict[str, Any], artifact: Artifact) -> list[str]:
    if head["ContentLength"] != artifact.size_bytes:
        return [f"artifact {artifact.path} is {head['ContentLength']} bytes, manifest says {artifact.size_bytes}"]
    stored = head.get("ChecksumSHA256")
    if stored is None:
        return [f"artifact {artifact.path} has no SHA-256 checksum in S3; upload it with one"]
    if stored == artifact.expected_s3_checksum:
        return []
    if "-" in stored and artifact.part_count is None:
        return [
            f"artifact {artifact.path} was uploaded in {stored.rsplit('-', 1)[1]} parts (S3 checksum "
            f"{stored}), which S3 cannot compare with the file's sha256: upload with `tessera models "
            "upload`, which records s3_checksum_sha256 with part_size_bytes and part_count"
        ]
    return [
        f"artifact {artifact.path} checksum mismatch: S3 has {stored}, manifest expects {artifact.expected_s3_checksum}"
    ]


def check_image(
    ecr: Any,
    manifest: Manifest,
    service: CatalogService,
    catalog: Catalog,
    *,
    target: CatalogTarget | None = None,
    read_url: UrlReader = read_https,
) -> tuple[list[str], str | None]:
    """The serving image is the service's, exists, is built for the architecture of the target's pool (when
    the version fits one), and its scan shows nothing at or above the threshold.
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
    reasons = []
    if target is not None:
        reasons += _architecture_reasons(ecr, image.repository, image.tag, image_digest, target, read_url)
    return reasons + _scan_reasons(ecr, image.repository, image.tag, catalog), image_digest


def _architecture_reasons(
    ecr: Any, repository: str, tag: str, image_digest: str, target: CatalogTarget, read_url: UrlReader
) -> list[str]:
    name = f"{repository}:{tag}"
    try:
        found = image_architectures(ecr, repository, image_digest, read_url=read_url)
    except ValueError as error:
        return [f"image {name}: its architecture cannot be read ({error})"]
    if target.architecture in found:
        return []
    built = ", ".join(sorted(found)) or "no platform"
    return [f"image {name} is built for {built}; pool {target.pool} runs {target.architecture}"]


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
