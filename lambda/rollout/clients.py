"""The clients every rollout step, clean-up and the safety net use, built once per execution environment (see
rollout.handler), and the version history entries a rollout adds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from registry.store import RegistryStore
from rollout.contract import Plan
from rollout.kube.client import KubeClient
from rollout.ledger import Ledger
from rollout.metrics import PercentileReader
from rollout.notify import Announcer


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
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def now(self) -> datetime:
        return self.clock()

    @property
    def announcer(self) -> Announcer:
        return Announcer(self.ledger, self.sns, self.topic_arn)


def record_lifecycle(clients: Clients, plan: Plan, kind: str, detail: dict) -> None:
    """Add one event of this rollout to the version's history (once, whatever the retries)."""
    key = f"{plan.execution.rsplit(':', 1)[-1]}#{kind}"
    clients.store.record_lifecycle_event(
        plan.service, plan.version, kind, {"execution": plan.execution, **detail}, key=key
    )
