"""A judgement's checks and how they add up to a verdict: FAIL wins over NOT_ENOUGH_DATA, which wins over PASS.
Shared by the load balancer rules (rollout.judge) and the serving runtime's (rollout.runtime_judge)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollout.contract.outcomes import Verdict


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None
    limit: float | None
    passed: bool | None  # None = not evaluated (no data)


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    reasons: tuple[str, ...]
    checks: tuple[Check, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form for the audit record."""
        return {
            "verdict": self.verdict.value,
            "reasons": list(self.reasons),
            "checks": [
                {"name": check.name, "value": check.value, "limit": check.limit, "passed": check.passed}
                for check in self.checks
            ],
        }


class Collector:
    """Gathers checks and sorts their reasons by the verdict they argue for."""

    def __init__(self) -> None:
        self.checks: list[Check] = []
        self.failures: list[str] = []
        self.missing: list[str] = []
        self.notes: list[str] = []

    def add(self, check: Check, reason: str) -> None:
        """Records a check; reason explains it if it failed or had no data."""
        self.checks.append(check)
        if check.passed is False:
            self.failures.append(reason)

    def missing_value(self, name: str, reason: str) -> None:
        self.checks.append(Check(name, None, None, None))
        self.missing.append(reason)

    def judgement(self, requests: int) -> Judgement:
        checks = tuple(self.checks)
        if self.failures:
            return Judgement(Verdict.FAIL, tuple(self.failures), checks)
        if self.missing:
            return Judgement(Verdict.NOT_ENOUGH_DATA, tuple(self.missing), checks)
        passed = sum(1 for check in checks if check.passed)
        return Judgement(Verdict.PASS, (f"canary passed {passed} checks over {requests} requests", *self.notes), checks)
