"""The service lock: at most one rollout acts on a service, and a step that lost the lock can tell.

The lock is one item per service (`sk = LOCK`) that is never deleted: taking it sets its holder and raises its
`epoch`, which only ever grows; freeing it removes the holder and keeps the epoch. A step reads the epoch
before it writes (`guard`) and checks it again after (`holds`): a write that landed after the lock changed
hands, or after the lock was revoked, is found and undone by the step itself.

Every change of a rollout's state moves the lock and the rollout's record together, in one transaction:
taking the lock starts the record, and each ending (finished, or handed to an operator) finishes the record
and frees or hands over the lock. So a lock never exists without its record, and a record never ends with its
lock left behind.

The lease (`lease_until`) covers the execution's timeout; it is checked in the condition of a take-over and is
not the table's TTL attribute (`expires_at`), which DynamoDB would use to delete the item. An operator's hold
has no lease at all: it never expires and is never taken over, only released by `tessera rollout unlock`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from registry.store import from_dynamo, to_dynamo
from registry.table_keys import LOCK_KEY, execution_key, partition, rollout_key
from rollout.contract import Plan
from rollout.errors import AbortRequestedError, LockLostError, RolloutInProgressError
from tessera_shared.constants import LOCK_LEASE_SECONDS, RUNNING

# What a holder adds to the lock item; freeing the lock removes all of it (the epoch stays).
HOLDER_FIELDS = (
    "execution",
    "version",
    "record",
    "acquired_at",
    "lease_until",
    "abort_requested",
    "revoked",
    "quiescent_after",
    "operator",
    "left",
    "took_over_from",
    "deploy_floor",
)
# `operator`, `record` and `left` are DynamoDB reserved words: every field goes by a name placeholder.
RELEASE_NAMES = {f"#{field}": field for field in HOLDER_FIELDS}
_CONDITION_FAILED = "ConditionalCheckFailedException"
_CANCELLED = "TransactionCanceledException"


@dataclass(frozen=True)
class Finished:
    """A record's ending: its sort key, outcome, reason and what was left to undo."""

    record: str
    outcome: str
    reason: str
    left: str = ""


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def record_item(plan: Plan) -> dict[str, Any]:
    """The rollout's record as it starts."""
    return {
        "pk": partition(plan.service),
        "sk": rollout_key(plan.started_at, plan.execution),
        "kind": "rollout",
        "execution": plan.execution,
        "version": plan.version,
        "previous": plan.stable_version,
        "status": RUNNING,
        "started_at": plan.started_at,
        "steps": plan.policy.steps,
        "plan": plan.to_json(),
        "decisions": [],
    }


