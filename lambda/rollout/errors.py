"""Errors the rollout steps raise. Step Functions retries TransientError with backoff; any other
error sends the execution to roll back."""

from __future__ import annotations


class TransientError(Exception):
    """Throttling or a 5xx from AWS or the Kubernetes API: worth retrying."""


class RolloutError(Exception):
    """A step cannot succeed: the rollout must roll back."""


class RolloutInProgressError(Exception):
    """Another rollout holds the service's lock; this one is refused before it changes anything."""
