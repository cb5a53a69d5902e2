"""The rollout record and its audit entries, as the registry table stores them (rollout.ledger writes them; key
design in registry/table_keys.py) and as the steps, the safety net and the CLI read them.

An audit entry is one decision and its evidence. Its `kind` says what was decided; its id, unique within the
rollout and built only by `AuditEntry.id`, keeps a retried step from recording a decision twice. An entry is
stored flat, as `tessera rollout history --json` shows it: the id, the typed fields and the evidence
(`details`) side by side. Entries recorded before they had kinds are read back from their ids (`_legacy`).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import string
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from rollout.contract import ContractError, Model, Plan, Progress
from rollout.contract.outcomes import Outcome, Verdict


class AuditKind(StrEnum):
    """What an audit entry records."""

    LOCK_TAKEN_OVER = "lock-taken-over"
    PREFLIGHT = "preflight"
    DEPLOY_CANARY = "deploy-canary"
    WARM_UP = "warm-up"
    STEP_WEIGHTS = "step-weights"  # the weights a step set, read back from the load balancer
    JUDGEMENT = "judgement"  # a step's whole bake judged (once per bake extension)
    STEP_ALARM = "step-alarm"  # a watched alarm failed the step
    INTERVALS_FAILED = "intervals-failed"  # consecutive failing analysis intervals failed the step
    CANARY_UNAVAILABLE = "canary-unavailable"  # the canary had traffic and no healthy target
    APPROVAL_REQUESTED = "approval-requested"
    PROMOTE_STABLE = "promote-stable"
    ROLLBACK = "rollback"
    FORCED_UNLOCK = "forced-unlock"  # `tessera rollout unlock --force`, noted on the holder's record


# The ids of kinds recorded more than once per rollout; any other kind's id is its value.
_ID_FORMATS = {
    AuditKind.STEP_WEIGHTS: "step-{step}-weights",
    AuditKind.JUDGEMENT: "step-{step}-judgement-{extension}",
    AuditKind.STEP_ALARM: "step-{step}-alarm",
    AuditKind.INTERVALS_FAILED: "step-{step}-intervals-failed",
    AuditKind.CANARY_UNAVAILABLE: "step-{step}-canary-unavailable",
    AuditKind.FORCED_UNLOCK: "forced-unlock-{at}",
}


def _id_format(kind: AuditKind) -> str:
    return _ID_FORMATS.get(kind, kind.value)


def _id_fields(kind: AuditKind) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(_id_format(kind)) if name]


@dataclass(frozen=True)
class AuditEntry(Model):
    kind: AuditKind
    at: str | None = None  # when it was recorded: the ledger stamps it as it writes
    step: int | None = None  # the rollout step, for a step's entries
    extension: int | None = None  # the bake extension a judgement closed (0: the bake itself)
    verdict: Verdict | None = None
    outcome: Outcome | None = None  # the outcome Rollback recorded
    reasons: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # the evidence, as the step gathered it

    def __post_init__(self) -> None:
        missing = [name for name in _id_fields(self.kind) if getattr(self, name) is None]
        if missing:
            raise ContractError(f"AuditEntry {self.kind}: its id needs {missing}")
        shadowed = sorted(set(self.details) & {"id", *_ENTRY_FIELDS})
        if shadowed:
            raise ContractError(f"AuditEntry {self.kind}: details may not hold the entry's own fields {shadowed}")

    @property
    def id(self) -> str:
        return _id_format(self.kind).format(step=self.step, extension=self.extension, at=self.at)

    def stamped(self, at: str) -> AuditEntry:
        return self if self.at else dataclasses.replace(self, at=at)

    def to_json(self) -> dict[str, Any]:
        plain = super().to_json()
        details = plain.pop("details")
        return {"id": self.id, **{key: value for key, value in plain.items() if value not in (None, [])}, **details}

    @classmethod
    def from_json(cls, data: object, *, where: str = "") -> AuditEntry:
        where = where or cls.__name__
        if not isinstance(data, dict):
            raise ContractError(f"{where}: expected an object, got {type(data).__name__}")
        stored = data if "kind" in data else _legacy(data, where)
        typed = {key: value for key, value in stored.items() if key in _ENTRY_FIELDS}
        details = {key: value for key, value in stored.items() if key not in _ENTRY_FIELDS and key != "id"}
        return super().from_json({**typed, "details": details}, where=where)


_ENTRY_FIELDS = frozenset(item.name for item in dataclasses.fields(AuditEntry)) - {"details"}


def _legacy(entry: dict[str, Any], where: str) -> dict[str, Any]:
    """An entry recorded before entries had kinds: its kind, step, extension (and a forced unlock's moment) are
    read back from its id. Its `step` repeated the id for entries of no step, a rollback kept its outcome under
    `verdict`, and an approval request once carried the task token, which is not shown."""
    kind, from_id = _parse_id(entry.get("id"), where)
    stored = {key: value for key, value in entry.items() if key not in ("step", "task_token")}
    if kind is AuditKind.ROLLBACK and "verdict" in stored:
        stored["outcome"] = stored.pop("verdict")
    return {**stored, **from_id, "kind": kind.value}


def _parse_id(entry_id: object, where: str) -> tuple[AuditKind, dict[str, Any]]:
    for kind, pattern in _id_patterns():
        found = pattern.fullmatch(entry_id) if isinstance(entry_id, str) else None
        if found:
            return kind, {name: int(value) if value.isdigit() else value for name, value in found.groupdict().items()}
    raise ContractError(f"{where}: an entry without a kind and with an unknown id {entry_id!r}")


@functools.cache
def _id_patterns() -> list[tuple[AuditKind, re.Pattern[str]]]:
    """Each kind's id format as a pattern: the inverse of AuditEntry.id."""
    patterns = []
    for kind in AuditKind:
        pattern = ""
        for literal, name, _, _ in string.Formatter().parse(_id_format(kind)):
            pattern += re.escape(literal)
            if name:
                pattern += rf"(?P<{name}>.+)" if name == "at" else rf"(?P<{name}>\d+)"
        patterns.append((kind, re.compile(pattern)))
    return patterns


@dataclass(frozen=True)
class RolloutRecord(Model):
    """One rollout's record (`sk = ROLLOUT#<start>#<execution id>`): what it rolls out, where it is, how it ended,
    and the audit entries of its decisions."""

    execution: str
    version: str
    previous: str | None  # stable's version when the rollout started
    status: Outcome
    started_at: str
    steps: list[int]
    plan: Plan
    decisions: list[AuditEntry] = field(default_factory=list)
    decision_ids: list[str] = field(default_factory=list)
    progress: Progress | None = None
    progress_at: str | None = None
    approval_token: str | None = None
    approval_requested_at: str | None = None
    finished_at: str | None = None
    reason: str | None = None
    left_to_undo: str | None = None

    def entries(self, kind: AuditKind) -> list[AuditEntry]:
        return [entry for entry in self.decisions if entry.kind is kind]

    @property
    def awaiting_approval(self) -> bool:
        """An approval task waits on the recorded token: approval was requested and promotion has not begun."""
        requested = bool(self.entries(AuditKind.APPROVAL_REQUESTED))
        return bool(self.approval_token) and requested and not self.entries(AuditKind.PROMOTE_STABLE)
