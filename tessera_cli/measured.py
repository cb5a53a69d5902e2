"""What past rollouts measured a canary serving on a target: requests, and for an LLM service output tokens, per
pod-hour, pooled over every whole-bake judgement that recorded the canary's target and cost (`tessera cost`
prices a target from these)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from rollout.contract.records import AuditEntry

Counted = Literal["requests", "output_tokens"]


def measured_throughput(judgements: Iterable[AuditEntry], target: str, *, per: Counted = "requests") -> float | None:
    """`per` (the canary's requests, or the output tokens its serving runtime generated) per pod-hour the canary
    served on `target` (the pool's name, as the judge records the target a track ran on). A judgement without the
    count (recorded before cost was, or of a service without runtime metrics) is left out."""
    counted, pod_hours = 0.0, 0.0
    for judgement in judgements:
        canary = judgement.details.get("canary") or {}
        cost = canary.get("cost") or {}
        count = cost.get("requests") if per == "requests" else (canary.get("runtime") or {}).get("output_tokens")
        if canary.get("target") != target or count is None or not cost.get("pods") or not cost.get("hours"):
            continue
        counted += float(count)
        pod_hours += float(cost["pods"]) * float(cost["hours"])
    return counted / pod_hours if pod_hours and counted else None
