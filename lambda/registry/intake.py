"""What the register Lambda is asked to do: an EventBridge "Object Created" event for a
`models/<service>/<version>/manifest.json` key in the model bucket, or a direct
`{"service": ..., "version": ...}` call. Anything else is ignored with the reason why (and, for an
object in the model bucket, the key, so that the operator can find it with `tessera models ignored`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from tessera_shared.constants import MANIFEST_NAME, MODEL_ROOT, MODEL_VERSION_PATTERN, SERVICE_NAME_PATTERN

MANIFEST_KEY = re.compile(
    rf"^{re.escape(MODEL_ROOT)}(?P<service>{SERVICE_NAME_PATTERN.strip('^$')})/"
    rf"(?P<version>{MODEL_VERSION_PATTERN.strip('^$')})/{re.escape(MANIFEST_NAME)}$"
)
SERVICE = re.compile(SERVICE_NAME_PATTERN)
VERSION = re.compile(MODEL_VERSION_PATTERN)


@dataclass(frozen=True)
class RegistrationRequest:
    service: str
    version: str
    source: str  # "s3-event" or "direct"
    key: str | None = None  # the manifest's object key, for an S3 event


@dataclass(frozen=True)
class Ignored:
    reason: str
    key: str | None = None  # the object key, for an upload to the model bucket


def parse_request(event: object, *, bucket: str) -> RegistrationRequest | Ignored:
    if not isinstance(event, dict):
        return Ignored(f"event is a {type(event).__name__}, not an object")
    if "detail-type" in event or "detail" in event:
        return _from_s3_event(event, bucket)
    if "service" in event or "version" in event:
        return _from_direct_call(event)
    return Ignored("neither an S3 Object Created event nor a {service, version} request")


def _from_s3_event(event: dict[str, Any], bucket: str) -> RegistrationRequest | Ignored:
    if event.get("source") != "aws.s3" or event.get("detail-type") != "Object Created":
        return Ignored(f"event {event.get('source')!r}/{event.get('detail-type')!r} is not an S3 Object Created event")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        return Ignored("S3 event has no detail object")
    event_bucket = (detail.get("bucket") or {}).get("name")
    key = (detail.get("object") or {}).get("key")
    if not isinstance(event_bucket, str) or not isinstance(key, str):
        return Ignored("S3 event lacks detail.bucket.name or detail.object.key")
    if event_bucket != bucket:
        return Ignored(f"object is in bucket {event_bucket!r}, not the model bucket {bucket!r}")
    key = unquote_plus(key)
    match = MANIFEST_KEY.match(key)
    if match is None:
        return Ignored(
            f"key {key!r} is not {MODEL_ROOT}<service>/<version>/{MANIFEST_NAME} with a service matching "
            f"{SERVICE.pattern} and a version matching {VERSION.pattern}",
            key=key,
        )
    return RegistrationRequest(match["service"], match["version"], "s3-event", key)


def _from_direct_call(event: dict[str, Any]) -> RegistrationRequest | Ignored:
    service, version = event.get("service"), event.get("version")
    if not isinstance(service, str) or not SERVICE.match(service):
        return Ignored(f"service {service!r} must match {SERVICE.pattern}")
    if not isinstance(version, str) or not VERSION.match(version):
        return Ignored(f"version {version!r} must match {VERSION.pattern}")
    return RegistrationRequest(service, version, "direct")
