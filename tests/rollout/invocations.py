"""What each invocation of the rollout function called, recorded in a whole rollout: its Kubernetes requests (as
the API double received them), its AWS API calls (botocore's before-call event of each client), and whether the
service's lock existed as it started. The fault matrix reads from a rollout without faults where each fault
class has something to strike."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from botocore import xform_name

from tests.rollout.harness import RolloutWorld

SERVICE = "assistant"
# Reads of the pods and nodes a track runs on: the judge's cost evidence, which it may go without (docs/rollouts.md,
# "Continuous judgement": a cluster the rollout cannot read leaves no figure and the judgement goes on).
EVIDENCE_READ = re.compile(r"^GET /api/v1/(namespaces/[^/]+/pods|nodes)(\?|$)")


@dataclass(frozen=True)
class Invocation:
    action: str
    lock_held: bool  # the service's lock existed as the invocation started
    kube_requests: tuple[str, ...]  # "PUT /apis/apps/v1/namespaces/inference/deployments/assistant-canary"
    aws_calls: tuple[str, ...]  # "elbv2.modify_rule", "dynamodb.put_item"


def is_evidence_read(request: str) -> bool:
    return EVIDENCE_READ.match(request) is not None


@dataclass
class InvocationRecorder:
    """Records every invocation of `world`'s rollout function from now on (install it last: it wraps the
    invocation as the state machine makes it, whatever fault or approval wraps it inside)."""

    world: RolloutWorld
    invocations: list[Invocation] = field(default_factory=list)
    _aws_calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        world = self.world
        clients = {
            "dynamodb": world.dynamodb,
            "ecr": world.clients.ecr,
            "elbv2": world.clients.elbv2,
            "cloudwatch": world.clients.cloudwatch,
            "sns": world.clients.sns,
            "ssm": world.clients.ssm,
            "stepfunctions": world.clients.stepfunctions,
        }
        for label, client in clients.items():
            client.meta.events.register("before-call", self._on_aws_call(label))
        self._invoke = world.invoke_action
        world.invoke_action = self._record  # type: ignore[method-assign]

    def _on_aws_call(self, label: str) -> Any:
        def record(model: Any, **_: Any) -> None:
            self._aws_calls.append(f"{label}.{xform_name(model.name)}")

        return record

    def _record(self, event: dict) -> dict:
        world = self.world
        lock_held = world.clients.ledger.locks.holder(SERVICE) is not None
        first_request, first_call = len(world.kube.requests), len(self._aws_calls)
        try:
            return self._invoke(event)
        finally:
            self.invocations.append(
                Invocation(
                    action=event.get("action", ""),
                    lock_held=lock_held,
                    kube_requests=tuple(f"{method} {path}" for method, path in world.kube.requests[first_request:]),
                    aws_calls=tuple(self._aws_calls[first_call:]),
                )
            )
