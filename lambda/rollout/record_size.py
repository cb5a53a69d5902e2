"""How large a rollout's record can grow under its plan, counted as DynamoDB counts an item, and the check Prepare
runs beside the policy's duration check, so that every rollout it starts can record its way to the end.

A step adds nothing to the record: its weights and its judgements are items of their own, like its analysis
intervals (rollout.ledger). The record at its largest holds what the plan sets: the plan itself and its steps;
the progress with the most reasons a judgement under the policy gives; each kind of entry once (a failing step's
entry ends the rollout; forced unlocks up to FORCED_UNLOCKS), an entry of fixed shape at FIXED_ENTRY_BYTES and
the others built at their largest; and the texts an ending writes, counted at the limits of their sources.
"""

from __future__ import annotations

import math
from typing import Any

from registry.store import to_dynamo
from registry.table_keys import partition, rollout_key
from rollout.contract import Plan, Progress, StableSnapshot
from rollout.contract.outcomes import Outcome, Verdict
from rollout.contract.records import AuditEntry, AuditKind, RolloutRecord
from rollout.errors import StartRefusedError

ITEM_LIMIT_BYTES = 400 * 1024  # DynamoDB's limit on an item
# The most a plan's record may reach: the rest of the item limit is left for attributes a later release adds.
RECORD_BOUND_BYTES = 300 * 1024
# An error's name and cause as Step Functions passes them (at most 256 and 32,768 characters), with the words around
# them: Rollback's reason and the record's reason. What a clean-up left to undo is counted the same (its stages'
# errors are not capped where they are written).
ERROR_TEXT_CHARS = 256 + 32_768 + 256
TASK_TOKEN_CHARS = 2_048  # Step Functions' limit on a task token
CALLER_ARN_CHARS = 2_048  # an IAM ARN, as STS names the caller of a forced unlock
EXECUTION_ARN_CHARS = 256
# One reason a judgement gives, besides the metric name it quotes: the longest format is about 120 characters.
REASON_CHARS = 512
# Entries whose evidence has a fixed shape (counts, a pool, an image): tests/rollout/test_bounded_records.py checks
# the ones real rollouts record against this.
FIXED_ENTRY_BYTES = 1_024
FIXED_KINDS = (
    AuditKind.LOCK_TAKEN_OVER,
    AuditKind.PREFLIGHT,
    AuditKind.DEPLOY_CANARY,
    AuditKind.WARM_UP,
    AuditKind.APPROVAL_REQUESTED,
    AuditKind.PROMOTE_STABLE,
)
# Each forced unlock needs the holder to have taken the lock again since the last one: a handful at most.
FORCED_UNLOCKS = 4
MOMENT = "2026-01-01T00:00:00.000+00:00"  # no timestamp the rollout writes is longer
WIDEST_NUMBER = 10**38 - 1  # DynamoDB keeps 38 significant digits: the widest number takes 20 bytes


def check_record_size(plan: Plan) -> None:
    """Refuse a plan whose record could outgrow RECORD_BOUND_BYTES, with the figures."""
    worst = worst_case_record_bytes(plan)
    if worst > RECORD_BOUND_BYTES:
        raise StartRefusedError(
            f"policy: the rollout's record could reach {worst:,} bytes (its plan alone takes "
            f"{item_size({'plan': plan.to_json()}):,}), more than the {RECORD_BOUND_BYTES:,} a record may take of "
            f"DynamoDB's {ITEM_LIMIT_BYTES:,}-byte item limit; watch fewer alarms or extra metrics"
        )


def worst_case_record_bytes(plan: Plan) -> int:
    """The most the rollout's record can take under `plan`, in bytes as DynamoDB counts them."""
    text = "x" * ERROR_TEXT_CHARS
    entries = [*_failed_step_entries(plan), _rollback(text), *_forced_unlocks()]
    fixed_ids = [AuditEntry(kind=kind).id for kind in FIXED_KINDS]
    record = RolloutRecord(
        execution=plan.execution,
        version=plan.version,
        previous=plan.stable_version,
        status=max(Outcome, key=len),
        started_at=plan.started_at,
        steps=plan.policy.steps,
        plan=plan,
        decisions=entries,
        decision_ids=[entry.id for entry in entries] + fixed_ids,
        progress=_largest_progress(plan),
        progress_at=MOMENT,
        approval_token="x" * TASK_TOKEN_CHARS,
        approval_requested_at=MOMENT,
        finished_at=MOMENT,
        reason=text,
        left_to_undo=text,
    )
    key = {"pk": partition(plan.service), "sk": rollout_key(plan.started_at, plan.execution), "kind": "rollout"}
    # Each fixed entry is one more element of the record's list of entries: its allowance plus the element's byte.
    return item_size({**key, **record.to_json()}) + len(FIXED_KINDS) * (FIXED_ENTRY_BYTES + 1)


