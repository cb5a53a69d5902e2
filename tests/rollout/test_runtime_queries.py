"""The PromQL Tessera writes (tessera_shared.runtime_metrics): every query of the judge and of KEDA's queue triggers
parses with promql-parser (a port of Prometheus's own parser), selects one track's series, and reads the right
figures from the Prometheus double's generated histograms; the double's histogram_quantile is Prometheus's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import promql_parser as promql
import pytest
from botocore.credentials import Credentials

from rollout.contract import RuntimeMetrics
from rollout.prometheus import Sample, SigV4Prometheus
from rollout.runtime_figures import read_runtime_stats
from tessera_shared.runtime_metrics import (
    VLLM,
    count_query,
    increase_by_query,
    kv_cache_percent_query,
    quantile_query,
    queue_query,
    track_selector,
)
from tests.rollout.prometheus_double import PrometheusApiDouble, RuntimeMinute, ServingRuntimeDouble

REGION = "us-east-1"
START = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
SELECTOR = track_selector("inference", "assistant", "canary")
CANARY = {"namespace": "inference", "service": "assistant", "track": "canary"}


class RecordingReader:
    def __init__(self) -> None:
        self.queries: list[str] = []

    def query(self, promql_text: str, *, at: datetime) -> list[Sample]:
        self.queries.append(promql_text)
        return []


def judge_queries() -> list[str]:
    recording = RecordingReader()
    read_runtime_stats(
        recording,
        VLLM,
        namespace="inference",
        service="assistant",
        track="canary",
        start=START,
        end=START + timedelta(minutes=1),
    )
    return recording.queries


def all_queries() -> list[str]:
    stable = track_selector("inference", "assistant", "stable")
    return [*judge_queries(), queue_query(VLLM, stable), kv_cache_percent_query(VLLM, stable)]


def _selectors(expression: object) -> list[promql.VectorSelector]:
    found: list[promql.VectorSelector] = []

    def visit(node: object) -> None:
        if isinstance(node, promql.VectorSelector):
            found.append(node)
        elif isinstance(node, promql.MatrixSelector):
            found.append(node.vector_selector)
        for child in ("expr", "lhs", "rhs"):
            if hasattr(node, child):
                visit(getattr(node, child))
        for argument in getattr(node, "args", []) or []:
            visit(argument)

    visit(expression)
    return found


@pytest.mark.parametrize("query", all_queries())
def test_every_query_parses_and_selects_one_tracks_series_of_the_runtime(query: str) -> None:
    expression = promql.parse(query)
    [selector] = _selectors(expression)
    assert selector.name.startswith("vllm:")
    matchers = {(m.name, str(m.op), m.value) for m in selector.matchers.matchers}
    assert {name for name, _, _ in matchers} == {"namespace", "service", "track"}
    assert all(op == str(promql.MatchOp.Equal) for _, op, _ in matchers)


def test_the_parser_refuses_what_prometheus_would() -> None:
    """The syntax check can fail: a query with a stray parenthesis or an unknown function is refused."""
    for broken in ("sum(increase(x[60s])", "histogram_quantil(0.9, x)", "sum by le (x)"):
        with pytest.raises(Exception):  # noqa: B017, PT011 - promql-parser raises its own error type
            promql.parse(broken)


@pytest.mark.parametrize(
    ("name", "value"), [("service", 'a",track=~".*'), ("track", "canary}"), ("namespace", ""), ("service", "A" * 64)]
)
def test_a_label_value_that_is_not_a_kubernetes_name_is_refused_not_written_into_promql(name: str, value: str) -> None:
    values = {"namespace": "inference", "service": "assistant", "track": "canary", name: value}
    with pytest.raises(ValueError, match="is not a Kubernetes name"):
        track_selector(**values)


def double() -> PrometheusApiDouble:
    return PrometheusApiDouble(region=REGION)


def reader(prometheus: PrometheusApiDouble) -> SigV4Prometheus:
    source = RuntimeMetrics(query_url=f"{prometheus.endpoint}api/v1/query", region=REGION)
    return SigV4Prometheus(source, credentials=lambda: Credentials("AKID", "secret"), transport=prometheus)


def test_histogram_quantile_interpolates_within_the_bucket_as_prometheus_does() -> None:
    prometheus = double()
    at = START + timedelta(minutes=1)
    for bound, count in (("1.0", 10), ("2.0", 20), ("+Inf", 20)):
        prometheus.add("h_bucket", {"track": "canary", "le": bound}, START, 0)
        prometheus.add("h_bucket", {"track": "canary", "le": bound}, at, count)
    query = reader(prometheus)

    def quantile(q: float) -> float:
        [sample] = query.query(
            f'histogram_quantile({q}, sum by (le) (increase(h_bucket{{track="canary"}}[60s])))', at=at
        )
        return sample.value

    assert quantile(0.5) == 1.0  # rank 10: the top of the first bucket
    assert quantile(0.75) == 1.5  # rank 15: halfway through (1, 2]
    assert quantile(0.99) == pytest.approx(1.98)
    [empty] = query.query('histogram_quantile(0.5, sum by (le) (increase(h_bucket{track="canary"}[60s])))', at=START)
    assert empty.value != empty.value  # no observations in the window: NaN


def test_the_double_answers_an_unsupported_query_with_a_400_not_a_made_up_figure() -> None:
    from rollout.errors import RolloutError

    with pytest.raises(RolloutError, match="double: function rate"):
        reader(double()).query('sum(rate(x{track="canary"}[60s]))', at=START)


def test_the_judges_figures_are_read_from_the_runtimes_histograms_and_counters() -> None:
    prometheus = double()
    runtime = ServingRuntimeDouble(prometheus, namespace="inference", service="assistant", pods={"canary": 2})
    for minute in range(3):
        runtime.observe("canary", START + timedelta(minutes=minute + 1), RuntimeMinute(1000, 0.4, 0.03, 200, 5))
    # The other track's series and the minute before the window are not the window's.
    runtime.observe("stable", START + timedelta(minutes=3), RuntimeMinute(1000, 4.0, 0.3, 200, 500))

    stats = read_runtime_stats(
        reader(prometheus),
        VLLM,
        namespace="inference",
        service="assistant",
        track="canary",
        start=START + timedelta(minutes=1),
        end=START + timedelta(minutes=3),
    )
    assert stats.samples == 2000
    assert (stats.finished, stats.errors) == (2000, 10)
    assert stats.output_tokens == 400_000
    assert stats.pods == 2
    assert stats.tokens_per_second_per_pod == pytest.approx(400_000 / 120 / 2)
    # Log-normal around 0.4 s with sigma 0.35: p50 0.4 s, p99 0.9 s, in vLLM's (0.25, 0.5] and (0.75, 1] buckets.
    assert 0.25 < stats.ttft_p50_seconds < 0.5
    assert 0.75 < stats.ttft_p99_seconds <= 1.0
    assert stats.tpot_p99_seconds is not None
    assert stats.tpot_p99_seconds < 0.1
    assert stats.e2e_p99_seconds is not None
    assert stats.e2e_p99_seconds > stats.ttft_p99_seconds


def test_a_window_without_observations_has_no_quantiles_and_no_samples() -> None:
    stats = read_runtime_stats(
        reader(double()),
        VLLM,
        namespace="inference",
        service="assistant",
        track="canary",
        start=START,
        end=START + timedelta(minutes=1),
    )
    assert (stats.samples, stats.finished, stats.pods) == (0, 0, 0)
    assert stats.ttft_p99_seconds is None
    assert stats.error_rate is None


def test_the_queries_cover_the_window_they_are_evaluated_at_the_end_of() -> None:
    assert f"[{120}s]" in count_query(VLLM.ttft, SELECTOR, 120)
    assert quantile_query(0.99, VLLM.ttft, SELECTOR, 60).startswith("histogram_quantile(0.99, ")
    assert increase_by_query(VLLM.output_tokens, "pod", SELECTOR, 60).startswith("sum by (pod) (increase(")
    with pytest.raises(ValueError, match="between 0 and 1"):
        quantile_query(1.5, VLLM.ttft, SELECTOR, 60)
