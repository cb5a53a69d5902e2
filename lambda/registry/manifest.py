"""The model-version manifest: `s3://<bucket>/models/<service>/<version>/manifest.json`.

A model version is built for one target: a Neuron model is compiled ahead of time (instance family,
NeuronCores and tensor-parallel degree, batch size, sequence length, Neuron SDK); an NVIDIA model for
a GPU model or compute capability, a GPU count, a CUDA release and the minimum driver it needs; a CPU
model for arm64. The manifest records that target and every artifact with its size and checksum, so
that a version can be checked against the hardware it will run on before it gets any traffic.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from registry.bounded_json import deeper_than
from tessera_shared.constants import ENVIRONMENT_NAME_PATTERN, MODEL_VERSION_PATTERN, SERVICE_NAME_PATTERN

SCHEMA_VERSION = 1
# Bounds that keep every registry item far below DynamoDB's 400 KB (the reasons and target are stored).
MAX_MANIFEST_BYTES = 1 << 20
MAX_ARTIFACTS = 1000
MAX_METADATA_KEYS = 64
# Bounds checked before JSON is parsed: Python's parser recurses per level and converts any number.
MAX_DEPTH = 32
MAX_NUMBER_CHARS = 32
# S3 multipart limits: parts of 5 MiB to 5 GiB, at most 10,000 of them.
MIN_PART_BYTES = 5 << 20
MAX_PART_BYTES = 5 << 30
MAX_PARTS = 10_000
FAMILIES_BY_ACCELERATOR = {"trainium": ("trn1", "trn1n", "trn2"), "inferentia": ("inf2",)}
VERSION_NUMBER_PATTERN = r"^\d+\.\d+(\.\d+)?$"
# Discriminator values of compile_target: pydantic puts them in error locations, messages leave them out.
TARGET_TAGS = ("cpu", "trainium", "inferentia", "gpu")


class _Strict(BaseModel):
    # strict: "2" is not 2 and true is not 1; a manifest says exactly what it means.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ImageRef(_Strict):
    repository: str = Field(min_length=2, max_length=256, description="ECR repository of the serving image.")
    tag: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$", description="Image tag.")


class NeuronTarget(_Strict):
    """What a Neuron model was compiled for; serving it on anything else fails or recompiles."""

    accelerator: Literal["trainium", "inferentia"]
    instance_family: Literal["trn1", "trn1n", "trn2", "inf2"]
    neuron_cores: int = Field(ge=1, le=128, description="NeuronCores the compiled model runs on.")
    tensor_parallel_degree: int = Field(ge=1, le=128)
    batch_size: int = Field(ge=1, le=4096)
    sequence_length: int = Field(ge=1, le=1_048_576)
    neuron_sdk: str = Field(pattern=r"^\d+\.\d+\.\d+$", description="Neuron SDK release used to compile.")

    @model_validator(mode="after")
    def _consistent(self) -> NeuronTarget:
        if self.instance_family not in FAMILIES_BY_ACCELERATOR[self.accelerator]:
            raise ValueError(f"instance_family {self.instance_family!r} is not a {self.accelerator} family")
        if self.tensor_parallel_degree > self.neuron_cores:
            raise ValueError(
                f"tensor_parallel_degree {self.tensor_parallel_degree} exceeds neuron_cores {self.neuron_cores}"
            )
        return self


class NvidiaTarget(_Strict):
    """What an NVIDIA GPU model was built for: a GPU model (as EC2 names it: a10g, l4, l40s, a100, h100) or a
    CUDA compute capability, the GPUs one pod uses, the CUDA release, and the oldest driver it runs on."""

    accelerator: Literal["gpu"]
    gpu_model: str | None = Field(None, pattern=r"^[a-z][a-z0-9]{1,15}$", description="e.g. `l4`, `a10g`, `h100`.")
    compute_capability: str | None = Field(
        None, pattern=r"^\d+\.\d$", description="CUDA compute capability built for, e.g. `8.9` (any GPU model of it)."
    )
    gpus: int = Field(ge=1, le=8, description="GPUs one pod uses (tensor-parallel degree).")
    cuda: str = Field(pattern=VERSION_NUMBER_PATTERN, description="CUDA release the model and image use, e.g. `12.8`.")
    min_driver_version: str = Field(
        pattern=VERSION_NUMBER_PATTERN, description="Oldest NVIDIA driver that runs it, e.g. `570.86.10`."
    )

    @model_validator(mode="after")
    def _names_a_gpu(self) -> NvidiaTarget:
        if self.gpu_model is None and self.compute_capability is None:
            raise ValueError("give gpu_model or compute_capability")
        return self


class CpuTarget(_Strict):
    """A model for a Graviton (arm64) CPU service."""

    accelerator: Literal["cpu"]
    architecture: Literal["arm64"]


class Artifact(_Strict):
    path: str = Field(min_length=1, max_length=512, description="Path relative to the version folder.")
    size_bytes: int = Field(ge=0)
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the whole file, hex.")
    s3_checksum_sha256: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9+/]{43}=(-\d{1,5})?$",
        description="The ChecksumSHA256 S3 recorded at upload (base64; `-N` suffix for multipart uploads).",
    )
    part_size_bytes: int | None = Field(
        None,
        ge=MIN_PART_BYTES,
        le=MAX_PART_BYTES,
        description="Part size of a multipart upload: with the file it reproduces the composite checksum.",
    )
    part_count: int | None = Field(None, ge=1, le=MAX_PARTS, description="Parts of a multipart upload.")
    parts_sha256: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] | None = Field(
        None,
        max_length=MAX_PARTS,
        description="SHA-256 (hex) of each part of a multipart upload, in order: S3's composite checksum is "
        "recomputed from them, and the loader checks each part as it downloads it.",
    )

    @field_validator("path")
    @classmethod
    def _relative(cls, path: str) -> str:
        parts = PurePosixPath(path).parts
        if path.startswith("/") or ".." in parts or path != str(PurePosixPath(path)):
            raise ValueError(f"{path!r} must be a plain relative path inside the version folder")
        if path == "manifest.json":
            raise ValueError("the manifest does not list itself")
        return path

    @model_validator(mode="after")
    def _has_checksum(self) -> Artifact:
        if self.sha256 is None and self.s3_checksum_sha256 is None:
            raise ValueError("give sha256 or s3_checksum_sha256")
        if (self.part_size_bytes is None) != (self.part_count is None):
            raise ValueError("give part_size_bytes and part_count together")
        if (
            self.part_count is not None
            and self.part_size_bytes is not None
            and self.part_count != -(-self.size_bytes // self.part_size_bytes)
        ):
            raise ValueError(
                f"part_count {self.part_count} does not fit size_bytes {self.size_bytes} in parts of "
                f"{self.part_size_bytes} bytes"
            )
        suffix = self.composite_parts
        if suffix is not None and suffix != self.part_count:
            raise ValueError(
                f"s3_checksum_sha256 is a composite of {suffix} parts; give part_size_bytes and part_count "
                f"(tessera models upload records them), part_count is {self.part_count}"
            )
        multipart = suffix is not None or self.part_count is not None
        whole = None if multipart or self.sha256 is None else _base64_of_hex(self.sha256)
        if whole is not None and self.s3_checksum_sha256 not in (None, whole):
            raise ValueError("sha256 does not match its s3_checksum_sha256 (the same SHA-256, in base64)")
        if multipart and self.s3_checksum_sha256 is not None:
            self._check_parts(suffix or self.part_count or 0)
        return self

    def _check_parts(self, count: int) -> None:
        """A composite says nothing by itself (anyone can copy it from a HEAD): the parts' checksums must
        reproduce it, so that the loader can check every part it downloads against the registered record."""
        if self.parts_sha256 is None or self.s3_checksum_sha256 is None:
            raise ValueError(
                "s3_checksum_sha256 is a composite: give parts_sha256, the SHA-256 of each part "
                "(tessera models upload records them)"
            )
        if len(self.parts_sha256) != count:
            raise ValueError(f"parts_sha256 lists {len(self.parts_sha256)} parts; the composite is of {count}")
        digests = [bytes.fromhex(part) for part in self.parts_sha256]
        recomputed = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode() + f"-{count}"
        # S3 writes the composite with its `-N` suffix; the part count is checked against part_count above.
        if recomputed.rsplit("-", 1)[0] != self.s3_checksum_sha256.rsplit("-", 1)[0]:
            raise ValueError(f"parts_sha256 gives the composite {recomputed}, not s3_checksum_sha256")

    @property
    def composite_parts(self) -> int | None:
        """The part count in a composite (multipart) checksum's `-N` suffix; None for a whole-object one."""
        if self.s3_checksum_sha256 is None or "-" not in self.s3_checksum_sha256:
            return None
        return int(self.s3_checksum_sha256.rsplit("-", 1)[1])

    @property
    def expected_s3_checksum(self) -> str:
        """The ChecksumSHA256 value S3 should report for this artifact."""
        if self.s3_checksum_sha256 is not None:
            return self.s3_checksum_sha256
        if self.sha256 is None:  # the model's validator refuses an artifact with neither
            raise ValueError("an artifact needs sha256 or s3_checksum_sha256")
        return _base64_of_hex(self.sha256)


