"""Registers one model version: read its manifest, run every check, record REGISTERED or REJECTED.

The lifecycle (drawn in docs/model-manifest.md):

- no manifest in S3: an answer (NOT_FOUND), never a stored state;
- REJECTED: registering again re-checks it, from the same manifest (say, once its image scan
  completed) or from a corrected one; every attempt stays in the history;
- REGISTERED, and a version that ever ran (canary or stable): immutable; the same manifest again
  answers with the stored result, a different one is refused as a conflict and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from registry.catalog import Catalog
from registry.checks import cap_reasons, check_identity, check_image, fitting_target, inspect_artifacts
from registry.image_platforms import UrlReader, read_https
from registry.manifest import MAX_MANIFEST_BYTES, Manifest, ManifestError, digest, parse_manifest
from registry.registered_record import RecordConflictError, build_record, write_record
from registry.store import ConcurrentWriteError, RegistryStore, VersionRecord
from tessera_shared.constants import (
    EVENT_CONFLICT,
    EVENT_REGISTERED,
    EVENT_REJECTED,
    MANIFEST_NAME,
    REGISTERED,
    REJECTED,
    model_prefix,
)

NOT_FOUND = "NOT_FOUND"


@dataclass(frozen=True)
class Outcome:
    service: str
    version: str
    outcome: str  # REGISTERED | REJECTED | NOT_FOUND (nothing stored)
    state: str | None  # the version's state in the registry afterwards (None: not in the registry)
    reasons: list[str] = field(default_factory=list)
    changed: bool = False
    announced: bool = False
    image_digest: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "version": self.version,
            "outcome": self.outcome,
            "state": self.state,
            "reasons": list(self.reasons),
            "changed": self.changed,
            "image_digest": self.image_digest,
        }


@dataclass(frozen=True)
class Decision:
    state: str
    reasons: list[str]
    manifest: Manifest | None
    image_digest: str | None = None
    pool: str | None = None  # the allowed target it fits
    artifact_versions: dict[str, str | None] = field(default_factory=dict)  # path -> S3 version id


class Registrar:
    def __init__(
        self,
        *,
        s3: Any,
        ecr: Any,
        store: RegistryStore,
        catalog: Catalog,
        bucket: str,
        read_url: UrlReader = read_https,
    ) -> None:
        self._read_url = read_url
        self._s3 = s3
        self._ecr = ecr
        self._store = store
        self._catalog = catalog
        self._bucket = bucket

    @staticmethod
    def folder(service: str, version: str) -> str:
        return f"{model_prefix(service)}{version}/"

    def manifest_url(self, service: str, version: str) -> str:
        return f"s3://{self._bucket}/{self.folder(service, version)}{MANIFEST_NAME}"

    def knows(self, service: str) -> bool:
        return service in self._catalog.services

    def unknown_service_reason(self, service: str) -> str:
        known = ", ".join(sorted(self._catalog.services)) or "none"
        return f"service {service!r} is not in this environment (services: {known})"

    def register(self, service: str, version: str) -> Outcome:
        if not self.knows(service):
            return Outcome(service, version, NOT_FOUND, None, [self.unknown_service_reason(service)])
        found = self._read_manifest(service, version)
        existing = self._store.get_version(service, version)
        if found is None:
            reason = f"manifest not found at {self.manifest_url(service, version)}"
            return Outcome(service, version, NOT_FOUND, existing.state if existing else None, [reason])
        content = digest(found.raw) if isinstance(found, _ManifestObject) else found.identity
        if existing is not None:
            settled = self._settled(existing, content)
            if settled is not None:
                return settled
        if isinstance(found, _Oversized):
            decision = Decision(REJECTED, [found.reason], None)
        else:
            decision = self._decide(service, version, found)
        if decision.state == REGISTERED and decision.manifest is not None and isinstance(found, _ManifestObject):
            try:
                self._write_registered_record(decision.manifest, decision, found, content)
            except RecordConflictError:
                # Another registration of this version wrote its record first: answer with what it decided
                # (if the registry does not hold it yet, the function fails and its retry answers).
                winner = self._store.get_version(service, version)
                if winner is None:
                    raise
                return self._settled(winner, content) or self._stored(winner)
        return self._record(service, version, content, decision, existing)

    def _write_registered_record(
        self, manifest: Manifest, decision: Decision, found: _ManifestObject, content: str
    ) -> None:
        """Before the registry says REGISTERED, the record every pod loads from exists."""
        record = build_record(
            manifest,
            folder=self.folder(manifest.service, manifest.version),
            manifest_digest=content,
            manifest_version_id=found.version_id,
            artifact_versions=decision.artifact_versions,
        )
        write_record(self._s3, bucket=self._bucket, record=record)

    def _settled(self, existing: VersionRecord, content: str) -> Outcome | None:
        """The answer for a version the registry already holds, or None if it must be checked again."""
        if existing.state == REJECTED and not existing.deployed:
            return None  # the same manifest re-checked, or a corrected one
        if existing.digest != content:
            reason = (
                f"version {existing.version} of {existing.service} is already {existing.state}"
                f"{' and has run' if existing.deployed else ''} with a different manifest; a registered version "
                "is never overwritten, publish a new version"
            )
            self._store.add_event_once(
                existing.service,
                existing.version,
                {
                    "kind": EVENT_CONFLICT,
                    "at": self._store.stamp(),
                    "state": existing.state,
                    "reasons": [reason],
                    "digest": content,
                },
                key=f"CONFLICT#{content}",
            )
            return Outcome(existing.service, existing.version, REJECTED, existing.state, [reason])
        return self._stored(existing)

    @staticmethod
    def _stored(record: VersionRecord) -> Outcome:
        return Outcome(
            record.service,
            record.version,
            _outcome_of(record.state),
            record.state,
            [] if record.state != REJECTED else list(record.reasons),
            announced=record.announced,
            image_digest=record.image_digest,
        )

    def _decide(self, service: str, version: str, found: _ManifestObject) -> Decision:
        try:
            manifest = parse_manifest(found.raw)
        except ManifestError as error:
            return Decision(REJECTED, cap_reasons(error.reasons), None)
        entry = self._catalog.services[service]
        reasons = check_identity(manifest, service=service, version=version)
        target, fit_reasons = fitting_target(manifest, entry)
        reasons += fit_reasons
        artifact_reasons, artifact_versions = inspect_artifacts(
            self._s3, bucket=self._bucket, folder=self.folder(service, version), manifest=manifest
        )
        reasons += artifact_reasons
        image_reasons, image_digest = check_image(
            self._ecr, manifest, entry, self._catalog, target=target, read_url=self._read_url
        )
        reasons += image_reasons
        return Decision(
            REJECTED if reasons else REGISTERED,
            cap_reasons(reasons),
            manifest,
            image_digest,
            pool=target.pool if target is not None and not reasons else None,
            artifact_versions=artifact_versions,
        )

    def _record(
        self, service: str, version: str, content: str, decision: Decision, existing: VersionRecord | None
    ) -> Outcome:
        same_manifest = existing is not None and existing.digest == content
        if (
            existing is not None
            and same_manifest
            and decision.state == REJECTED
            and existing.reasons == decision.reasons
        ):
            return self._stored(existing)  # nothing new to say
        stamp = self._store.stamp()
        manifest = decision.manifest
        attempts = 1 if existing is None else existing.attempts + (0 if same_manifest else 1)
        record = VersionRecord(
            service=service,
            version=version,
            state=decision.state,
            digest=content,
            reasons=decision.reasons,
            model=manifest.model if manifest else None,
            image=f"{manifest.image.repository}:{manifest.image.tag}" if manifest else None,
            image_digest=decision.image_digest,
            target=manifest.compile_target.model_dump() if manifest else {},
            pool=decision.pool,
            created_at=existing.created_at if existing else stamp,
            updated_at=stamp,
            attempts=attempts,
        )
        event = {
            "kind": EVENT_REGISTERED if decision.state == REGISTERED else EVENT_REJECTED,
            "at": stamp,
            "state": decision.state,
            "reasons": decision.reasons,
            "attempt": attempts,
            "digest": content,
            "image_digest": decision.image_digest,
        }
        if manifest is not None and manifest.promoted_from is not None:
            event["promoted_from"] = manifest.promoted_from.model_dump()
        try:
            if existing is None:
                self._store.create_version(record, event)
            else:
                self._store.replace_rejected(record, event, previous_digest=existing.digest)
        except ConcurrentWriteError:
            # Another registration of this version won the race: answer with what it decided.
            winner = self._store.get_version(service, version)
            if winner is None:
                raise
            return self._settled(winner, content) or self._stored(winner)
        return Outcome(
            service,
            version,
            _outcome_of(decision.state),
            decision.state,
            decision.reasons,
            changed=True,
            image_digest=decision.image_digest,
        )

    def _read_manifest(self, service: str, version: str) -> _ManifestObject | _Oversized | None:
        """The manifest's bytes; one larger than the limit is refused from its length, never read."""
        key = f"{self.folder(service, version)}{MANIFEST_NAME}"
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=key)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        length = response["ContentLength"]
        if length > MAX_MANIFEST_BYTES:
            response["Body"].close()
            reason = f"manifest is {length} bytes; the limit is {MAX_MANIFEST_BYTES}"
            return _Oversized(reason, identity=f"unread:{length}:{response.get('ETag', '').strip(chr(34))}")
        return _ManifestObject(response["Body"].read(MAX_MANIFEST_BYTES + 1), response.get("VersionId"))


@dataclass(frozen=True)
class _ManifestObject:
    raw: bytes
    version_id: str | None


@dataclass(frozen=True)
class _Oversized:
    reason: str
    identity: str  # stands for the content digest: the same object again is the same registration


def _outcome_of(state: str) -> str:
    return REJECTED if state == REJECTED else REGISTERED
