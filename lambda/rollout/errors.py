"""Errors the rollout steps raise. Their class names are the error names the state machine sees.

Step Functions retries TransientError (and CleanupIncompleteError, in Rollback) with backoff; any other
error sends the execution to roll back.
"""

from __future__ import annotations


class TransientError(Exception):
    """Throttling or a 5xx from AWS or the Kubernetes API: worth retrying."""


class RolloutError(Exception):
    """A step cannot succeed: the rollout must roll back."""


class RolloutInProgressError(Exception):
    """Another rollout holds the service's lock; this one is refused before it changes anything."""


class StartRefusedError(Exception):
    """The request cannot start: an unknown service, invalid overrides, a policy that runs too long."""


class LockLostError(RolloutError):
    """This execution no longer holds the service's lock: it must not touch the service again."""


class AbortRequestedError(Exception):
    """An operator asked the rollout to stop (`tessera rollout abort`)."""


class CleanupIncompleteError(Exception):
    """Rollback could not restore everything yet; the message lists what is left."""


class WatchedAlarmError(RolloutError):
    """A watched alarm went into ALARM during the bake. The service's alarms cover both tracks (and its pods,
    nodes, load balancer): not a verdict on the canary's own figures, so the version stays startable."""


class CanaryInconclusiveError(RolloutError):
    """The bake ended short of data after every extension: no verdict on the version, which stays startable."""


class CanaryUnavailableError(RolloutError):
    """The canary has traffic but no healthy target (its pods evicted, Pending, or failing health checks): users
    get load balancer errors that no judgement reads, so the step stops at once."""