def _base64_of_hex(hex_digest: str) -> str:
    return base64.b64encode(binascii.unhexlify(hex_digest)).decode()


class Provenance(_Strict):
    """Where a promoted version came from (`tessera models promote`): the environment whose registry promoted it,
    and the exact manifest there (its content's SHA-256 and S3 version id). The target registers it as any upload."""

    environment: str = Field(pattern=ENVIRONMENT_NAME_PATTERN)
    version: str = Field(pattern=MODEL_VERSION_PATTERN)
    manifest_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    manifest_version_id: str | None = Field(None, min_length=1, max_length=1024)
    image_digest: str | None = Field(None, pattern=r"^sha256:[0-9a-f]{64}$")
    state: str = Field(pattern=r"^[A-Z_]{1,32}$", description="The version's state in the source registry.")


class Manifest(_Strict):
    schema_version: Literal[1] = Field(description="Manifest format version.")

    @field_validator("schema_version", mode="before")
    @classmethod
    def _an_integer(cls, value: object) -> object:
        if isinstance(value, bool):  # Literal[1] would take true, which equals 1 in Python
            raise ValueError("Input should be 1")
        return value

    service: str = Field(pattern=SERVICE_NAME_PATTERN)
    model: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    version: str = Field(pattern=MODEL_VERSION_PATTERN)
    image: ImageRef
    compile_target: Annotated[NeuronTarget | NvidiaTarget | CpuTarget, Field(discriminator="accelerator")]
    artifacts: list[Artifact] = Field(min_length=1, max_length=MAX_ARTIFACTS)
    metadata: dict[str, Any] = Field(
        default_factory=dict, max_length=MAX_METADATA_KEYS, description="Free-form: training run, eval scores, ..."
    )
    promoted_from: Provenance | None = Field(None, description="Set by `tessera models promote`.")

    @model_validator(mode="after")
    def _unique_paths(self) -> Manifest:
        seen: set[str] = set()
        for artifact in self.artifacts:
            if artifact.path in seen:
                raise ValueError(f"artifact path {artifact.path!r} is listed twice")
            seen.add(artifact.path)
        return self


