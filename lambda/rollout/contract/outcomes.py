"""The judge's verdicts and a rollout's outcomes as types. Their values are the strings stored in the registry
table, sent in notifications and compared by the state machine's Choice states, so they never change."""

from __future__ import annotations

from enum import StrEnum

from tessera_shared import constants


class Verdict(StrEnum):
    """A judgement of the canary. Missing data is never healthy: NOT_ENOUGH_DATA, never PASS."""

    PASS = "PASS"  # noqa: S105 - a verdict, not a password
    FAIL = "FAIL"
    NOT_ENOUGH_DATA = "NOT_ENOUGH_DATA"
    INCONCLUSIVE = "INCONCLUSIVE"  # still not enough data after every bake extension: no verdict on the version


class Outcome(StrEnum):
    """How a rollout ended (RUNNING until it has): its record's status and its notification."""

    RUNNING = constants.RUNNING
    PROMOTED = constants.PROMOTED
    ROLLED_BACK = constants.ROLLED_BACK
    FAILED = constants.FAILED
    ABORTED = constants.ABORTED
    TIMED_OUT = constants.TIMED_OUT
    NEEDS_OPERATOR = constants.NEEDS_OPERATOR
    REFUSED = "REFUSED"  # refused before it took the lock: announced, never recorded
