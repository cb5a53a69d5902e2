"""Rollout state in the registry table: the stable/canary pointer, version states, the rollout record with the
audit trail of every decision (a step's weights, its judgements and its analysis intervals in items of their own),
and the notice that announces each execution's outcome once (key design in registry/table_keys.py); the
per-service lock is `ledger.locks` (rollout.locks), which also starts and finishes the record with the lock.

Every write is idempotent or conditional, so a step that runs twice leaves the same state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from registry.store import from_dynamo, query_partition, to_dynamo
from registry.table_keys import (
    JUDGEMENT_PREFIX,
    POINTER_KEY,
    ROLLOUT_PREFIX,
    execution_key,
    interval_key,
    interval_prefix,
    judgement_key,
    judgement_prefix,
    notice_key,
    partition,
    rollout_key,
    version_key,
    weights_key,
    weights_prefix,
)
from rollout.contract import Plan, Progress
from rollout.contract.records import AuditEntry, AuditKind, RolloutRecord
from rollout.errors import LockLostError, RolloutError
from rollout.locks import Locks, iso
from tessera_shared.constants import PROMOTED, REGISTERED, ROLLOUT_FUNCTION_TIMEOUT_SECONDS, RUNNING

RUNNABLE_STATES = (REGISTERED, PROMOTED)
NOTICE_RETENTION = timedelta(days=90)
_CONDITION_FAILED = "ConditionalCheckFailedException"


def _failed_condition(error: ClientError) -> bool:
    return bool(error.response["Error"]["Code"] == _CONDITION_FAILED)


class Ledger:
    def __init__(self, client: Any, table_name: str, *, clock: Callable[[], datetime] | None = None) -> None:
        self._client = client
        self._table = table_name
        self._clock = clock or (lambda: datetime.now(UTC))
        self.locks = Locks(client, table_name, self._clock)
        self._last_stamp: datetime | None = None
        self._stamping = threading.Lock()

    def _stamp(self) -> str:
        """Every time the ledger writes, from its one clock (the lock's lease reads the same), strictly increasing:
        the audit trail is ordered by these, and a clock that did not move between two writes (the same
        millisecond, or a test's frozen clock) must not reorder them."""
        with self._stamping:
            moment = self._clock()
            if self._last_stamp is not None and moment <= self._last_stamp:
                moment = self._last_stamp + timedelta(milliseconds=1)
            self._last_stamp = moment
        return iso(moment)

    # -- versions and pointer -------------------------------------------------------------------
    def version(self, service: str, version: str) -> dict[str, Any] | None:
        return self._get(service, version_key(version))

    def set_version_state(self, service: str, version: str, state: str) -> None:
        try:
            self._client.update_item(**self._version_state_update(service, version, state))
        except ClientError as error:
            if _failed_condition(error):
                raise RolloutError(f"{service} version {version} is not in the registry") from None
            raise

    def _version_state_update(self, service: str, version: str, state: str) -> dict[str, Any]:
        return {
            "TableName": self._table,
            "Key": to_dynamo({"pk": partition(service), "sk": version_key(version)}),
            "UpdateExpression": "SET #state = :state, updated_at = :at",
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeNames": {"#state": "state"},
            "ExpressionAttributeValues": to_dynamo({":state": state, ":at": self._stamp()}),
        }

    def pointer(self, service: str) -> dict[str, Any]:
        return self._get(service, POINTER_KEY) or {}

    def set_pointer(self, service: str, *, stable: str, canary: str | None) -> None:
        self._client.put_item(TableName=self._table, Item=to_dynamo(self._pointer_item(service, stable, canary)))

    def _pointer_item(self, service: str, stable: str, canary: str | None) -> dict[str, Any]:
        item = {
            "pk": partition(service),
            "sk": POINTER_KEY,
            "kind": "pointer",
            "stable": stable,
            "updated_at": self._stamp(),
        }
        if canary is not None:
            item["canary"] = canary
        return item

    def set_canary(self, service: str, version: str | None) -> None:
        """The version the canary track runs (None: none), for `tessera models list`."""
        key = to_dynamo({"pk": partition(service), "sk": POINTER_KEY})
        if version is None:
            self._client.update_item(TableName=self._table, Key=key, UpdateExpression="REMOVE canary")
            return
        self._client.update_item(
            TableName=self._table,
            Key=key,
            UpdateExpression="SET canary = :canary, kind = :kind, updated_at = :at",
            ExpressionAttributeValues=to_dynamo({":canary": version, ":kind": "pointer", ":at": self._stamp()}),
        )

    def commit_promotion(self, plan: Plan, *, epoch: int) -> bool:
        """In one transaction: the version PROMOTED, the stable pointer moved, the record PROMOTED and the
        lock released (held by this execution at `epoch`, unrevoked). True when this call committed it; False
        when it was committed before."""
        record_key = {"pk": partition(plan.service), "sk": rollout_key(plan.started_at, plan.execution)}
        pointer = self._pointer_item(plan.service, plan.version, None)
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {"Update": self._version_state_update(plan.service, plan.version, PROMOTED)},
                    {"Put": {"TableName": self._table, "Item": to_dynamo(pointer)}},
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": to_dynamo(record_key),
                            "UpdateExpression": "SET #status = :promoted, finished_at = :at",
                            "ConditionExpression": "#status = :running",
                            "ExpressionAttributeNames": {"#status": "status"},
                            "ExpressionAttributeValues": to_dynamo(
                                {":promoted": PROMOTED, ":running": RUNNING, ":at": self._stamp()}
                            ),
                        }
                    },
                    self.locks.release_transact_item(plan.service, execution=plan.execution, epoch=epoch),
                ]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            record = self._get(plan.service, record_key["sk"]) or {}
            if record.get("status") == PROMOTED:
                return False
            raise LockLostError(
                f"promotion of {plan.service} {plan.version} could not commit: record {record.get('status')}, "
                f"lock {self.locks.holder(plan.service)}"
            ) from None
        return True

    # -- rollout records --------------------------------------------------------------------------
    def record_decision(self, plan: Plan, entry: AuditEntry) -> None:
        """Record one audit entry. A step's weights and its judgements are items of their own, so that the record
        does not grow with the policy's steps and bake extensions; a retried step overwrites its item (the last
        write is the one whose outcome the rollout kept). Any other entry is appended to the record once: an entry
        already recorded under the same id is not added again."""
        own_key = _own_item_key(plan, entry)
        if own_key is None:
            self._append(partition(plan.service), rollout_key(plan.started_at, plan.execution), entry)
            return
        stamped = entry.stamped(self._stamp())
        item = {"pk": partition(plan.service), "sk": own_key, "execution": plan.execution, **stamped.to_json()}
        self._client.put_item(TableName=self._table, Item=to_dynamo(item))

    def append_to_record(self, service: str, sort_key: str, entry: AuditEntry) -> None:
        """Append one audit entry to a record known by its key (an operator's action on a rollout's lock)."""
        self._append(partition(service), sort_key, entry)

    def _append(self, pk: str, sk: str, entry: AuditEntry) -> None:
        stamped = entry.stamped(self._stamp())
        try:
            self._client.update_item(
                TableName=self._table,
                Key=to_dynamo({"pk": pk, "sk": sk}),
                UpdateExpression="SET decisions = list_append(decisions, :entry), decision_ids = list_append("
                "if_not_exists(decision_ids, :empty), :id)",
                ConditionExpression="attribute_exists(pk) AND NOT contains(decision_ids, :raw_id)",
                ExpressionAttributeValues=to_dynamo(
                    {":entry": [stamped.to_json()], ":id": [stamped.id], ":raw_id": stamped.id, ":empty": []}
                ),
            )
        except ClientError as error:
            if not _failed_condition(error):
                raise

    def record_interval(self, plan: Plan, *, step: int, index: int, figures: dict[str, Any]) -> None:
        """One analysis interval's figures, in an item of its own (the record would outgrow 400 KB). A retried
        judgement overwrites it: the last write is the judgement whose outcome the rollout kept."""
        item = {
            "pk": partition(plan.service),
            "sk": interval_key(plan.started_at, plan.execution, step, index),
            "kind": "interval",
            "execution": plan.execution,
            "step": step,
            "interval": index,
            "at": self._stamp(),
            **figures,
        }
        self._client.put_item(TableName=self._table, Item=to_dynamo(item))

    def intervals(
        self, service: str, started_at: str, execution: str, *, last: int | None = None
    ) -> list[dict[str, Any]]:
        """The rollout's analysis intervals in order; with `last`, only that many of the newest."""
        return self._query(service, interval_prefix(started_at, execution), last=last)

    def judgements(self, record: RolloutRecord, *, last: int | None = None) -> list[AuditEntry]:
        """The rollout's whole-bake judgements in order; with `last`, only that many of the newest. A record written
        before judgements had items of their own keeps them among its entries."""
        prefix = judgement_prefix(record.started_at, record.execution)
        items = [_entry(item) for item in self._query(record.plan.service, prefix, last=last)]
        if items:
            return items
        kept = record.entries(AuditKind.JUDGEMENT)
        return kept[-last:] if last else kept

    def every_judgement(self, service: str) -> list[AuditEntry]:
        """Every whole-bake judgement of the service's rollouts, those kept in records written before judgements had
        items of their own included."""
        items = query_partition(self._client, self._table, service, JUDGEMENT_PREFIX)
        kept = [entry for record in self.rollouts(service) for entry in record.entries(AuditKind.JUDGEMENT)]
        return [_entry(item) for item in items] + kept

    def audit_trail(self, record: RolloutRecord) -> list[AuditEntry]:
        """Every audit entry of the rollout in the order recorded: the record's own, its steps' weights and its
        judgements."""
        service = record.plan.service
        items = [
            *self._query(service, weights_prefix(record.started_at, record.execution)),
            *self._query(service, judgement_prefix(record.started_at, record.execution)),
        ]
        return sorted([*record.decisions, *map(_entry, items)], key=lambda entry: entry.at or "")

    def _query(self, service: str, prefix: str, *, last: int | None = None) -> list[dict[str, Any]]:
        """The items of `service` whose sort key starts with `prefix`, in key order; with `last`, only that many of
        the last (one Query, newest first)."""
        if last is None:
            return query_partition(self._client, self._table, service, prefix)
        items = self._client.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=to_dynamo({":pk": partition(service), ":prefix": prefix}),
            ConsistentRead=True,
            ScanIndexForward=False,
            Limit=last,
        )["Items"]
        return [from_dynamo(item) for item in reversed(items)]

    def save_progress(self, plan: Plan, progress: Progress) -> None:
        """Where the rollout is, for `tessera rollout status` (the state machine keeps its own copy)."""
        self._update_record(plan, "SET progress = :progress, progress_at = :at", {":progress": progress.to_json()})

    def set_approval_token(self, plan: Plan, token: str) -> None:
        """The token of the approval task now waiting; a retried task has a new one, which replaces it."""
        self._update_record(plan, "SET approval_token = :token, approval_requested_at = :at", {":token": token})

    def _update_record(self, plan: Plan, expression: str, values: dict[str, Any]) -> None:
        self._client.update_item(
            TableName=self._table,
            Key=to_dynamo({"pk": partition(plan.service), "sk": rollout_key(plan.started_at, plan.execution)}),
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=to_dynamo({":at": self._stamp(), **values}),
        )

    def finish_record(self, service: str, execution: str, status: str, *, reason: str = "", left: str = "") -> bool:
        """Move the record from RUNNING to its outcome; True when this call did (so it is done once)."""
        record = self.record_for(service, execution)
        if record is None:
            return False
        try:
            self._client.update_item(
                TableName=self._table,
                Key=to_dynamo({"pk": partition(service), "sk": rollout_key(record.started_at, record.execution)}),
                UpdateExpression="SET #status = :status, finished_at = :at, reason = :reason, left_to_undo = :left",
                ConditionExpression="#status = :running",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=to_dynamo(
                    {":status": status, ":at": self._stamp(), ":reason": reason, ":left": left, ":running": RUNNING}
                ),
            )
        except ClientError as error:
            if _failed_condition(error):
                return False
            raise
        return True

    def claim_notice(self, service: str, execution: str, status: str) -> str:
        """Claim the one announcement of this execution's outcome: "claimed" (publish it, then `notice_sent`),
        "sent" (announced already) or "busy" (another invocation is sending it now). A claim whose sender is
        past the function's timeout died before sending: it is claimed again."""
        moment = self._clock()
        item = {
            "pk": partition(service),
            "sk": notice_key(execution),
            "kind": "notice",
            "status": status,
            "state": "sending",
            "claimed_at": int(moment.timestamp()),
            "at": self._stamp(),
            "expires_at": int((moment + NOTICE_RETENTION).timestamp()),
        }
        try:
            self._client.put_item(
                TableName=self._table, Item=to_dynamo(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as error:
            if not _failed_condition(error):
                raise
        else:
            return "claimed"
        held = self._get(service, notice_key(execution)) or {}
        if held.get("state", "sent") == "sent":
            return "sent"
        if int(held.get("claimed_at", 0)) + ROLLOUT_FUNCTION_TIMEOUT_SECONDS > moment.timestamp():
            return "busy"
        try:
            self._client.update_item(
                TableName=self._table,
                Key=to_dynamo({"pk": partition(service), "sk": notice_key(execution)}),
                UpdateExpression="SET claimed_at = :now",
                ConditionExpression="claimed_at = :then AND #state = :sending",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=to_dynamo(
                    {":now": int(moment.timestamp()), ":then": held["claimed_at"], ":sending": "sending"}
                ),
            )
        except ClientError as error:
            if _failed_condition(error):
                return "busy"
            raise
        return "claimed"

    def notice_sent(self, service: str, execution: str) -> None:
        """The claimed announcement went out."""
        self._client.update_item(
            TableName=self._table,
            Key=to_dynamo({"pk": partition(service), "sk": notice_key(execution)}),
            UpdateExpression="SET #state = :sent",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues=to_dynamo({":sent": "sent"}),
        )

    def release_notice(self, service: str, execution: str) -> None:
        """Give a claim back when the announcement could not be sent, so a later path sends it."""
        self._client.delete_item(
            TableName=self._table, Key=to_dynamo({"pk": partition(service), "sk": notice_key(execution)})
        )

    def rollouts(self, service: str) -> list[RolloutRecord]:
        """The service's rollout records, oldest first."""
        return [_record(item) for item in query_partition(self._client, self._table, service, ROLLOUT_PREFIX)]

    def latest_rollout(self, service: str) -> RolloutRecord | None:
        """The service's newest rollout record (sort keys order records by their start)."""
        newest = self._query(service, ROLLOUT_PREFIX, last=1)
        return _record(newest[0]) if newest else None

    def record(self, service: str, sort_key: str) -> RolloutRecord | None:
        """One rollout record by its key (the lock names its holder's)."""
        item = self._get(service, sort_key)
        return None if item is None else _record(item)

    def record_for(self, service: str, execution: str) -> RolloutRecord | None:
        """The execution's record, by the key its execution item names (two reads, whatever the history)."""
        named = self._get(service, execution_key(execution))
        if named is not None:
            return self.record(service, named["record"])
        # A record started before execution items were written (an upgrade during a rollout) has none.
        return next((r for r in self.rollouts(service) if r.execution == execution), None)

    def _get(self, service: str, sort_key: str) -> dict[str, Any] | None:
        response = self._client.get_item(
            TableName=self._table, Key=to_dynamo({"pk": partition(service), "sk": sort_key}), ConsistentRead=True
        )
        item = response.get("Item")
        return from_dynamo(item) if item else None


def _record(item: dict[str, Any]) -> RolloutRecord:
    """A record item without its storage keys and item kind."""
    return RolloutRecord.from_json({k: v for k, v in item.items() if k not in ("pk", "sk", "kind")}, where="record")


def _entry(item: dict[str, Any]) -> AuditEntry:
    """An audit entry kept in an item of its own, without the item's keys and execution."""
    return AuditEntry.from_json({k: v for k, v in item.items() if k not in ("pk", "sk", "execution")}, where="entry")


def _own_item_key(plan: Plan, entry: AuditEntry) -> str | None:
    """The sort key of an entry a rollout writes per step or per bake extension (None: it belongs in the record)."""
    # An entry of these kinds always has the step (and extension) its id is built from (AuditEntry checks).
    if entry.kind == AuditKind.STEP_WEIGHTS and entry.step is not None:
        return weights_key(plan.started_at, plan.execution, entry.step)
    if entry.kind == AuditKind.JUDGEMENT and entry.step is not None and entry.extension is not None:
        return judgement_key(plan.started_at, plan.execution, entry.step, entry.extension)
    return None
