"""Rollout state in the registry table: the per-service lock, the stable/canary pointer, version
states, and the rollout record with the audit trail of every decision (key design in registry/table_keys.py).

Every write is idempotent or conditional, so a step that runs twice leaves the same state.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from registry.store import from_dynamo, query_partition, to_dynamo
from registry.table_keys import LOCK_KEY, POINTER_KEY, ROLLOUT_PREFIX, partition, rollout_key, version_key
from rollout.errors import RolloutError, RolloutInProgressError
from tessera_shared.constants import PROMOTED, REGISTERED

LOCK_LIFETIME = timedelta(days=2)  # TTL frees the lock of a rollout that vanished without releasing it
RUNNABLE_STATES = (REGISTERED, PROMOTED)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Ledger:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    # -- lock -----------------------------------------------------------------------------------
    def acquire_lock(self, service: str, *, execution: str, version: str) -> None:
        """Take the service's lock, or re-take it for the same execution; refuse any other rollout."""
        expires = int((datetime.now(UTC) + LOCK_LIFETIME).timestamp())
        item = {
            "pk": partition(service),
            "sk": LOCK_KEY,
            "kind": "lock",
            "execution": execution,
            "version": version,
            "acquired_at": now(),
            "expires_at": expires,
        }
        try:
            self._client.put_item(
                TableName=self._table,
                Item=to_dynamo(item),
                ConditionExpression="attribute_not_exists(pk) OR execution = :me",
                ExpressionAttributeValues=to_dynamo({":me": execution}),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            holder = self.lock_holder(service) or {}
            raise RolloutInProgressError(
                f"{service} is already being rolled out: version {holder.get('version')} by execution "
                f"{holder.get('execution')} since {holder.get('acquired_at')}"
            ) from None

    def release_lock(self, service: str, *, execution: str) -> None:
        """Free the lock if this execution holds it; releasing twice (or someone else's lock) is a no-op."""
        try:
            self._client.delete_item(
                TableName=self._table,
                Key=to_dynamo({"pk": partition(service), "sk": LOCK_KEY}),
                ConditionExpression="execution = :me",
                ExpressionAttributeValues=to_dynamo({":me": execution}),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def lock_holder(self, service: str) -> dict | None:
        return self._get(service, LOCK_KEY)

    # -- versions and pointer -------------------------------------------------------------------
    def version(self, service: str, version: str) -> dict | None:
        return self._get(service, version_key(version))

    def set_version_state(self, service: str, version: str, state: str) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=to_dynamo({"pk": partition(service), "sk": version_key(version)}),
                UpdateExpression="SET #state = :state, updated_at = :at",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=to_dynamo({":state": state, ":at": now()}),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise RolloutError(f"{service} version {version} is not in the registry") from None
            raise

    def pointer(self, service: str) -> dict:
        return self._get(service, POINTER_KEY) or {}

    def set_pointer(self, service: str, *, stable: str, canary: str | None) -> None:
        item = {"pk": partition(service), "sk": POINTER_KEY, "kind": "pointer", "stable": stable, "updated_at": now()}
        if canary is not None:
            item["canary"] = canary
        self._client.put_item(TableName=self._table, Item=to_dynamo(item))

    # -- rollout records --------------------------------------------------------------------------
    def start_record(self, plan: dict) -> None:
        """The rollout's history entry; created once, kept on retries."""
        item = {
            "pk": partition(plan["service"]),
            "sk": rollout_key(plan["started_at"], plan["execution"]),
            "kind": "rollout",
            "execution": plan["execution"],
            "version": plan["version"],
            "previous": plan.get("stable_version"),
            "status": "RUNNING",
            "started_at": plan["started_at"],
            "steps": plan["steps"],
            "plan": plan,  # lets `tessera rollout abort` roll back a stopped execution
            "decisions": [],
        }
        try:
            self._client.put_item(
                TableName=self._table, Item=to_dynamo(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def record_decision(self, plan: dict, decision: dict) -> None:
        """Append one audit entry; an entry already recorded under the same id is not added again."""
        key = {"pk": partition(plan["service"]), "sk": rollout_key(plan["started_at"], plan["execution"])}
        entry = {"at": now(), **decision}
        try:
            self._client.update_item(
                TableName=self._table,
                Key=to_dynamo(key),
                UpdateExpression="SET decisions = list_append(decisions, :entry), decision_ids = list_append("
                "if_not_exists(decision_ids, :empty), :id)",
                ConditionExpression="attribute_exists(pk) AND NOT contains(decision_ids, :raw_id)",
                ExpressionAttributeValues=to_dynamo(
                    {":entry": [entry], ":id": [decision["id"]], ":raw_id": decision["id"], ":empty": []}
                ),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def finish_record(self, plan: dict, status: str, *, reason: str | None = None) -> None:
        key = {"pk": partition(plan["service"]), "sk": rollout_key(plan["started_at"], plan["execution"])}
        values = {":status": status, ":at": now(), ":reason": reason or ""}
        self._client.update_item(
            TableName=self._table,
            Key=to_dynamo(key),
            UpdateExpression="SET #status = :status, finished_at = :at, reason = :reason",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=to_dynamo(values),
        )

    def rollouts(self, service: str) -> list[dict]:
        return query_partition(self._client, self._table, service, ROLLOUT_PREFIX)

    def _get(self, service: str, sort_key: str) -> dict | None:
        response = self._client.get_item(
            TableName=self._table, Key=to_dynamo({"pk": partition(service), "sk": sort_key}), ConsistentRead=True
        )
        item = response.get("Item")
        return from_dynamo(item) if item else None
