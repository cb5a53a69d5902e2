"""Registers one model version: read its manifest, run every check, record REGISTERED or REJECTED.

Idempotent: the same manifest registered again returns the stored result and adds no history;
a different manifest for an existing version is rejected as a conflict and changes nothing;
a REJECTED version of the same manifest is checked again (say, once its image scan completed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from registry.catalog import Catalog
from registry.checks import check_artifacts, check_identity, check_image, check_target_fit
from registry.manifest import Manifest, ManifestError, digest, parse_manifest
from registry.store import ConcurrentWriteError, RegistryStore, VersionRecord, now
from tessera_shared.constants import REGISTERED, REJECTED

MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class Outcome:
    service: str
    version: str
    outcome: str  # REGISTERED | REJECTED
    state: str  # the version's state in the registry afterwards
    reasons: list[str] = field(default_factory=list)
    changed: bool = False

    def as_dict(self) -> dict:
        return {
            "service": self.service,
            "version": self.version,
            "outcome": self.outcome,
            "state": self.state,
            "reasons": list(self.reasons),
            "changed": self.changed,
        }


@dataclass(frozen=True)
class Decision:
    state: str
    reasons: list[str]
    manifest: Manifest | None


class Registrar:
    def __init__(self, *, s3: Any, ecr: Any, store: RegistryStore, catalog: Catalog, bucket: str) -> None:
        self._s3 = s3
        self._ecr = ecr
        self._store = store
        self._catalog = catalog
        self._bucket = bucket

    def folder(self, service: str, version: str) -> str:
        entry = self._catalog.services.get(service)
        prefix = entry.model_prefix if entry else f"models/{service}/"
        return f"{prefix}{version}/"

    def register(self, service: str, version: str) -> Outcome:
        raw = self._read_manifest(service, version)
        content = digest(raw) if raw is not None else "missing"
        existing = self._store.get_version(service, version)
        if existing is not None:
            settled = self._settled(existing, content)
            if settled is not None:
                return settled
        decision = self._decide(service, version, raw)
        return self._record(service, version, content, decision, existing)

    def _settled(self, existing: VersionRecord, content: str) -> Outcome | None:
        """The answer for a version the registry already holds, or None if it must be checked again."""
        if existing.digest != content:
            reason = (
                f"version {existing.version} of {existing.service} is already {existing.state} with a different "
                "manifest; a version is never overwritten, publish a new version"
            )
            self._store.add_event_once(
                existing.service,
                existing.version,
                {"kind": "conflict", "at": now(), "state": existing.state, "reasons": [reason], "digest": content},
                key=f"CONFLICT#{content}",
            )
            return Outcome(existing.service, existing.version, REJECTED, existing.state, [reason])
        if existing.state == REJECTED:
            return None
        return Outcome(existing.service, existing.version, _outcome_of(existing.state), existing.state, [])

    def _decide(self, service: str, version: str, raw: bytes | None) -> Decision:
        if raw is None:
            key = f"{self.folder(service, version)}{MANIFEST_NAME}"
            return Decision(REJECTED, [f"manifest not found at s3://{self._bucket}/{key}"], None)
        try:
            manifest = parse_manifest(raw)
        except ManifestError as error:
            return Decision(REJECTED, error.reasons, None)
        reasons = check_identity(manifest, service=service, version=version)
        entry = self._catalog.services.get(service)
        if entry is None:
            known = ", ".join(sorted(self._catalog.services)) or "none"
            reasons.append(f"service {service!r} is not in this environment (services: {known})")
            return Decision(REJECTED, reasons, manifest)
        reasons += check_target_fit(manifest, entry)
        reasons += check_artifacts(
            self._s3, bucket=self._bucket, folder=self.folder(service, version), manifest=manifest
        )
        reasons += check_image(self._ecr, manifest, entry, self._catalog)
        return Decision(REJECTED if reasons else REGISTERED, reasons, manifest)

    def _record(
        self, service: str, version: str, content: str, decision: Decision, existing: VersionRecord | None
    ) -> Outcome:
        if existing is not None and existing.reasons == decision.reasons and decision.state == REJECTED:
            return Outcome(service, version, REJECTED, REJECTED, decision.reasons)
        stamp = now()
        manifest = decision.manifest
        record = VersionRecord(
            service=service,
            version=version,
            state=decision.state,
            digest=content,
            reasons=decision.reasons,
            model=manifest.model if manifest else None,
            image=f"{manifest.image.repository}:{manifest.image.tag}" if manifest else None,
            target=manifest.compile_target.model_dump() if manifest else {},
            created_at=existing.created_at if existing else stamp,
            updated_at=stamp,
        )
        event = {"kind": decision.state.lower(), "at": stamp, "state": decision.state, "reasons": decision.reasons}
        try:
            if existing is None:
                self._store.create_version(record, event)
            else:
                self._store.replace_rejected(record, event)
        except ConcurrentWriteError:
            # Another registration of this version won the race: answer with what it decided.
            winner = self._store.get_version(service, version)
            settled = self._settled(winner, content) if winner else None
            return settled or Outcome(
                service, version, REJECTED, winner.state if winner else REJECTED, winner.reasons if winner else []
            )
        return Outcome(service, version, _outcome_of(decision.state), decision.state, decision.reasons, changed=True)

    def _read_manifest(self, service: str, version: str) -> bytes | None:
        key = f"{self.folder(service, version)}{MANIFEST_NAME}"
        try:
            return self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404", "NotFound"):
                return None
            raise


def _outcome_of(state: str) -> str:
    return REJECTED if state == REJECTED else REGISTERED