def item_size(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it against its item limit (developer guide, "Item sizes and formats"):
    attribute names and strings in UTF-8 bytes; a number one byte per two significant digits plus one; a boolean or
    null one byte; a list or map 3 bytes, plus per element one byte, its value and (in a map) its name."""
    return sum(_utf8(name) + _value_size(value) for name, value in to_dynamo(item).items())


def _value_size(value: dict[str, Any]) -> int:
    [(kind, content)] = value.items()
    if kind == "S":
        return _utf8(content)
    if kind == "N":
        return _number_size(content)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + _value_size(element) for element in content)
    if kind == "M":
        return 3 + sum(1 + _utf8(name) + _value_size(element) for name, element in content.items())
    raise ValueError(f"no size rule for DynamoDB type {kind}: the rollout record holds no such value")


def _number_size(number: str) -> int:
    mantissa = number.lower().split("e")[0].lstrip("-").replace(".", "").strip("0")
    return math.ceil(max(len(mantissa), 1) / 2) + 1


def _utf8(text: str) -> int:
    return len(text.encode())


def _most_reasons(plan: Plan) -> list[str]:
    """As many reasons as a judgement under the policy can give, each at its longest: one per rule (5xx rate and p99,
    absolute and against stable; two per extra metric; cost), a note on stable's traffic, and the sentence the step
    adds in front (intervals failed) or after (extensions exhausted)."""
    analysis = plan.policy.analysis
    rules = 4 + 2 * len(analysis.extra_metrics) + 1
    longest_name = max((len(metric.name) for metric in analysis.extra_metrics), default=0)
    return ["x" * (REASON_CHARS + 2 * longest_name)] * (rules + 3)


def _alarm_reason(plan: Plan) -> str:
    alarms = plan.watched_alarms
    return f"{len(alarms)} alarm(s) in ALARM: {', '.join(alarms)}"


def _failed_step_entries(plan: Plan) -> list[AuditEntry]:
    """The entries of a failing step: either ends the rollout, so a record holds one; both are counted."""
    last_step = len(plan.policy.steps) - 1
    alarm = AuditEntry(
        kind=AuditKind.STEP_ALARM,
        at=MOMENT,
        step=last_step,
        verdict=Verdict.FAIL,
        reasons=[_alarm_reason(plan)],
        details={"alarms_in_alarm": plan.watched_alarms},
    )
    intervals = AuditEntry(
        kind=AuditKind.INTERVALS_FAILED,
        at=MOMENT,
        step=last_step,
        verdict=Verdict.FAIL,
        reasons=_most_reasons(plan),
        details={"last_interval": WIDEST_NUMBER},
    )
    return [alarm, intervals]


def _rollback(text: str) -> AuditEntry:
    return AuditEntry(kind=AuditKind.ROLLBACK, at=MOMENT, outcome=max(Outcome, key=len), details={"reason": text})


def _forced_unlocks() -> list[AuditEntry]:
    unlock = AuditEntry(kind=AuditKind.FORCED_UNLOCK, at=MOMENT, details={"by": "x" * CALLER_ARN_CHARS})
    return [unlock] * FORCED_UNLOCKS


def _largest_progress(plan: Plan) -> Progress:
    """Where a rollout under the plan is, at its largest: every moment set, the most reasons, and stable's snapshot
    with an image and model as long as the new version's and the new version's placement."""
    number = WIDEST_NUMBER
    stable = StableSnapshot(
        image=plan.image,
        model_version=plan.version,
        model_uri=plan.model_uri,
        replicas=number,
        autoscaler_min=number,
        placement=plan.placement,
    )
    reasons = [*_most_reasons(plan), _alarm_reason(plan)]
    return Progress(
        deployed=True,
        step=number,
        replicas=number,
        stable_replicas=number,
        extensions=number,
        deadline=MOMENT,
        warm_until=MOMENT,
        bake_until=MOMENT,
        step_started_at=MOMENT,
        verdict=max(Verdict, key=len),
        reasons=reasons,
        waiting=True,
        interval=number,
        failing_intervals=number,
        wait_seconds=number,
        done=True,
        promotion_started=True,
        stable=stable,
    )