class Locks:
    def __init__(self, client: Any, table_name: str, clock: Callable[[], datetime]) -> None:
        self._client = client
        self._table = table_name
        self._clock = clock

    # -- reading --------------------------------------------------------------------------------------
    def item(self, service: str) -> dict[str, Any] | None:
        """The lock item as stored (with or without a holder)."""
        response = self._client.get_item(TableName=self._table, Key=self._key(service), ConsistentRead=True)
        return from_dynamo(response["Item"]) if "Item" in response else None

    def holder(self, service: str) -> dict[str, Any] | None:
        """The lock when someone holds it, else None."""
        item = self.item(service)
        return item if item and item.get("execution") else None

    def guard(self, service: str, *, execution: str, allow_abort: bool = False) -> dict[str, Any]:
        """The lock, when this execution holds it and may act; raises LockLostError when it does not
        (taken over, revoked, handed to an operator, freed) and AbortRequestedError when an operator asked
        this rollout to stop."""
        lock = self.holder(service)
        if lock is None or lock.get("execution") != execution:
            holder = (lock or {}).get("execution", "nobody")
            raise LockLostError(f"this execution no longer holds the lock of {service} (held by {holder})")
        if lock.get("revoked") or lock.get("operator"):
            raise LockLostError(f"the lock of {service} was revoked from this execution")
        if lock.get("abort_requested") and not allow_abort:
            raise AbortRequestedError(str(lock["abort_requested"]))
        return lock

    def holds(self, service: str, *, execution: str, epoch: int) -> bool:
        """Whether this execution still holds the lock at this epoch, unrevoked: checked after a write."""
        lock = self.holder(service) or {}
        return (
            lock.get("execution") == execution
            and lock.get("epoch") == epoch
            and not lock.get("revoked")
            and not lock.get("operator")
        )

    # -- taking ---------------------------------------------------------------------------------------
    def take(self, plan: Plan, *, seen: dict[str, Any] | None, previous: Finished | None = None) -> dict[str, Any]:
        """Take the lock as `seen` (the item read just before, None when there was none) and start the rollout's
        record, in one transaction, finishing a gone holder's record (`previous`) in the same one; refused if the
        lock changed since it was read. Returns the lock."""
        lock = self._new_lock(plan, seen)
        items = [self._put_lock(lock, seen), self._put_new_record(plan), self._put_execution_key(plan)]
        if previous is not None:
            lock["took_over_from"] = seen["execution"] if seen else ""
            items.append(self._finish_record_item(plan.service, previous))
        self._transact(items, plan.service)
        return lock

    def retake(self, plan: Plan, *, seen: dict[str, Any] | None) -> dict[str, Any]:
        """Take back a lock that was freed under a running rollout (a forced unlock), at a new epoch, so that the
        rollout can clean up before anyone else starts; its record must still be RUNNING."""
        lock = self._new_lock(plan, seen)
        record_running = {
            "ConditionCheck": {
                "TableName": self._table,
                "Key": to_dynamo({"pk": partition(plan.service), "sk": lock["record"]}),
                "ConditionExpression": "#status = :running",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": to_dynamo({":running": RUNNING}),
            }
        }
        self._transact([self._put_lock(lock, seen), record_running], plan.service)
        return lock

    def _new_lock(self, plan: Plan, seen: dict[str, Any] | None) -> dict[str, Any]:
        moment = self._clock()
        return {
            "pk": partition(plan.service),
            "sk": LOCK_KEY,
            "kind": "lock",
            "epoch": int((seen or {}).get("epoch", 0)) + 1,
            "execution": plan.execution,
            "version": plan.version,
            "record": rollout_key(plan.started_at, plan.execution),
            "acquired_at": iso(moment),
            "lease_until": int((moment + timedelta(seconds=LOCK_LEASE_SECONDS)).timestamp()),
        }

    def _put_lock(self, lock: dict[str, Any], seen: dict[str, Any] | None) -> dict[str, Any]:
        """The lock's put, on condition that it is as it was read."""
        put: dict[str, Any] = {"TableName": self._table, "Item": to_dynamo(lock)}
        if seen is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        elif seen.get("execution"):
            put["ConditionExpression"] = "epoch = :seen AND #execution = :holder"
            put["ExpressionAttributeNames"] = {"#execution": "execution"}
            put["ExpressionAttributeValues"] = to_dynamo({":seen": seen.get("epoch", 0), ":holder": seen["execution"]})
        else:
            put["ConditionExpression"] = "epoch = :seen AND attribute_not_exists(#execution)"
            put["ExpressionAttributeNames"] = {"#execution": "execution"}
            put["ExpressionAttributeValues"] = to_dynamo({":seen": seen.get("epoch", 0)})
        return {"Put": put}

    def _put_new_record(self, plan: Plan) -> dict[str, Any]:
        item = record_item(plan)
        return {
            "Put": {
                "TableName": self._table,
                "Item": to_dynamo(item),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def _put_execution_key(self, plan: Plan) -> dict[str, Any]:
        item = {
            "pk": partition(plan.service),
            "sk": execution_key(plan.execution),
            "kind": "execution",
            "record": rollout_key(plan.started_at, plan.execution),
        }
        return {
            "Put": {
                "TableName": self._table,
                "Item": to_dynamo(item),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def _transact(self, items: list[dict[str, Any]], service: str) -> None:
        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as error:
            if error.response["Error"]["Code"] != _CANCELLED:
                raise
            raise RolloutInProgressError(
                f"the lock of {service} changed while this rollout took it; start again"
            ) from None

    def lease_passed(self, lock: dict[str, Any]) -> bool:
        """A holder past its lease (which covers the execution's timeout) is long gone; an operator's hold has none."""
        lease = lock.get("lease_until")
        return lease is not None and not lock.get("operator") and int(lease) < self._clock().timestamp()

    # -- signals to the holder ---------------------------------------------------------------------
    def request_abort(self, service: str, *, execution: str, reason: str, by: str) -> bool:
        """Ask the running rollout to stop: its next step rolls it back inside the state machine."""
        return self._mark(service, execution, set_fields={"abort_requested": f"{reason} (by {by})"})

    def revoke(self, service: str, *, execution: str, quiescent_after: str) -> bool:
        """The execution was stopped from outside: none of its steps may act again. The lock stays held (revoked)
        until `quiescent_after`, when no invocation of the execution can still be running."""
        return self._mark(service, execution, set_fields={"revoked": True, "quiescent_after": quiescent_after})

    def record_deploy_floor(self, service: str, floor: int) -> bool:
        """A deploy changed stable's autoscaler floor while a rollout holds the lock: the floor the service
        returns to at rest (False when no rollout holds the lock)."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(service),
                UpdateExpression="SET deploy_floor = :floor",
                ConditionExpression="attribute_exists(execution)",
                ExpressionAttributeValues=to_dynamo({":floor": floor}),
            )
        except ClientError as error:
            if _failed(error):
                return False
            raise
        return True

    # -- endings: the lock and the record move together ----------------------------------------------
    def finish(self, service: str, *, execution: str, outcome: str, reason: str = "", left: str = "") -> bool:
        """Finish the rollout's record with its outcome and free the lock, in one transaction; True when this
        call did (False: done before, or the lock is not this execution's)."""
        return self._end(service, execution, outcome=outcome, reason=reason, left=left, operator=False)

    def hand_to_operator(self, service: str, *, execution: str, outcome: str, reason: str, left: str) -> bool:
        """Clean-up could not finish: finish the record as NEEDS_OPERATOR and keep the service locked for a person
        (no lease: the hold never expires), saying what is left."""
        return self._end(service, execution, outcome=outcome, reason=reason, left=left, operator=True)

    def release_transact_item(self, service: str, *, execution: str, epoch: int) -> dict[str, Any]:
        """The transaction item that frees the lock, if this execution holds it at `epoch` and it was not revoked
        (for a commit that moves other items with it)."""
        return {
            "Update": {
                "TableName": self._table,
                "Key": self._key(service),
                "UpdateExpression": self._release_expression(),
                "ConditionExpression": "#execution = :me AND epoch = :epoch AND attribute_not_exists(#revoked)",
                "ExpressionAttributeNames": RELEASE_NAMES,
                "ExpressionAttributeValues": to_dynamo({":me": execution, ":epoch": epoch, ":at": iso(self._clock())}),
            }
        }

    def force_unlock(self, service: str) -> dict[str, Any] | None:
        """Free the lock whoever holds it (an operator's decision; the CLI refuses it while the holder runs).
        Returns the holder it freed."""
        holder = self.holder(service)
        if holder is None:
            return None
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(service),
                UpdateExpression=self._release_expression(),
                ConditionExpression="#execution = :holder AND epoch = :epoch",
                ExpressionAttributeNames=RELEASE_NAMES,
                ExpressionAttributeValues=to_dynamo(
                    {":holder": holder["execution"], ":epoch": holder["epoch"], ":at": iso(self._clock())}
                ),
            )
        except ClientError as error:
            if _failed(error):
                return None
            raise
        return holder

    def _end(self, service: str, execution: str, *, outcome: str, reason: str, left: str, operator: bool) -> bool:
        lock = self.holder(service)
        if lock is None or lock.get("execution") != execution:
            return False
        at = iso(self._clock())
        if operator:
            fields = ("operator", "revoked", "left", "lease_until", "execution")
            lock_update = "SET #operator = :true, #revoked = :true, #left = :left REMOVE #lease_until"
            lock_values, names = {":true": True, ":left": left}, {f"#{field}": field for field in fields}
        else:
            lock_update, lock_values, names = self._release_expression(), {":at": at}, RELEASE_NAMES
        record = self._finish_record_item(service, Finished(lock["record"], outcome, reason, left))
        release = {
            "Update": {
                "TableName": self._table,
                "Key": self._key(service),
                "UpdateExpression": lock_update,
                "ConditionExpression": "#execution = :me AND epoch = :epoch",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": to_dynamo({":me": execution, ":epoch": lock["epoch"]} | lock_values),
            }
        }
        try:
            self._client.transact_write_items(TransactItems=[record, release])
        except ClientError as error:
            if error.response["Error"]["Code"] != _CANCELLED:
                raise
            return False
        return True

    def _finish_record_item(self, service: str, finished: Finished) -> dict[str, Any]:
        """The record's move from RUNNING to its outcome, as a transaction item."""
        values = {
            ":status": finished.outcome,
            ":at": iso(self._clock()),
            ":reason": finished.reason,
            ":left": finished.left,
            ":running": RUNNING,
        }
        return {
            "Update": {
                "TableName": self._table,
                "Key": to_dynamo({"pk": partition(service), "sk": finished.record}),
                "UpdateExpression": "SET #status = :status, finished_at = :at, reason = :reason, left_to_undo = :left",
                "ConditionExpression": "#status = :running",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": to_dynamo(values),
            }
        }

    def _release_expression(self) -> str:
        """Frees the lock (its names are RELEASE_NAMES)."""
        return "SET released_at = :at REMOVE " + ", ".join(f"#{field}" for field in HOLDER_FIELDS)

    def _mark(self, service: str, execution: str, *, set_fields: dict[str, Any]) -> bool:
        names = {f"#{key}": key for key in set_fields}
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(service),
                UpdateExpression="SET " + ", ".join(f"#{key} = :{key}" for key in set_fields),
                ConditionExpression="execution = :me",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_dynamo({":me": execution, **{f":{k}": v for k, v in set_fields.items()}}),
            )
        except ClientError as error:
            if _failed(error):
                return False
            raise
        return True

    def _key(self, service: str) -> dict[str, Any]:
        return to_dynamo({"pk": partition(service), "sk": LOCK_KEY})


def _failed(error: ClientError) -> bool:
    return bool(error.response["Error"]["Code"] == _CONDITION_FAILED)