class ManifestError(Exception):
    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def digest(raw: bytes) -> str:
    """Identity of a manifest's content: a re-upload of the same bytes is the same registration."""
    return hashlib.sha256(raw).hexdigest()


class _BoundError(ValueError):
    """The manifest says something it may not (a repeated key, a number too long to be a number)."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON allows repeated keys and Python keeps the last; a manifest saying two things is refused."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _BoundError(f"manifest: key {key!r} appears twice in one object")
        seen[key] = value
    return seen


def _integer(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _BoundError(f"manifest: a number of {len(text)} characters; numbers have at most {MAX_NUMBER_CHARS}")
    return int(text)


def _real(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _BoundError(f"manifest: a number of {len(text)} characters; numbers have at most {MAX_NUMBER_CHARS}")
    value = float(text)
    if not math.isfinite(value):
        raise _BoundError(f"manifest: {text} is a number that is not finite")
    return value


def _constant(name: str) -> float:
    raise _BoundError(f"manifest: {name} is not JSON (numbers must be finite)")


def parse_manifest(raw: bytes) -> Manifest:
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError([f"manifest is {len(raw)} bytes; the limit is {MAX_MANIFEST_BYTES}"])
    if deeper_than(raw, MAX_DEPTH):
        raise ManifestError([f"manifest is nested deeper than {MAX_DEPTH} levels"])
    try:
        data = json.loads(
            raw,
            object_pairs_hook=_no_duplicate_keys,
            parse_int=_integer,
            parse_float=_real,
            parse_constant=_constant,
        )
    except _BoundError as error:
        raise ManifestError([str(error)]) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ManifestError([f"manifest is not valid JSON: {error}"]) from None
    try:
        return Manifest.model_validate(data)
    except ValidationError as error:
        raise ManifestError([_describe(detail) for detail in error.errors(include_url=False)]) from None


def _describe(detail: Mapping[str, Any]) -> str:
    path = ".".join(str(part) for part in detail["loc"] if not isinstance(part, str) or part not in TARGET_TAGS)
    message = detail["msg"]
    if detail["type"] == "extra_forbidden":
        message = "unknown field"
    return f"manifest {path}: {message}" if path else f"manifest: {message}"


def version_tuple(version: str) -> tuple[int, ...]:
    """`580.159.03` -> (580, 159, 3): driver and CUDA versions compare as numbers, part by part."""
    return tuple(int(part) for part in version.split("."))


def manifest_json_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://tessera.dev/schemas/model-manifest.json",
        **Manifest.model_json_schema(),
    }
