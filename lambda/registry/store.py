"""The registry table (key design in registry/table_keys.py): model versions and their events.

Writes that decide a version's state are conditional, so two registrations racing for the same
version cannot both win, a registered version is never overwritten, and a version that ever ran is
never re-registered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from botocore.exceptions import ClientError

from registry.table_keys import (
    IGNORED_PARTITION,
    LOCK_KEY,
    POINTER_KEY,
    VERSION_PREFIX,
    event_key,
    event_prefix,
    ignored_key,
    once_key,
    partition,
    version_key,
)
from tessera_shared.constants import (
    DEPLOYING_EVENTS,
    EVENT_PROMOTED,
    EVENT_ROLLED_BACK,
    IGNORED_RECORD_DAYS,
    LIFECYCLE_EVENTS,
    PROMOTED,
    REJECTED,
    ROLLED_BACK,
)

# A lifecycle event's detail is evidence, not a log: small enough that no item nears DynamoDB's 400 KB.
MAX_EVENT_DETAIL_BYTES = 8192
STATE_AFTER = {EVENT_PROMOTED: PROMOTED, EVENT_ROLLED_BACK: ROLLED_BACK}
# Storage fields that never leave the store (views and --json are built without them).
_STORAGE_FIELDS = ("pk", "sk", "expires_at")


@cache
def _types() -> tuple[Any, Any]:
    """boto3's DynamoDB (de)serializers, made on first use: importing boto3 costs about 200 ms of a cold
    start that a step which never touches DynamoDB need not pay."""
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

    return TypeSerializer(), TypeDeserializer()


class ConcurrentWriteError(Exception):
    """Another writer created or changed the version first."""


@dataclass
class VersionRecord:
    service: str
    version: str
    state: str
    digest: str
    reasons: list[str] = field(default_factory=list)
    model: str | None = None
    image: str | None = None  # repository:tag, as the manifest names it
    image_digest: str | None = None  # sha256:..., what the tag pointed to at registration
    target: dict[str, Any] = field(default_factory=dict)
    # The allowed target the version fits (its pool's name, `general` for cpu): the rollout places it there.
    pool: str | None = None
    created_at: str = ""
    updated_at: str = ""
    attempts: int = 1  # registrations decided with a different manifest (a REJECTED version may be fixed)
    deployed: bool = False  # reached a canary or stable: immutable from then on
    announced: bool = False  # EventBridge accepted the "registered" announcement

    def to_item(self) -> dict[str, Any]:
        return {"pk": partition(self.service), "sk": version_key(self.version), "kind": "version", **asdict(self)}

    def view(self) -> dict[str, Any]:
        """The documented --json shape of a version (no storage keys)."""
        return asdict(self)

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> VersionRecord:
        names = cls.__dataclass_fields__
        return cls(**{key: value for key, value in item.items() if key in names})


def query_partition(client: Any, table: str, service: str, prefix: str) -> list[dict[str, Any]]:
    """Every item of a service whose sort key starts with `prefix`, in key order (all pages)."""
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("query").paginate(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues=to_dynamo({":pk": partition(service), ":prefix": prefix}),
        ConsistentRead=True,
    ):
        items.extend(from_dynamo(item) for item in page["Items"])
    return items


def event_view(item: dict[str, Any]) -> dict[str, Any]:
    """An event or ignored-upload item without its storage keys."""
    return {key: value for key, value in item.items() if key not in _STORAGE_FIELDS}


def to_dynamo(item: dict[str, Any]) -> dict[str, Any]:
    """Plain Python values to DynamoDB attribute values (floats go through Decimal, as DynamoDB requires)."""
    serializer = _types()[0]
    return {key: serializer.serialize(_decimals(value)) for key, value in item.items() if value is not None}


def from_dynamo(item: dict[str, Any]) -> dict[str, Any]:
    deserializer = _types()[1]
    return {key: _plain(deserializer.deserialize(value)) for key, value in item.items()}


def _decimals(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {key: _decimals(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_decimals(item) for item in value]
    return value


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal: whole ones become int, others float."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


class RegistryStore:
    def __init__(self, client: Any, table_name: str, *, clock: Callable[[], datetime] | None = None) -> None:
        self._client = client
        self._table = table_name
        self._clock = clock or (lambda: datetime.now(UTC))

    def stamp(self) -> str:
        """The time every registry write records, from the store's one clock."""
        return self._clock().isoformat(timespec="milliseconds")

    def get_version(self, service: str, version: str) -> VersionRecord | None:
        response = self._client.get_item(
            TableName=self._table,
            Key=to_dynamo({"pk": partition(service), "sk": version_key(version)}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return VersionRecord.from_item(from_dynamo(item)) if item else None

    def create_version(self, record: VersionRecord, event: dict[str, Any]) -> None:
        """Store a version seen for the first time, with its first event, or raise ConcurrentWriteError."""
        self._transact(
            {
                "Put": {
                    "TableName": self._table,
                    "Item": to_dynamo(record.to_item()),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            self._event_put(record.service, record.version, event),
        )

    def replace_rejected(self, record: VersionRecord, event: dict[str, Any], *, previous_digest: str) -> None:
        """Re-decide a REJECTED version, from the same manifest (say, once its image scan completed) or a
        corrected one; only if it is still the REJECTED version that was read and it never ran."""
        self._transact(
            {
                "Put": {
                    "TableName": self._table,
                    "Item": to_dynamo(record.to_item()),
                    "ConditionExpression": "#state = :rejected AND digest = :previous AND "
                    "(attribute_not_exists(deployed) OR deployed = :false)",
                    "ExpressionAttributeNames": {"#state": "state"},
                    "ExpressionAttributeValues": to_dynamo(
                        {":rejected": REJECTED, ":previous": previous_digest, ":false": False}
                    ),
                }
            },
            self._event_put(record.service, record.version, event),
        )

    def mark_announced(self, service: str, version: str) -> None:
        """Set once EventBridge accepted the announcement; until then every retry announces again."""
        self._client.update_item(
            TableName=self._table,
            Key=to_dynamo({"pk": partition(service), "sk": version_key(version)}),
            UpdateExpression="SET announced = :true",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=to_dynamo({":true": True}),
        )

    def record_lifecycle_event(
        self, service: str, version: str, kind: str, detail: dict[str, Any], *, key: str
    ) -> bool:
        """Add a rollout event (deployed-canary, promoted, rolled-back, rollout-failed) to a version's history.

        Idempotent on `key` (say, `<execution id>#<kind>`): a retried step records nothing twice and
        gets False. `deployed-canary` and `promoted` mark the version as having run (never re-registered
        after); `promoted` and `rolled-back` also set its state. Raises LookupError for a version the
        registry does not hold and ValueError for an unknown kind or an oversized detail."""
        if kind not in LIFECYCLE_EVENTS:
            raise ValueError(f"event kind {kind!r} is not one of {', '.join(LIFECYCLE_EVENTS)}")
        if len(json.dumps(detail, default=str)) > MAX_EVENT_DETAIL_BYTES:
            raise ValueError(
                f"event detail is over {MAX_EVENT_DETAIL_BYTES} bytes; keep evidence in the rollout record"
            )
        stamp = self.stamp()
        sets = ["updated_at = :at"]
        values: dict[str, object] = {":at": stamp}
        if kind in DEPLOYING_EVENTS:
            sets.append("deployed = :true")
            values[":true"] = True
        if kind in STATE_AFTER:
            sets.append("#state = :state")
            values[":state"] = STATE_AFTER[kind]
        update: dict[str, Any] = {
            "TableName": self._table,
            "Key": to_dynamo({"pk": partition(service), "sk": version_key(version)}),
            "UpdateExpression": "SET " + ", ".join(sets),
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeValues": to_dynamo(values),
        }
        if kind in STATE_AFTER:
            update["ExpressionAttributeNames"] = {"#state": "state"}
        guard = {"pk": partition(service), "sk": once_key(version, key), "kind": "once", "at": stamp}
        event = {"kind": kind, "at": stamp, "key": key, **detail}
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": to_dynamo(guard),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {"Update": update},
                    self._event_put(service, version, event),
                ]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            codes = [reason.get("Code") for reason in error.response.get("CancellationReasons", [])]
            if codes and codes[0] == "ConditionalCheckFailed":
                return False  # recorded before under this key
            if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
                raise LookupError(f"{service} version {version} is not in the registry") from None
            raise
        return True

    def record_ignored(self, *, event_id: str, reason: str, key: str | None, source: str) -> None:
        """Keep an upload the register function could not place, for `tessera models ignored` (TTL-bound)."""
        stamp = self.stamp()
        expires = int((self._clock() + timedelta(days=IGNORED_RECORD_DAYS)).timestamp())
        item = {
            "pk": IGNORED_PARTITION,
            "sk": ignored_key(stamp, event_id),
            "kind": "ignored",
            "at": stamp,
            "reason": reason,
            "key": key,
            "source": source,
            "expires_at": expires,
        }
        self._client.put_item(TableName=self._table, Item=to_dynamo(item))

    def list_ignored(self) -> list[dict[str, Any]]:
        """Ignored uploads, oldest first; TTL deletes lazily, so expired ones are filtered here."""
        cutoff = int(self._clock().timestamp())
        items: list[dict[str, Any]] = []
        for page in self._client.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=to_dynamo({":pk": IGNORED_PARTITION}),
        ):
            items.extend(from_dynamo(item) for item in page["Items"])
        return [event_view(item) for item in items if item.get("expires_at", cutoff + 1) > cutoff]

    def add_event_once(self, service: str, version: str, event: dict[str, Any], *, key: str) -> bool:
        """Record an event under a deterministic key; False if it was recorded before."""
        item = {"pk": partition(service), "sk": event_key(version, key), "kind": "event", "version": version, **event}
        try:
            self._client.put_item(
                TableName=self._table, Item=to_dynamo(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def rollout_lock(self, service: str) -> dict[str, Any] | None:
        """The service's rollout lock (its holder's execution and version), or None when no rollout holds it."""
        item = self._client.get_item(
            TableName=self._table, Key=to_dynamo({"pk": partition(service), "sk": LOCK_KEY}), ConsistentRead=True
        ).get("Item")
        return from_dynamo(item) if item else None

    def pointer(self, service: str) -> dict[str, Any]:
        """The service's live versions as the rollout engine records them: `stable` and, mid-rollout, `canary`."""
        response = self._client.get_item(
            TableName=self._table,
            Key=to_dynamo({"pk": partition(service), "sk": POINTER_KEY}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return from_dynamo(item) if item else {}

    def list_versions(self, service: str) -> list[VersionRecord]:
        return [VersionRecord.from_item(item) for item in self._query(service, VERSION_PREFIX)]

    def history(self, service: str, version: str) -> list[dict[str, Any]]:
        return [event_view(item) for item in self._query(service, event_prefix(version))]

    def _query(self, service: str, prefix: str) -> list[dict[str, Any]]:
        return query_partition(self._client, self._table, service, prefix)

    def _event_put(self, service: str, version: str, event: dict[str, Any]) -> dict[str, Any]:
        item = {
            "pk": partition(service),
            "sk": event_key(version, f"{event['at']}#{event['kind']}"),
            "version": version,
            **event,
        }
        return {"Put": {"TableName": self._table, "Item": to_dynamo(item)}}

    def _transact(self, *operations: dict[str, Any]) -> None:
        try:
            self._client.transact_write_items(TransactItems=list(operations))
        except ClientError as error:
            if error.response["Error"]["Code"] == "TransactionCanceledException":
                reasons = error.response.get("CancellationReasons", [])
                if any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons):
                    raise ConcurrentWriteError from error
            raise
