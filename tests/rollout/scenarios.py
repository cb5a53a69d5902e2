"""Driving whole rollouts: start an execution of the synthesized state machine under moto, let it end,
deliver the safety net's status-change event as EventBridge would, and check every invariant."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rollout.contract.records import RolloutRecord
from stacks.registration.catalog import build_catalog
from tessera_shared.constants import QUIESCENCE_SECONDS
from tests.rollout.harness import NEW_VERSION, REGION, TABLE, RolloutWorld, run_execution, settle_event

DASHBOARD_URL = (
    "https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards/dashboard/tessera-dev-assistant"
)

# How each outcome in the ledger shows on the execution (status, error).
EXPECTED_ENDING = {
    "PROMOTED": ("SUCCEEDED", None),
    "ROLLED_BACK": ("FAILED", "RolledBack"),
    "ABORTED": ("FAILED", "Aborted"),
    "FAILED": ("FAILED", "RolloutFailed"),
    "NEEDS_OPERATOR": ("FAILED", "NeedsOperator"),
}
STATUS_CHANGE = "Step Functions Execution Status Change"


@dataclass
class Rollouts:
    world: RolloutWorld
    sfn: Any
    machine: str

    def start(self, overrides: dict | None = None, *, version: str = NEW_VERSION, **kwargs: Any) -> dict:
        request = {"service": "assistant", "version": version, "overrides": overrides or {}}
        return run_execution(self.sfn, self.machine, request, **kwargs)

    def begin(self, overrides: dict | None = None) -> dict:
        """Start an execution and return at once, while it runs."""
        return self.start(overrides, until=lambda _: True)

    def wait(self, execution: str, timeout: float = 90.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            described = self.sfn.describe_execution(executionArn=execution)
            if described["status"] != "RUNNING":
                return described
            time.sleep(0.05)
        raise AssertionError(f"execution {execution} did not finish within {timeout} s")

    def settle(self, execution: dict) -> dict:
        """What the safety net does after an execution ends: deliver its status-change event (the documented
        shape) to the rollout function, then, once the stopped execution is quiescent, the second pass the first
        one scheduled (as the settle queue's delayed message)."""
        world = self.world
        if execution["status"] in ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"):
            world.invoke(status_change_event(execution))
        if world.settle.pending:
            world.clock.advance(QUIESCENCE_SECONDS)
            for message in world.settle.due(world.clock()):
                world.invoke(settle_event(message))
        return execution

    def assert_at_rest(self, *, stable: str) -> None:
        world = self.world
        weights = world.weights()
        assert weights == {world.routing.stable_target_group: 100, world.routing.canary_target_group: 0}
        assert world.canary_replicas() == 0
        assert world.clients.ledger.locks.holder("assistant") is None
        assert world.clients.ledger.pointer("assistant")["stable"] == stable
        assert world.deployed_version("stable") == stable

    def assert_invariants(self, execution: dict) -> RolloutRecord | None:
        """Every invariant a rollout's end must keep, whatever happened on the way. Returns the record (None: the
        rollout was refused before it took the lock)."""
        world = self.world
        ledger = world.clients.ledger
        described = self.sfn.describe_execution(executionArn=execution["executionArn"])
        assert described["status"] != "RUNNING"
        record = ledger.record_for("assistant", execution["executionArn"])
        notices = [n for n in world.notices() if n["execution"] == execution["executionArn"]]
        endings = [n["status"] for n in notices if n["status"] != "APPROVAL_NEEDED"]
        lock = ledger.locks.holder("assistant")
        if lock is not None:  # a lock never exists without its record
            assert ledger.record("assistant", lock["record"]) is not None, lock
        at_rest = {
            "traffic": world.weights()
            == {world.routing.stable_target_group: 100, world.routing.canary_target_group: 0},
            "canary": world.canary_replicas() == 0,
            "stable": world.deployed_version("stable") == ledger.pointer("assistant")["stable"],
        }
        if record is None:  # refused before it took the lock: nothing was touched
            assert described["error"] in ("RolloutRefused", "RolloutNotStarted"), described
            assert all(at_rest.values()), at_rest
            assert endings == ["REFUSED"], endings
            return None
        status = record.status
        assert endings == [status], (endings, status)
        if status == "NEEDS_OPERATOR":
            # What could not be undone stays, handed to a person who is told exactly what is left.
            assert lock is not None
            assert lock.get("operator"), lock
            assert "lease_until" not in lock, lock  # a person's hold never expires
            assert all(name in (record.left_to_undo or "") for name, ok in at_rest.items() if not ok), record
        else:
            assert all(at_rest.values()), at_rest
            assert lock is None or self._running(lock["execution"]), lock
        error = described.get("error")
        if described["status"] in ("ABORTED", "TIMED_OUT"):
            assert status in (described["status"], "NEEDS_OPERATOR"), (status, described["status"])
        elif error in {ending for _, ending in EXPECTED_ENDING.values()} or described["status"] == "SUCCEEDED":
            assert EXPECTED_ENDING[status] == (described["status"], error), (status, described)
        else:  # failed where nothing inside caught it: the safety net decided the outcome
            assert status in ("FAILED", "NEEDS_OPERATOR"), (status, described)
        # Only a verdict burns a version: a rollback after one, or a hand-over whose clean-up after one did not finish.
        verdict = (record.reason or "").startswith(("CanaryFailed", "Rejected"))
        if status != "ROLLED_BACK" and not (status == "NEEDS_OPERATOR" and verdict):
            version = ledger.version("assistant", record.version)["state"]
            assert version in ("REGISTERED", "PROMOTED"), version
        return record

    def _running(self, execution: str) -> bool:
        return self.sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"

    def version_state(self) -> str:
        return self.world.clients.ledger.version("assistant", NEW_VERSION)["state"]

    def record(self) -> RolloutRecord:
        [record] = self.world.clients.ledger.rollouts("assistant")
        return record

    def prepare_cli(self) -> None:
        """The SSM parameters the CLI finds the environment by."""
        ssm = self.world.clients.ssm
        for name, value in (
            ("artifacts/registry-table-name", TABLE),
            ("rollout/state-machine-arn", self.machine),
            ("registry/catalog", build_catalog(self.world.config).to_json()),
            ("observability/services/assistant/dashboard", DASHBOARD_URL),
        ):
            ssm.put_parameter(Name=f"/tessera/dev/{name}", Value=value, Type="String", Overwrite=True)


def status_change_event(execution: dict) -> dict:
    """A Step Functions "Execution Status Change" event as EventBridge delivers it (AWS Step Functions
    developer guide, "Step Functions events": version, id, detail-type, source, account, time, region,
    resources, and detail with executionArn, stateMachineArn, name, status, startDate, stopDate, input,
    output, error, cause)."""
    arn = execution["executionArn"]
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": STATUS_CHANGE,
        "source": "aws.states",
        "account": arn.split(":")[4],
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [arn],
        "detail": {
            "executionArn": arn,
            "stateMachineArn": execution["stateMachineArn"],
            "name": execution["name"],
            "status": execution["status"],
            "startDate": 1,
            "stopDate": 2,
            "input": execution.get("input", "{}"),
            "output": None,
            "inputDetails": {"included": True},
            "outputDetails": None,
            "error": execution.get("error"),
            "cause": execution.get("cause"),
        },
    }
