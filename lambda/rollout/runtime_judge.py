"""Judges a canary on its serving runtime's own figures (rollout.runtime_figures reads them): time to first token,
time per output token, end-to-end latency and the runtime's errors. Pure, like rollout.judge, which calls it for a
plan with runtime metrics.

The load balancer's response time ends with the response headers, before a streamed answer's first token, so these
are the figures an LLM's users feel. Too few measured requests is not enough data, never a pass; relative rules
compare with stable only when stable measured as many (a near-idle stable's quantiles are noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rollout.checks import Check, Collector


@dataclass(frozen=True)
class RuntimePolicy:
    """The runtime rules of the plan's `contract.Analysis` for one window (built by rollout.steps.analysis); their
    bounds are rollout.policy_fields'. `max_error_rate` is a fraction."""

    max_ttft_p99_seconds: float
    max_ttft_p50_ratio_vs_stable: float
    max_ttft_p99_ratio_vs_stable: float
    max_tpot_p99_ratio_vs_stable: float
    max_e2e_p99_ratio_vs_stable: float
    max_error_rate: float
    min_samples: int


@dataclass(frozen=True)
class RuntimeStats:
    """One track's runtime figures over a window; a quantile is None when the runtime measured nothing."""

    samples: int  # requests whose first token the runtime measured
    ttft_p50_seconds: float | None
    ttft_p99_seconds: float | None
    tpot_p99_seconds: float | None
    e2e_p99_seconds: float | None
    finished: int  # requests the runtime finished, for whatever reason
    errors: int  # of which it ended in error
    output_tokens: int
    pods: int  # pods that reported output tokens
    window_seconds: float

    def __post_init__(self) -> None:
        counts = (self.samples, self.finished, self.errors, self.output_tokens, self.pods)
        if min(counts) < 0:
            raise ValueError(f"runtime counts must not be negative, got {counts}")
        for name in ("ttft_p50_seconds", "ttft_p99_seconds", "tpot_p99_seconds", "e2e_p99_seconds"):
            value = getattr(self, name)
            if value is not None and (math.isnan(value) or value < 0):
                raise ValueError(f"{name} must be a non-negative number or None, got {value}")
        if not self.window_seconds > 0:
            raise ValueError(f"window_seconds must be positive, got {self.window_seconds}")

    @property
    def error_rate(self) -> float | None:
        return min(1.0, self.errors / self.finished) if self.finished else None

    @property
    def tokens_per_second_per_pod(self) -> float | None:
        return self.output_tokens / self.window_seconds / self.pods if self.pods else None

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "samples": self.samples,
            "ttft_p50_seconds": self.ttft_p50_seconds,
            "ttft_p99_seconds": self.ttft_p99_seconds,
            "tpot_p99_seconds": self.tpot_p99_seconds,
            "e2e_p99_seconds": self.e2e_p99_seconds,
            "finished": self.finished,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "output_tokens": self.output_tokens,
            "pods": self.pods,
            "tokens_per_second_per_pod": self.tokens_per_second_per_pod,
        }


# (figure, the check's name, what it measures) of the rules relative to stable.
_RELATIVE = (
    ("ttft_p50_seconds", "max_ttft_p50_ratio_vs_stable", "p50 time to first token"),
    ("ttft_p99_seconds", "max_ttft_p99_ratio_vs_stable", "p99 time to first token"),
    ("tpot_p99_seconds", "max_tpot_p99_ratio_vs_stable", "p99 time per output token"),
    ("e2e_p99_seconds", "max_e2e_p99_ratio_vs_stable", "p99 end-to-end latency"),
)


def judge_runtime(
    policy: RuntimePolicy, canary: RuntimeStats | None, stable: RuntimeStats | None, result: Collector
) -> None:
    """Adds the runtime checks to `result`."""
    min_samples = max(policy.min_samples, 1)
    if canary is None or canary.samples < min_samples:
        measured = 0 if canary is None else canary.samples
        result.missing_value(
            "runtime_samples",
            f"the canary's runtime measured {measured} requests, fewer than the {min_samples} its figures need",
        )
        return
    result.add(Check("runtime_samples", canary.samples, min_samples, True), "")
    _error_rate(policy, canary, result)
    ttft_p99 = canary.ttft_p99_seconds
    if ttft_p99 is None:
        result.missing_value("ttft_p99_seconds", "the canary's runtime has no p99 time to first token in the window")
    else:
        ceiling = policy.max_ttft_p99_seconds
        result.add(
            Check("ttft_p99_seconds", ttft_p99, ceiling, ttft_p99 <= ceiling),
            f"canary p99 time to first token {ttft_p99:.4g}s exceeds {ceiling:.4g}s",
        )
    stable_measured = stable is not None and stable.samples >= min_samples
    if not stable_measured:
        result.notes.append(
            f"stable's runtime measured {0 if stable is None else stable.samples} requests: runtime comparisons "
            "with stable were skipped"
        )
    for figure, rule, meaning in _RELATIVE:
        value = getattr(canary, figure)
        name = f"{figure}_vs_stable"
        if value is None:
            result.missing_value(name, f"the canary's runtime has no {meaning} in the window")
            continue
        stable_value = getattr(stable, figure) if stable_measured and stable is not None else None
        if stable_value is None:
            result.checks.append(Check(name, value, None, None))
            continue
        ratio = getattr(policy, rule)
        limit = stable_value * ratio
        result.add(
            Check(name, value, limit, value <= limit),
            f"canary {meaning} {value:.4g}s exceeds {ratio:g} x stable {stable_value:.4g}s = {limit:.4g}s",
        )


def _error_rate(policy: RuntimePolicy, canary: RuntimeStats, result: Collector) -> None:
    rate = canary.error_rate
    if rate is None:
        result.missing_value("runtime_error_rate", "the canary's runtime finished no request in the window")
        return
    limit = policy.max_error_rate
    result.add(
        Check("runtime_error_rate", rate, limit, rate <= limit),
        f"canary runtime error rate {rate * 100:.2f}% ({canary.errors} of {canary.finished}) "
        f"exceeds {limit * 100:.2f}%",
    )
