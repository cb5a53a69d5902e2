"""Sequence 12 of issue 20, bounded records: a policy that Prepare accepts (25 steps, 1-minute bakes, 20
extensions) outgrew DynamoDB's 400 KB item limit part-way (at step 10 in the issue's account, at step 14 with
this world's judgements of about 1.3 KB), and Rollback's own audit append then failed the same way. moto
enforces the item limit on every put and update, as DynamoDB does."""

from __future__ import annotations

from rollout.contract.records import AuditKind
from tests.rollout.harness import STABLE_VERSION, TrackTraffic
from tests.rollout.scenarios import Rollouts

CANARY_PER_MINUTE = 100
# Each step's whole bake is short of data until its window spans 20.5 minutes of canary requests: 19 or 20
# extensions (the minute the step began in counts when the step did not begin on a minute), then a pass.
LONG_POLICY = {
    "steps": list(range(2, 51, 2)),  # the canary keeps to one pod: the pool fits it
    "bake_seconds": 60,
    "poll_seconds": 60,
    # Analysis intervals are items of their own already: judged hourly, they stay out of the way of this test's time.
    "analysis": {
        "max_bake_extensions": 20,
        "min_requests": int(20.5 * CANARY_PER_MINUTE),
        "interval_seconds": 3600,
    },
}
FAILING_STEP = len(LONG_POLICY["steps"]) - 1  # the last: the rollout must get there, and Rollback must record


def test_sequence_12_a_long_policy_reaches_its_last_step_and_rolls_back_with_its_record_in_bounds(
    rollouts: Rollouts,
) -> None:
    world = rollouts.world
    world.traffic.canary = TrackTraffic(requests=CANARY_PER_MINUTE)
    original = world.invoke_action

    def invoke(event: dict) -> dict:
        result = original(event)
        if event.get("action") == "shift_traffic" and result["step"] == FAILING_STEP:
            # At the last step the canary fails half its requests: the step fails, Rollback records it.
            world.traffic.change_at(world.clock(), "canary", TrackTraffic(requests=CANARY_PER_MINUTE, errors_5xx=50))
        return result

    world.invoke_action = invoke  # type: ignore[method-assign]
    ended = rollouts.settle(rollouts.start(LONG_POLICY, timeout=1800))

    record = rollouts.assert_invariants(ended)
    assert record is not None
    outcome = (record.status, ended.get("error"))
    assert outcome == ("ROLLED_BACK", "RolledBack"), f"{outcome}: {record.reason} / {ended.get('cause')}"
    rollouts.assert_at_rest(stable=STABLE_VERSION)
    [rolled_back] = record.entries(AuditKind.ROLLBACK)
    assert rolled_back.outcome == "ROLLED_BACK"
    # Every step's weights and whole-bake judgements are items of their own: each passing step took 19 or 20
    # extensions, so nearly 500 judgements in all.
    ledger = rollouts.world.clients.ledger
    trail = ledger.audit_trail(record)
    weights = [entry.step for entry in trail if entry.kind == AuditKind.STEP_WEIGHTS]
    assert weights == list(range(len(LONG_POLICY["steps"])))
    extensions: dict[int, int] = {}
    for judgement in ledger.judgements(record):
        extensions[judgement.step] = max(extensions.get(judgement.step, 0), judgement.extension)
    assert all(extensions[step] >= 19 for step in range(FAILING_STEP)), extensions
