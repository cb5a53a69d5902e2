"""The registry table (key design in registry/table_keys.py): model versions and their events.

Writes that decide a version's state are conditional, so two registrations racing for the same
version cannot both win, and a registered version is never overwritten.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from registry.table_keys import VERSION_PREFIX, event_key, event_prefix, partition, version_key
from tessera_shared.constants import REJECTED

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


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
    image: str | None = None
    target: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    updated_at: str = ""

    def to_item(self) -> dict:
        return {"pk": partition(self.service), "sk": version_key(self.version), "kind": "version", **asdict(self)}

    @classmethod
    def from_item(cls, item: dict) -> VersionRecord:
        names = cls.__dataclass_fields__
        return cls(**{key: value for key, value in item.items() if key in names})


def query_partition(client: Any, table: str, service: str, prefix: str) -> list[dict]:
    """Every item of a service whose sort key starts with `prefix`, in key order (all pages)."""
    items: list[dict] = []
    for page in client.get_paginator("query").paginate(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues=to_dynamo({":pk": partition(service), ":prefix": prefix}),
        ConsistentRead=True,
    ):
        items.extend(from_dynamo(item) for item in page["Items"])
    return items


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def to_dynamo(item: dict) -> dict:
    """Plain Python values to DynamoDB attribute values (floats go through Decimal, as DynamoDB requires)."""
    return {key: _serializer.serialize(_decimals(value)) for key, value in item.items() if value is not None}


def from_dynamo(item: dict) -> dict:
    return {key: _plain(_deserializer.deserialize(value)) for key, value in item.items()}


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
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def get_version(self, service: str, version: str) -> VersionRecord | None:
        response = self._client.get_item(
            TableName=self._table,
            Key=to_dynamo({"pk": partition(service), "sk": version_key(version)}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return VersionRecord.from_item(from_dynamo(item)) if item else None

    def create_version(self, record: VersionRecord, event: dict) -> None:
        """Store a version seen for the first time, with its first event, or raise ConcurrentWriteError."""
        self._transact(
            {
                "Put": {
                    "TableName": self._table,
                    "Item": to_dynamo(record.to_item()),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            self._event_put(record, event),
        )

    def replace_rejected(self, record: VersionRecord, event: dict) -> None:
        """Re-decide a REJECTED version of the same manifest (e.g. once its image scan completed)."""
        self._transact(
            {
                "Put": {
                    "TableName": self._table,
                    "Item": to_dynamo(record.to_item()),
                    "ConditionExpression": "#state = :rejected AND digest = :digest",
                    "ExpressionAttributeNames": {"#state": "state"},
                    "ExpressionAttributeValues": to_dynamo({":rejected": REJECTED, ":digest": record.digest}),
                }
            },
            self._event_put(record, event),
        )

    def add_event_once(self, service: str, version: str, event: dict, *, key: str) -> bool:
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

    def list_versions(self, service: str) -> list[VersionRecord]:
        return [VersionRecord.from_item(item) for item in self._query(service, VERSION_PREFIX)]

    def history(self, service: str, version: str) -> list[dict]:
        return self._query(service, event_prefix(version))

    def _query(self, service: str, prefix: str) -> list[dict]:
        return query_partition(self._client, self._table, service, prefix)

    def _event_put(self, record: VersionRecord, event: dict) -> dict:
        item = {
            "pk": partition(record.service),
            "sk": event_key(record.version, f"{event['at']}#{event['kind']}"),
            "kind": "event",
            "version": record.version,
            **event,
        }
        return {"Put": {"TableName": self._table, "Item": to_dynamo(item)}}

    def _transact(self, *operations: dict) -> None:
        try:
            self._client.transact_write_items(TransactItems=list(operations))
        except ClientError as error:
            if error.response["Error"]["Code"] == "TransactionCanceledException":
                reasons = error.response.get("CancellationReasons", [])
                if any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons):
                    raise ConcurrentWriteError from error
            raise
