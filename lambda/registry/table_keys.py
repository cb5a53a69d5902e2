"""The registry table's key design, and the functions that build every key.

One table; string keys `pk` and `sk`; `expires_at` is the TTL attribute. Every item of a service
lives in the partition `pk = SERVICE#<service>`:

- model version, `sk = VERSION#<version>`: one version by GetItem; every version of the service's
  model by Query with `begins_with(sk, "VERSION#")`. Holds the state (REGISTERED, REJECTED, ...),
  the manifest digest, compile target and rejection reasons.
- model version, fields: `state`, `digest` (of the manifest), `image` (repository:tag) and
  `image_digest` (sha256:..., what the rollout deploys), `attempts`, `deployed` (set once the version
  reached a canary or stable: from then on it is never re-registered), `announced` (set once EventBridge
  accepted the registration announcement).
- version event, `sk = EVENT#<version>#<iso time>#<kind>`: the history of a version (registered,
  rejected, conflict, deployed-canary, promoted, rolled-back, rollout-failed), read by Query with
  `begins_with(sk, "EVENT#<version>#")`.
- event guard, `sk = ONCE#<version>#<key>`: written in the same transaction as an event recorded
  with an idempotency key, so that a retried step records its event once.
- pointer, `sk = POINTER`: the service's current stable and canary versions.
- rollout lock, `sk = LOCK`: at most one rollout per service (conditional put).
- rollout record, `sk = ROLLOUT#<iso start time>#<execution id>`: the service's rollout history in
  time order (the newest by a Query on `ROLLOUT#`, newest first, limit 1), with the audit entries of the
  decisions a rollout takes once (rollout.contract.records). What a rollout writes per step, per bake
  extension or per analysis interval is an item of its own (the three below), so the record does not grow
  with the policy's steps, bakes and extensions and stays below DynamoDB's 400 KB item limit (Prepare
  checks the record's largest size under the plan, rollout.record_size).
- execution, `sk = EXECUTION#<execution id>`: the sort key of that execution's rollout record, written in the
  lock's transaction with the record, so that the safety net (which knows an execution, not its start time) reads
  the record by key.
- step weights, `sk = WEIGHTS#<iso start time>#<execution id>#<step:03d>`: the audit entry of the weights
  a step set, read back from the load balancer; the rollout's by a Query on its prefix.
- whole-bake judgement, `sk = JUDGEMENT#<iso start time>#<execution id>#<step:03d>#<extension:03d>`: the
  audit entry of a step's bake judged (both tracks' figures and cost, the thresholds, the verdict), one per
  bake extension; the rollout's last by a Query on its prefix, newest first, limit 1; every judgement of
  the service's rollouts (the throughput `tessera cost` pools) by a Query on `JUDGEMENT#`.
- analysis interval, `sk = INTERVAL#<iso start time>#<execution id>#<step:03d>#<interval:06d>`: the
  figures and verdict of one analysis interval of a rollout's bake; the last one by a Query on the
  rollout's prefix, newest first, limit 1.
- notice, `sk = NOTICE#<execution id>`: claimed (conditional put) by whichever path announces an
  execution's outcome, so that every outcome is announced once; `expires_at` lets TTL remove it.

A retried step overwrites its weights, judgement or interval item: the last write is the one whose outcome
the rollout kept.

Uploads the register function could not place (unknown service, malformed key) are kept for
`tessera models ignored` in one partition, `pk = IGNORED`, `sk = <iso time>#<event id>`, with
`expires_at` set, so TTL clears them after a few days.

Every access pattern is a GetItem or a Query on one partition, so no index is needed.
The Artifacts stack creates the table; the register function, the rollout function and the CLI
read and write it through these keys only.
"""

from __future__ import annotations

import hashlib

VERSION_PREFIX = "VERSION#"
EVENT_PREFIX = "EVENT#"
ROLLOUT_PREFIX = "ROLLOUT#"
ONCE_PREFIX = "ONCE#"
IGNORED_PARTITION = "IGNORED"
POINTER_KEY = "POINTER"
LOCK_KEY = "LOCK"
NOTICE_PREFIX = "NOTICE#"
EXECUTION_PREFIX = "EXECUTION#"
INTERVAL_PREFIX = "INTERVAL#"
JUDGEMENT_PREFIX = "JUDGEMENT#"
WEIGHTS_PREFIX = "WEIGHTS#"
MAX_EVENT_ID_BYTES = 256


def partition(service: str) -> str:
    return f"SERVICE#{service}"


def version_key(version: str) -> str:
    return f"{VERSION_PREFIX}{version}"


def event_prefix(version: str) -> str:
    return f"{EVENT_PREFIX}{version}#"


def event_key(version: str, suffix: str) -> str:
    """`suffix` orders the version's events (it starts with the event's ISO time) and keeps them apart."""
    return f"{event_prefix(version)}{suffix}"


def once_key(version: str, key: str) -> str:
    return f"{ONCE_PREFIX}{version}#{key}"


def ignored_key(at: str, event_id: str) -> str:
    """An event id is whatever the caller sent: a long one is replaced by its SHA-256, so that the key
    stays under DynamoDB's 1,024-byte sort key limit."""
    if len(event_id.encode()) > MAX_EVENT_ID_BYTES:
        event_id = "sha256:" + hashlib.sha256(event_id.encode()).hexdigest()
    return f"{at}#{event_id}"


def rollout_key(started_at: str, execution: str) -> str:
    return f"{ROLLOUT_PREFIX}{started_at}#{execution.rsplit(':', 1)[-1]}"


def _of_rollout(prefix: str, started_at: str, execution: str) -> str:
    """The sort key prefix of one rollout's items of a kind: in the rollout's time order, then its own."""
    return f"{prefix}{started_at}#{execution.rsplit(':', 1)[-1]}#"


def interval_prefix(started_at: str, execution: str) -> str:
    return _of_rollout(INTERVAL_PREFIX, started_at, execution)


def interval_key(started_at: str, execution: str, step: int, index: int) -> str:
    return f"{interval_prefix(started_at, execution)}{step:03d}#{index:06d}"


def judgement_prefix(started_at: str, execution: str) -> str:
    return _of_rollout(JUDGEMENT_PREFIX, started_at, execution)


def judgement_key(started_at: str, execution: str, step: int, extension: int) -> str:
    return f"{judgement_prefix(started_at, execution)}{step:03d}#{extension:03d}"


def weights_prefix(started_at: str, execution: str) -> str:
    return _of_rollout(WEIGHTS_PREFIX, started_at, execution)


def weights_key(started_at: str, execution: str, step: int) -> str:
    return f"{weights_prefix(started_at, execution)}{step:03d}"


def execution_key(execution: str) -> str:
    """The item naming an execution's rollout record (its sort key), written with the record: the safety net knows
    an execution, not when its rollout started."""
    return f"{EXECUTION_PREFIX}{execution.rsplit(':', 1)[-1]}"


def notice_key(execution: str) -> str:
    return f"{NOTICE_PREFIX}{execution.rsplit(':', 1)[-1]}"
