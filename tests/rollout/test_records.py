"""The rollout record and its audit entries as types (rollout.contract.records): the ids they are stored under,
their flat stored form, entries written before they had kinds, and the record as the ledger writes it."""

from __future__ import annotations

import json

import pytest

from registry.store import from_dynamo, to_dynamo
from registry.table_keys import execution_key, judgement_key, partition, rollout_key
from rollout.contract import ContractError, Plan, Progress
from rollout.contract.outcomes import Outcome, Verdict
from rollout.contract.records import AuditEntry, AuditKind, RolloutRecord
from rollout.steps import start
from tessera_shared import constants
from tests.rollout.harness import NEW_VERSION, STABLE_VERSION, TABLE, RolloutWorld

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:m:e1"


@pytest.mark.parametrize(
    ("entry", "entry_id"),
    [
        (AuditEntry(kind=AuditKind.PREFLIGHT), "preflight"),
        (AuditEntry(kind=AuditKind.LOCK_TAKEN_OVER), "lock-taken-over"),
        (AuditEntry(kind=AuditKind.STEP_WEIGHTS, step=2), "step-2-weights"),
        (AuditEntry(kind=AuditKind.JUDGEMENT, step=2, extension=3), "step-2-judgement-3"),
        (AuditEntry(kind=AuditKind.STEP_ALARM, step=0), "step-0-alarm"),
        (AuditEntry(kind=AuditKind.INTERVALS_FAILED, step=1), "step-1-intervals-failed"),
        (
            AuditEntry(kind=AuditKind.FORCED_UNLOCK, at="2026-11-20T10:00:00.000+00:00"),
            "forced-unlock-2026-11-20T10:00:00.000+00:00",
        ),
    ],
)
def test_every_kind_keeps_the_id_it_was_stored_under(entry: AuditEntry, entry_id: str) -> None:
    assert entry.id == entry_id


