"""Rollout state in the registry table: the per-service lock, the stable/canary pointer, version states,
the rollout record with the audit trail of every decision (a step's weights, its judgements and its analysis
intervals in items of their own), and the notice that announces each execution's outcome once (key design in
registry/table_keys.py).

Every write is idempotent or conditional, so a step that runs twice leaves the same state.

The lock has a lease that covers the execution's timeout. Its expiry is checked in the condition of
every take-over, never left to DynamoDB's TTL (which deletes lazily, days later). A start may also take
over a lock whose holder execution is no longer running. While held, the lock carries the signals an
operator sends the running rollout: an abort request, or a hand-over to an operator after a failed
clean-up; a revoked lock means the execution was stopped from outside and must not act again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from registry.store import from_dynamo, query_partition, to_dynamo
from registry.table_keys import (
    JUDGEMENT_PREFIX,
    LOCK_KEY,
    POINTER_KEY,
    ROLLOUT_PREFIX,
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
from rollout.errors import AbortRequestedError, LockLostError, RolloutError, RolloutInProgressError
from tessera_shared.constants import LOCK_LEASE_SECONDS, PROMOTED, REGISTERED, RUNNING

RUNNABLE_STATES = (REGISTERED, PROMOTED)
NOTICE_RETENTION = timedelta(days=90)
_CONDITION_FAILED = "ConditionalCheckFailedException"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _failed_condition(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == _CONDITION_FAILED


class Ledger:
    def __init__(self, client: Any, table_name: str, *, clock: Callable[[], datetime] | None = None) -> None:
        self._client = client
        self._table = table_name
        self._clock = clock or (lambda: datetime.now(UTC))

    # -- lock -----------------------------------------------------------------------------------
    def acquire_lock(
        self, service: str, *, execution: str, version: str, is_running: Callable[[str], bool] | None = None
    ) -> dict | None:
        """Take the service's lock (or re-take it for the same execution). A lock whose lease has passed
        is taken over in the same conditional write; one whose holder execution is no longer running
        (`is_running` says) is taken over with a compare-and-swap on that holder. Returns the lock taken
        over, if any; refuses any other rollout."""
        moment = self._clock()
        item = {
            "pk": partition(service),
            "sk": LOCK_KEY,
            "kind": "lock",
            "execution": execution,
            "version": version,
            "acquired_at": moment.isoformat(timespec="milliseconds"),
            "expires_at": int((moment + timedelta(seconds=LOCK_LEASE_SECONDS)).timestamp()),
        }
        previous = self.lock_holder(service)
        free = "attribute_not_exists(pk) OR execution = :me OR expires_at < :now"
        if self._put_lock(item, free, {":me": execution, ":now": int(moment.timestamp())}):
            return previous if previous and previous.get("execution") != execution else None
        holder = self.lock_holder(service) or {}
        if holder.get("operator"):
            raise RolloutInProgressError(
                f"{service} is held by an operator since a rollout of version {holder.get('version')} could not "
                f"clean up ({holder.get('left', 'see its record')}); fix it, then `tessera rollout unlock --force`"
            )
        if holder and is_running is not None and not is_running(holder["execution"]):
            item["took_over_from"] = holder["execution"]
            if self._put_lock(item, "execution = :holder", {":holder": holder["execution"]}):
                return holder
        raise RolloutInProgressError(
            f"{service} is already being rolled out: version {holder.get('version')} by execution "
            f"{holder.get('execution')} since {holder.get('acquired_at')}"
        )

    def _put_lock(self, item: dict, condition: str, values: dict) -> bool:
        try:
            self._client.put_item(
                TableName=self._table,
                Item=to_dynamo(item),
                ConditionExpression=condition,
                ExpressionAttributeValues=to_dynamo(values),
            )
        except ClientError as error:
            if _failed_condition(error):
                return False
            raise
        return True

    def guard(self, service: str, *, execution: str, allow_abort: bool = False) -> dict:
        """The lock, when this execution holds it and may act; raises LockLostError when it does not
        (taken over, revoked, handed to an operator, gone) and AbortRequestedError when an operator asked
        this rollout to stop."""
        lock = self.lock_holder(service)
        if lock is None or lock.get("execution") != execution:
            holder = (lock or {}).get("execution", "nobody")
            raise LockLostError(f"this execution no longer holds the lock of {service} (held by {holder})")
        if lock.get("revoked") or lock.get("operator"):
            raise LockLostError(f"the lock of {service} was revoked from this execution")
        if lock.get("abort_requested") and not allow_abort:
            raise AbortRequestedError(str(lock["abort_requested"]))
        return lock

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
            if not _failed_condition(error):
                raise

    def _mark_lock(self, service: str, execution: str, assignments: dict[str, Any]) -> bool:
        names = {f"#{key}": key for key in assignments}
        try:
            self._client.update_item(
                TableName=self._table,
                Key=to_dynamo({"pk": partition(service), "sk": LOCK_KEY}),
                UpdateExpression="SET " + ", ".join(f"#{key} = :{key}" for key in assignments),
                ConditionExpression="execution = :me",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_dynamo({":me": execution, **{f":{k}": v for k, v in assignments.items()}}),
            )
        except ClientError as error:
            if _failed_condition(error):
                return False
            raise
        return True

    def request_abort(self, service: str, *, execution: str, reason: str, by: str) -> bool:
        """Ask the running rollout to stop: its next step rolls it back inside the state machine."""
        return self._mark_lock(service, execution, {"abort_requested": f"{reason} (by {by})"})

    def revoke_lock(self, service: str, *, execution: str) -> bool:
        """The execution was stopped from outside: none of its steps may act again."""
        return self._mark_lock(service, execution, {"revoked": True})

    def hand_to_operator(self, service: str, *, execution: str, left: str) -> bool:
        """Clean-up could not finish: keep the service locked for a person, saying what is left."""
        return self._mark_lock(service, execution, {"operator": True, "left": left, "revoked": True})

    def force_unlock(self, service: str, *, by: str) -> dict | None:
        """Delete the lock whoever holds it, and note who did it on the holder's record."""
        holder = self.lock_holder(service)
        self._client.delete_item(TableName=self._table, Key=to_dynamo({"pk": partition(service), "sk": LOCK_KEY}))
        if holder:
            record = self.record_for(service, holder["execution"])
            if record is not None:
                entry = AuditEntry(kind=AuditKind.FORCED_UNLOCK, at=now(), details={"by": by})
                self._append(partition(service), rollout_key(record.started_at, record.execution), entry)
        return holder

    def lock_holder(self, service: str) -> dict | None:
        return self._get(service, LOCK_KEY)

    # -- versions and pointer -------------------------------------------------------------------
    def version(self, service: str, version: str) -> dict | None:
        return self._get(service, version_key(version))

    def set_version_state(self, service: str, version: str, state: str) -> None:
        try:
            self._client.update_item(**self._version_state_update(service, version, state))
        except ClientError as error:
            if _failed_condition(error):
                raise RolloutError(f"{service} version {version} is not in the registry") from None
            raise

    def _version_state_update(self, service: str, version: str, state: str) -> dict:
        return {
            "TableName": self._table,
            "Key": to_dynamo({"pk": partition(service), "sk": version_key(version)}),
            "UpdateExpression": "SET #state = :state, updated_at = :at",
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeNames": {"#state": "state"},
            "ExpressionAttributeValues": to_dynamo({":state": state, ":at": now()}),
        }

    def pointer(self, service: str) -> dict:
        return self._get(service, POINTER_KEY) or {}

    def set_pointer(self, service: str, *, stable: str, canary: str | None) -> None:
        self._client.put_item(TableName=self._table, Item=to_dynamo(self._pointer_item(service, stable, canary)))

    def _pointer_item(self, service: str, stable: str, canary: str | None) -> dict:
        item = {"pk": partition(service), "sk": POINTER_KEY, "kind": "pointer", "stable": stable, "updated_at": now()}
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
            ExpressionAttributeValues=to_dynamo({":canary": version, ":kind": "pointer", ":at": now()}),
        )

    def commit_promotion(self, plan: Plan) -> bool:
        """In one transaction: the version PROMOTED, the stable pointer moved, the record PROMOTED and the
        lock released. True when this call committed it; False when it was committed before."""
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
                                {":promoted": PROMOTED, ":running": RUNNING, ":at": now()}
                            ),
                        }
                    },
                    {
                        "Delete": {
                            "TableName": self._table,
                            "Key": to_dynamo({"pk": partition(plan.service), "sk": LOCK_KEY}),
                            "ConditionExpression": "execution = :me AND attribute_not_exists(revoked)",
                            "ExpressionAttributeValues": to_dynamo({":me": plan.execution}),
                        }
                    },
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
                f"lock {self.lock_holder(plan.service)}"
            ) from None
        return True

    # -- rollout records --------------------------------------------------------------------------
    def start_record(self, plan: Plan) -> None:
        """The rollout's history entry; created once, kept on retries."""
        item = {
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
        try:
            self._client.put_item(
                TableName=self._table, Item=to_dynamo(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as error:
            if not _failed_condition(error):
                raise

    def record_decision(self, plan: Plan, entry: AuditEntry) -> None:
        """Record one audit entry. A step's weights and its judgements are items of their own, so that the record
        does not grow with the policy's steps and bake extensions; a retried step overwrites its item (the last
        write is the one whose outcome the rollout kept). Any other entry is appended to the record once: an entry
        already recorded under the same id is not added again."""
        own_key = _own_item_key(plan, entry)
        if own_key is None:
            self._append(partition(plan.service), rollout_key(plan.started_at, plan.execution), entry)
            return
        stamped = entry.stamped(now())
        item = {"pk": partition(plan.service), "sk": own_key, "execution": plan.execution, **stamped.to_json()}
        self._client.put_item(TableName=self._table, Item=to_dynamo(item))

    def _append(self, pk: str, sk: str, entry: AuditEntry) -> None:
        stamped = entry.stamped(now())
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

    def record_interval(self, plan: Plan, *, step: int, index: int, figures: dict) -> None:
        """One analysis interval's figures, in an item of its own (the record would outgrow 400 KB). A retried
        judgement overwrites it: the last write is the judgement whose outcome the rollout kept."""
        item = {
            "pk": partition(plan.service),
            "sk": interval_key(plan.started_at, plan.execution, step, index),
            "kind": "interval",
            "execution": plan.execution,
            "step": step,
            "interval": index,
            "at": now(),
            **figures,
        }
        self._client.put_item(TableName=self._table, Item=to_dynamo(item))

    def intervals(self, service: str, started_at: str, execution: str, *, last: int | None = None) -> list[dict]:
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

    def _query(self, service: str, prefix: str, *, last: int | None = None) -> list[dict]:
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

    def _update_record(self, plan: Plan, expression: str, values: dict) -> None:
        self._client.update_item(
            TableName=self._table,
            Key=to_dynamo({"pk": partition(plan.service), "sk": rollout_key(plan.started_at, plan.execution)}),
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=to_dynamo({":at": now(), **values}),
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
                    {":status": status, ":at": now(), ":reason": reason, ":left": left, ":running": RUNNING}
                ),
            )
        except ClientError as error:
            if _failed_condition(error):
                return False
            raise
        return True

    def claim_notice(self, service: str, execution: str, status: str) -> bool:
        """Claim the one announcement of this execution's outcome; False when it was announced already."""
        item = {
            "pk": partition(service),
            "sk": notice_key(execution),
            "kind": "notice",
            "status": status,
            "at": now(),
            "expires_at": int((self._clock() + NOTICE_RETENTION).timestamp()),
        }
        try:
            self._client.put_item(
                TableName=self._table, Item=to_dynamo(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as error:
            if _failed_condition(error):
                return False
            raise
        return True

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
        [item] = self._query(service, ROLLOUT_PREFIX, last=1) or [None]
        return None if item is None else _record(item)

    def record_for(self, service: str, execution: str) -> RolloutRecord | None:
        return next((r for r in self.rollouts(service) if r.execution == execution), None)

    def _get(self, service: str, sort_key: str) -> dict | None:
        response = self._client.get_item(
            TableName=self._table, Key=to_dynamo({"pk": partition(service), "sk": sort_key}), ConsistentRead=True
        )
        item = response.get("Item")
        return from_dynamo(item) if item else None


def _record(item: dict) -> RolloutRecord:
    """A record item without its storage keys and item kind."""
    return RolloutRecord.from_json({k: v for k, v in item.items() if k not in ("pk", "sk", "kind")}, where="record")


def _entry(item: dict) -> AuditEntry:
    """An audit entry kept in an item of its own, without the item's keys and execution."""
    return AuditEntry.from_json({k: v for k, v in item.items() if k not in ("pk", "sk", "execution")}, where="entry")


def _own_item_key(plan: Plan, entry: AuditEntry) -> str | None:
    """The sort key of an entry a rollout writes per step or per bake extension (None: it belongs in the record)."""
    # An entry of these kinds always has the step (and extension) its id is built from (AuditEntry checks).
    if entry.kind == AuditKind.STEP_WEIGHTS:
        return weights_key(plan.started_at, plan.execution, entry.step)  # type: ignore[arg-type]
    if entry.kind == AuditKind.JUDGEMENT:
        return judgement_key(plan.started_at, plan.execution, entry.step, entry.extension)  # type: ignore[arg-type]
    return None
