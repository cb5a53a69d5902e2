"""The registry table's key design, and the functions that build every key.

One table; string keys `pk` and `sk`; `expires_at` is the TTL attribute. Every item of a service
lives in the partition `pk = SERVICE#<service>`:

- model version, `sk = VERSION#<version>`: one version by GetItem; every version of the service's
  model by Query with `begins_with(sk, "VERSION#")`. Holds the state (REGISTERED, REJECTED, ...),
  the manifest digest, compile target and rejection reasons.
- version event, `sk = EVENT#<version>#<iso time>#<kind>`: the history of a version (registered,
  rejected, promoted, rolled back), read by Query with `begins_with(sk, "EVENT#<version>#")`.
- pointer, `sk = POINTER`: the service's current stable and canary versions.
- rollout lock, `sk = LOCK`: at most one rollout per service (conditional put).
- rollout record, `sk = ROLLOUT#<iso start time>#<execution id>`: the service's rollout history in
  time order, with the audit record of every decision the rollout took.
- notice, `sk = NOTICE#<execution id>`: claimed (conditional put) by whichever path announces an
  execution's outcome, so that every outcome is announced once; `expires_at` lets TTL remove it.

Every access pattern is a GetItem or a Query on one service's partition, so no index is needed.
The Artifacts stack creates the table; the register function, the rollout function and the CLI
read and write it through these keys only.
"""

from __future__ import annotations

VERSION_PREFIX = "VERSION#"
EVENT_PREFIX = "EVENT#"
ROLLOUT_PREFIX = "ROLLOUT#"
POINTER_KEY = "POINTER"
LOCK_KEY = "LOCK"
NOTICE_PREFIX = "NOTICE#"


def partition(service: str) -> str:
    return f"SERVICE#{service}"


def version_key(version: str) -> str:
    return f"{VERSION_PREFIX}{version}"


def event_prefix(version: str) -> str:
    return f"{EVENT_PREFIX}{version}#"


def event_key(version: str, suffix: str) -> str:
    """`suffix` orders the version's events (it starts with the event's ISO time) and keeps them apart."""
    return f"{event_prefix(version)}{suffix}"


def rollout_key(started_at: str, execution: str) -> str:
    return f"{ROLLOUT_PREFIX}{started_at}#{execution.rsplit(':', 1)[-1]}"


def notice_key(execution: str) -> str:
    return f"{NOTICE_PREFIX}{execution.rsplit(':', 1)[-1]}"