def test_an_entry_is_stored_flat_and_read_back_whole() -> None:
    entry = AuditEntry(
        kind=AuditKind.JUDGEMENT,
        at="2026-11-20T10:00:00.000+00:00",
        step=1,
        extension=0,
        verdict=Verdict.NOT_ENOUGH_DATA,
        reasons=["canary served 12 requests"],
        details={"canary_weight": 25, "canary": {"requests": 12}},
    )
    stored = entry.to_json()
    assert stored == {
        "id": "step-1-judgement-0",
        "kind": "judgement",
        "at": "2026-11-20T10:00:00.000+00:00",
        "step": 1,
        "extension": 0,
        "verdict": "NOT_ENOUGH_DATA",
        "reasons": ["canary served 12 requests"],
        "canary_weight": 25,
        "canary": {"requests": 12},
    }
    assert type(stored["verdict"]) is str  # a plain string in DynamoDB and in --json
    assert AuditEntry.from_json(json.loads(json.dumps(stored))) == entry


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (
            {"id": "step-3-judgement-2", "step": 3, "at": "t", "verdict": "PASS", "reasons": ["ok"], "canary": {}},
            AuditEntry(
                kind=AuditKind.JUDGEMENT,
                at="t",
                step=3,
                extension=2,
                verdict=Verdict.PASS,
                reasons=["ok"],
                details={"canary": {}},
            ),
        ),
        (
            {"id": "preflight", "step": "preflight", "at": "t", "verdict": "PASS", "pool": "gpu"},
            AuditEntry(kind=AuditKind.PREFLIGHT, at="t", verdict=Verdict.PASS, details={"pool": "gpu"}),
        ),
        (
            {"id": "rollback", "step": "rollback", "at": "t", "verdict": "ROLLED_BACK", "reason": "CanaryFailed"},
            AuditEntry(
                kind=AuditKind.ROLLBACK, at="t", outcome=Outcome.ROLLED_BACK, details={"reason": "CanaryFailed"}
            ),
        ),
        (
            {"id": "approval-requested", "step": "approval", "at": "t", "task_token": "secret"},
            AuditEntry(kind=AuditKind.APPROVAL_REQUESTED, at="t"),
        ),
        (
            {"id": "forced-unlock-2026-11-20T10:00", "step": "unlock", "at": "2026-11-20T10:01", "by": "arn:me"},
            AuditEntry(kind=AuditKind.FORCED_UNLOCK, at="2026-11-20T10:00", details={"by": "arn:me"}),
        ),
    ],
    ids=["judgement", "preflight", "rollback", "approval", "forced-unlock"],
)
def test_an_entry_recorded_before_entries_had_kinds_is_read_by_its_id(stored: dict, expected: AuditEntry) -> None:
    entry = AuditEntry.from_json(stored)
    assert entry == expected
    assert entry.id == stored["id"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": AuditKind.JUDGEMENT, "step": 1}, r"its id needs \['extension'\]"),
        ({"kind": AuditKind.STEP_WEIGHTS}, r"its id needs \['step'\]"),
        ({"kind": AuditKind.PREFLIGHT, "details": {"verdict": "PASS"}}, r"own fields \['verdict'\]"),
        ({"kind": AuditKind.PREFLIGHT, "details": {"id": "x"}}, r"own fields \['id'\]"),
    ],
)
def test_an_entry_without_its_ids_fields_or_with_shadowing_details_is_refused(fields: dict, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        AuditEntry(**fields)


def test_an_unknown_kind_or_id_is_refused_by_name() -> None:
    with pytest.raises(ContractError, match=r"AuditEntry.kind: expected one of \[.*'judgement'"):
        AuditEntry.from_json({"id": "x", "kind": "verdict"})
    with pytest.raises(ContractError, match="without a kind and with an unknown id 'step-x-judgement'"):
        AuditEntry.from_json({"id": "step-x-judgement"})


def test_verdicts_and_outcomes_keep_the_strings_stored_and_routed_on() -> None:
    assert [verdict.value for verdict in Verdict] == ["PASS", "FAIL", "NOT_ENOUGH_DATA", "INCONCLUSIVE"]
    shared = ("RUNNING", "PROMOTED", "ROLLED_BACK", "FAILED", "ABORTED", "TIMED_OUT", "NEEDS_OPERATOR")
    assert {name: getattr(constants, name) for name in shared} == {name: Outcome[name].value for name in shared}
    assert Outcome.REFUSED == "REFUSED"


def test_the_state_machine_routes_on_verdict_values(definition_text: str) -> None:
    """The Choice states compare `$.progress.verdict` with strings: each must be a Verdict's value."""
    definition = json.loads(definition_text)
    compared = {
        rule["StringEquals"]
        for state in definition["States"].values()
        if state["Type"] == "Choice"
        for rule in state["Choices"]
        if rule.get("Variable") == "$.progress.verdict"
    }
    assert compared
    assert compared <= {verdict.value for verdict in Verdict}


def test_the_record_the_ledger_writes_reads_back_as_a_rollout_record(world: RolloutWorld) -> None:
    ledger = world.clients.ledger
    plan = start.prepare({"service": "assistant", "version": NEW_VERSION}, EXECUTION, world.clients)
    start.acquire_lock(plan, world.clients)
    ledger.record_decision(plan, AuditEntry(kind=AuditKind.APPROVAL_REQUESTED))
    ledger.save_progress(plan, Progress(step=1, verdict=Verdict.FAIL, reasons=["5xx"]))
    ledger.set_approval_token(plan, "token-1")
    ledger.finish_record(plan.service, plan.execution, Outcome.ROLLED_BACK, reason="CanaryFailed: 5xx")
    record = ledger.record_for("assistant", EXECUTION)
    assert isinstance(record, RolloutRecord)
    assert (record.version, record.previous, record.status, record.plan) == (
        NEW_VERSION,
        STABLE_VERSION,
        Outcome.ROLLED_BACK,
        plan,
    )
    assert record.progress == Progress(step=1, verdict=Verdict.FAIL, reasons=["5xx"])
    assert [entry.kind for entry in record.decisions] == [AuditKind.APPROVAL_REQUESTED]
    assert record.decision_ids == ["approval-requested"]
    assert record.awaiting_approval  # a token and no promotion (the status is the caller's to check)
    assert (record.approval_token, record.reason) == ("token-1", "CanaryFailed: 5xx")


def test_a_record_field_the_model_does_not_know_is_refused_by_name() -> None:
    with pytest.raises(ContractError, match=r"record: unknown field\(s\) \['epoch'\]"):
        RolloutRecord.from_json({"epoch": 3}, where="record")


# -- entries in items of their own -----------------------------------------------------------------------------
def _locked(world: RolloutWorld, execution: str = EXECUTION) -> Plan:
    plan = start.prepare({"service": "assistant", "version": NEW_VERSION}, execution, world.clients)
    start.acquire_lock(plan, world.clients)
    return plan


def _judgement(step: int, extension: int, verdict: Verdict) -> AuditEntry:
    return AuditEntry(kind=AuditKind.JUDGEMENT, step=step, extension=extension, verdict=verdict, details={"n": step})


def test_a_steps_weights_and_judgements_are_items_of_their_own(world: RolloutWorld) -> None:
    ledger, plan = world.clients.ledger, _locked(world)
    ledger.record_decision(plan, AuditEntry(kind=AuditKind.STEP_WEIGHTS, step=0, details={"canary_weight": 10}))
    for extension, verdict in enumerate([Verdict.NOT_ENOUGH_DATA, Verdict.PASS]):
        ledger.record_decision(plan, _judgement(0, extension, verdict))
    item = world.dynamodb.get_item(
        TableName=TABLE,
        Key=to_dynamo({"pk": "SERVICE#assistant", "sk": judgement_key(plan.started_at, EXECUTION, 0, 1)}),
    )["Item"]
    assert from_dynamo(item)["kind"] == "judgement"
    assert from_dynamo(item)["id"] == "step-0-judgement-1"
    record = ledger.record_for("assistant", EXECUTION)
    assert (record.decisions, record.decision_ids) == ([], [])  # the record did not grow
    judgements = ledger.judgements(record)
    assert [(j.extension, j.verdict) for j in judgements] == [(0, "NOT_ENOUGH_DATA"), (1, "PASS")]
    assert ledger.judgements(record, last=1) == judgements[1:]
    assert [entry.kind for entry in ledger.audit_trail(record)] == ["step-weights", "judgement", "judgement"]


def test_a_retried_judgement_overwrites_its_item_with_the_outcome_the_rollout_kept(world: RolloutWorld) -> None:
    ledger, plan = world.clients.ledger, _locked(world)
    ledger.record_decision(plan, _judgement(1, 0, Verdict.NOT_ENOUGH_DATA))  # an attempt whose answer was lost
    ledger.record_decision(plan, _judgement(1, 0, Verdict.PASS))  # the retry, whose answer the rollout went on with
    [judgement] = ledger.judgements(ledger.record_for("assistant", EXECUTION))
    assert judgement.verdict == Verdict.PASS


def test_judgements_kept_in_a_record_from_before_they_had_items_are_still_read(world: RolloutWorld) -> None:
    ledger, plan = world.clients.ledger, _locked(world)
    kept = {"id": "step-0-judgement-0", "step": 0, "at": "t", "verdict": "PASS", "canary": {"target": "trainium"}}
    world.dynamodb.update_item(
        TableName=TABLE,
        Key=to_dynamo({"pk": "SERVICE#assistant", "sk": rollout_key(plan.started_at, EXECUTION)}),
        UpdateExpression="SET decisions = :kept",
        ExpressionAttributeValues=to_dynamo({":kept": [kept]}),
    )
    record = ledger.record_for("assistant", EXECUTION)
    [judgement] = ledger.judgements(record, last=1)
    assert (judgement.id, judgement.details["canary"]) == ("step-0-judgement-0", {"target": "trainium"})
    assert ledger.every_judgement("assistant") == [judgement]
    assert ledger.audit_trail(record) == [judgement]


def test_the_latest_rollout_is_the_newest_record_and_every_judgement_spans_rollouts(world: RolloutWorld) -> None:
    ledger = world.clients.ledger
    first = _locked(world, "arn:aws:states:us-east-1:123456789012:execution:m:first")
    ledger.record_decision(first, _judgement(0, 0, Verdict.PASS))
    ledger.locks.finish("assistant", execution=first.execution, outcome="PROMOTED")
    world.clock.advance(3600)
    second = _locked(world)
    ledger.record_decision(second, _judgement(0, 0, Verdict.FAIL))
    latest = ledger.latest_rollout("assistant")
    assert latest is not None
    assert (latest.execution, latest.started_at) == (EXECUTION, second.started_at)
    assert [j.verdict for j in ledger.every_judgement("assistant")] == ["PASS", "FAIL"]


def test_a_record_is_found_by_its_execution_without_reading_the_others(world: RolloutWorld) -> None:
    """Issue 23, problem 5: the record of an execution (the safety net, cleanup and promotion look it up) is read by
    key, not found by loading every record of the service with its decisions."""
    ledger = world.clients.ledger
    executions = [f"{EXECUTION[:-2]}e{n}" for n in range(1, 4)]
    for execution in executions:
        plan = start.prepare({"service": "assistant", "version": NEW_VERSION}, execution, world.clients)
        start.acquire_lock(plan, world.clients)
        ledger.locks.finish(plan.service, execution=plan.execution, outcome=Outcome.ROLLED_BACK, reason="test")
    operations: list[str] = []
    world.dynamodb.meta.events.register("before-call.dynamodb.*", lambda model, **_: operations.append(model.name))
    record = ledger.record_for("assistant", executions[1])
    assert record is not None
    assert record.execution == executions[1]
    assert "Query" not in operations
    assert ledger.record_for("assistant", f"{EXECUTION[:-2]}never") is None


def test_every_stamp_the_ledger_writes_comes_from_its_clock(world: RolloutWorld) -> None:
    """One injected clock (issue 23, problem 5): the lease already used it, the other stamps read the wall clock."""
    ledger = world.clients.ledger
    world.clock.advance(3 * 86400 + 1.5)
    moment = world.clock().isoformat(timespec="milliseconds")
    plan = start.prepare({"service": "assistant", "version": NEW_VERSION}, EXECUTION, world.clients)
    start.acquire_lock(plan, world.clients)
    ledger.set_canary("assistant", NEW_VERSION)
    ledger.record_decision(plan, AuditEntry(kind=AuditKind.APPROVAL_REQUESTED))
    ledger.set_version_state("assistant", NEW_VERSION, constants.REGISTERED)
    pointer = ledger.pointer("assistant")
    record = ledger.record_for("assistant", EXECUTION)
    assert record is not None
    version = ledger.version("assistant", NEW_VERSION)
    assert version is not None
    # From the clock double (three days ahead of the wall clock), in the order written, a millisecond apart where
    # the clock did not move between writes.
    stamps = [pointer["updated_at"], *(entry.at for entry in record.decisions), version["updated_at"]]
    assert all(stamp.startswith(moment[:10]) for stamp in stamps), stamps
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)


def test_a_record_from_before_execution_items_is_still_found(world: RolloutWorld) -> None:
    """A rollout started by the previous release has no execution item: the lookup falls back to the records."""
    ledger = world.clients.ledger
    plan = start.prepare({"service": "assistant", "version": NEW_VERSION}, EXECUTION, world.clients)
    start.acquire_lock(plan, world.clients)
    key = {"pk": partition("assistant"), "sk": execution_key(EXECUTION)}
    world.dynamodb.delete_item(TableName=TABLE, Key=to_dynamo(key), ConditionExpression="attribute_exists(pk)")
    record = ledger.record_for("assistant", EXECUTION)
    assert record is not None
    assert record.execution == EXECUTION
