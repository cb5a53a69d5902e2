"""The clients every rollout step, clean-up and the safety net use, built once per execution environment (see
rollout.handler), and the version history entries a rollout adds."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from registry.store import RegistryStore
from rollout.contract import Plan, RuntimeMetrics
from rollout.kube.client import KubeClient
from rollout.ledger import Ledger
from rollout.metrics import PercentileReader
from rollout.notify import Announcer
from rollout.prometheus import PrometheusReader, aws_prometheus


@dataclass
class Clients:
    ledger: Ledger
    store: RegistryStore
    ecr: Any
    elbv2: Any
    cloudwatch: Any
    sns: Any
    ssm: Any
    stepfunctions: Any
    kube: KubeClient
    percentiles: PercentileReader
    topic_arn: str
    settings_prefix: str
    cluster_name: str  # this environment's: the owner tag of its load balancer and target groups
    settle: SettleScheduler
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # The reader of a plan's Prometheus workspace (the serving runtime's figures): SigV4 over HTTPS.
    prometheus: Callable[[RuntimeMetrics], PrometheusReader] = aws_prometheus

    def now(self) -> datetime:
        return self.clock()

    @property
    def announcer(self) -> Announcer:
        return Announcer(self.ledger, self.sns, self.topic_arn)


class SettleScheduler(Protocol):
    """Runs the safety net's second pass for a stopped execution once it is quiescent."""

    def later(self, message: dict[str, Any], *, not_before: datetime) -> None: ...


class SqsSettleScheduler:
    """The second pass as a message on the settle queue, delayed until the execution is quiescent (SQS delays a
    message up to 15 minutes; QUIESCENCE_SECONDS is well below)."""

    def __init__(self, sqs: Any, queue_url: str, clock: Callable[[], datetime]) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._clock = clock

    def later(self, message: dict[str, Any], *, not_before: datetime) -> None:
        delay = math.ceil((not_before - self._clock()).total_seconds())
        self._sqs.send_message(
            QueueUrl=self._queue_url, MessageBody=json.dumps(message), DelaySeconds=max(0, min(900, delay))
        )


def record_lifecycle(clients: Clients, plan: Plan, kind: str, detail: dict[str, Any]) -> None:
    """Add one event of this rollout to the version's history (once, whatever the retries)."""
    key = f"{plan.execution.rsplit(':', 1)[-1]}#{kind}"
    clients.store.record_lifecycle_event(
        plan.service, plan.version, kind, {"execution": plan.execution, **detail}, key=key
    )
