"""Test double of an Amazon Managed Service for Prometheus workspace's query API, and of the serving runtime whose
metrics the managed collector stores there.

`PrometheusApiDouble` is the transport of the real SigV4 client (rollout.prometheus.SigV4Prometheus): it receives
the signed request, refuses one without a SigV4 Authorization header as the workspace does (403), parses the query
with promql-parser (the Rust port of Prometheus's parser; a query it cannot parse is a 400 `bad_data`, as from
Prometheus) and evaluates the subset of PromQL Tessera writes: `increase()` over a range, `sum`/`avg`/`count` with
or without `by`, `histogram_quantile` (Prometheus's bucket interpolation), a vector selector with the 5-minute
lookback, and a vector times a number. Anything else is a 400 naming what the double does not evaluate, so a new
query cannot silently get an answer the real service would not give.

Simplified on purpose: `increase()` is the difference of the cumulative counters at the window's ends (each track's
counters are stored at whole minutes, which the judged windows align to), without Prometheus's extrapolation.

`ServingRuntimeDouble` plays vLLM's histograms and counters per pod: each minute a track serves, its requests land
in `vllm:time_to_first_token_seconds`, `vllm:inter_token_latency_seconds` and `vllm:e2e_request_latency_seconds`
from a log-normal distribution around the minute's median (bucket counts from the distribution's CDF, so runs are
deterministic), with the series labels the collector's relabelling adds.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qs
from urllib.request import Request

import promql_parser as promql

from rollout.prometheus import HttpAnswer
from tessera_shared.runtime_metrics import VLLM, RuntimeMetricNames

LOOKBACK_SECONDS = 300
# vLLM's bucket boundaries (vllm/v1/metrics/loggers.py): time to first token, per output token, end to end.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
                80.0)  # fmt: skip
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0,
               960.0, 1920.0, 7680.0)  # fmt: skip
SPREAD = 0.35  # the log-normal's sigma: p99 is about 2.26 x the median

Labels = frozenset[tuple[str, str]]


class UnsupportedQuery(Exception):  # noqa: N818 - answered as Prometheus answers a bad query
    pass


@dataclass
class PrometheusApiDouble:
    region: str
    workspace: str = "ws-double"
    # series labels (with __name__) -> [(unix seconds, value)], ascending
    series: dict[Labels, list[tuple[float, float]]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    # Faults: the next requests are answered with these statuses (429 throttled, 503 unavailable, 403 denied), in
    # turn; `struck` keeps each one answered, so a fault test can prove its fault fired.
    faults: list[int] = field(default_factory=list)
    struck: list[int] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"https://aps-workspaces.{self.region}.amazonaws.com/workspaces/{self.workspace}/"

    def add(self, name: str, labels: Mapping[str, str], at: datetime, value: float) -> None:
        key = frozenset({"__name__": name, **labels}.items())
        self.series.setdefault(key, []).append((at.timestamp(), value))

    def __call__(self, request: Request) -> HttpAnswer:
        self.requests.append(request)
        if not str(request.get_header("Authorization", "")).startswith("AWS4-HMAC-SHA256 Credential="):
            return _answer(403, {"message": "Missing Authentication Token"})
        if self.faults:
            status = self.faults.pop(0)
            self.struck.append(status)
            return _answer(status, {"message": f"fault injected by the double: {status}"})
        form = parse_qs((request.data or b"").decode())  # type: ignore[union-attr]
        query, at = form.get("query", [""])[0], float(form.get("time", ["0"])[0])
        self.queries.append(query)
        try:
            expression = promql.parse(query)
        except Exception as error:
            return _answer(400, {"status": "error", "errorType": "bad_data", "error": str(error)})
        try:
            vector = self.evaluate(expression, at)
        except UnsupportedQuery as error:
            return _answer(400, {"status": "error", "errorType": "bad_data", "error": f"double: {error}"})
        result = [{"metric": dict(labels), "value": [at, _shown(value)]} for labels, value in vector]
        return _answer(200, {"status": "success", "data": {"resultType": "vector", "result": result}})

    # -- the evaluator ---------------------------------------------------------------------------------
    def evaluate(self, expression: object, at: float) -> list[tuple[Labels, float]]:
        if isinstance(expression, promql.ParenExpr):
            return self.evaluate(expression.expr, at)
        if isinstance(expression, promql.Call):
            return self._call(expression, at)
        if isinstance(expression, promql.AggregateExpr):
            return self._aggregate(expression, at)
        if isinstance(expression, promql.VectorSelector):
            return [(_without_name(labels), value) for labels, value in self._instant(expression, at)]
        if isinstance(expression, promql.BinaryExpr) and isinstance(expression.rhs, promql.NumberLiteral):
            factor = expression.rhs.val
            if str(expression.op) != "*":
                raise UnsupportedQuery(f"binary operator {expression.op}")
            return [(labels, value * factor) for labels, value in self.evaluate(expression.lhs, at)]
        raise UnsupportedQuery(type(expression).__name__)

    def _call(self, call: promql.Call, at: float) -> list[tuple[Labels, float]]:
        name = call.func.name
        if name == "increase" and isinstance(call.args[0], promql.MatrixSelector):
            return self._increase(call.args[0], at)
        if name == "histogram_quantile" and isinstance(call.args[0], promql.NumberLiteral):
            return _histogram_quantile(call.args[0].val, self.evaluate(call.args[1], at))
        raise UnsupportedQuery(f"function {name}")

    def _aggregate(self, aggregate: promql.AggregateExpr, at: float) -> list[tuple[Labels, float]]:
        op = str(aggregate.op)
        if op not in ("sum", "avg", "count"):
            raise UnsupportedQuery(f"aggregation {op}")
        modifier = aggregate.modifier
        if modifier is not None and modifier.type != promql.AggModifierType.By:
            raise UnsupportedQuery("aggregation without `by`")
        keep = set(modifier.labels) if modifier is not None else set()
        groups: dict[Labels, list[float]] = {}
        for labels, value in self.evaluate(aggregate.expr, at):
            groups.setdefault(frozenset((k, v) for k, v in labels if k in keep), []).append(value)
        combine = {"sum": sum, "avg": lambda values: sum(values) / len(values), "count": len}
        return [(labels, float(combine[op](values))) for labels, values in groups.items()]

    def _matching(self, selector: promql.VectorSelector) -> Iterable[tuple[Labels, list[tuple[float, float]]]]:
        for labels, samples in self.series.items():
            found = dict(labels)
            if found.get("__name__") != selector.name:
                continue
            if all(_matches(matcher, found.get(matcher.name, "")) for matcher in selector.matchers.matchers):
                yield labels, samples

    def _instant(self, selector: promql.VectorSelector, at: float) -> list[tuple[Labels, float]]:
        vector = []
        for labels, samples in self._matching(selector):
            last = _last_at(samples, at)
            if last is not None and last[0] > at - LOOKBACK_SECONDS:
                vector.append((labels, last[1]))
        return vector

    def _increase(self, matrix: promql.MatrixSelector, at: float) -> list[tuple[Labels, float]]:
        seconds = matrix.range.total_seconds()
        vector = []
        for labels, samples in self._matching(matrix.vector_selector):
            last, before = _last_at(samples, at), _last_at(samples, at - seconds)
            if last is None or (before is not None and before[0] == last[0]):
                continue  # no sample in the window
            vector.append((_without_name(labels), last[1] - (before[1] if before else 0.0)))
        return vector


def _matches(matcher: promql.Matcher, value: str) -> bool:
    if matcher.op == promql.MatchOp.Equal:
        return value == matcher.value
    if matcher.op == promql.MatchOp.NotEqual:
        return value != matcher.value
    raise UnsupportedQuery(f"label matcher {matcher.op}")


def _last_at(samples: list[tuple[float, float]], at: float) -> tuple[float, float] | None:
    """The series' last sample at or before `at` (samples are in time order; a long exploration keeps many)."""
    index = bisect.bisect_right(samples, (at, math.inf))
    return samples[index - 1] if index else None


def _without_name(labels: Labels) -> Labels:
    return frozenset((k, v) for k, v in labels if k != "__name__")


def _histogram_quantile(q: float, buckets: list[tuple[Labels, float]]) -> list[tuple[Labels, float]]:
    """Prometheus's bucketQuantile (promql/quantile.go): linear interpolation within the bucket the rank falls in;
    the +Inf bucket answers the highest finite bound; no observations answer NaN."""
    groups: dict[Labels, list[tuple[float, float]]] = {}
    for labels, value in buckets:
        bound = dict(labels).get("le")
        if bound is None:
            continue
        groups.setdefault(frozenset((k, v) for k, v in labels if k != "le"), []).append((float(bound), value))
    vector = []
    for labels, counts in groups.items():
        counts.sort()
        total = counts[-1][1]
        if not math.isinf(counts[-1][0]) or len(counts) < 2 or total == 0:
            vector.append((labels, math.nan))
            continue
        rank = q * total
        index = next(i for i, (_, count) in enumerate(counts) if count >= rank)
        if index == len(counts) - 1:
            vector.append((labels, counts[-2][0]))
            continue
        start, below = (0.0, 0.0) if index == 0 else counts[index - 1]
        end, count = counts[index]
        vector.append((labels, start + (end - start) * (rank - below) / (count - below)))
    return vector


def _shown(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _answer(status: int, document: dict) -> HttpAnswer:
    return HttpAnswer(status, json.dumps(document).encode())


@dataclass(frozen=True)
class RuntimeMinute:
    """What one track's serving runtime measured in a minute."""

    requests: int
    ttft_seconds: float  # median time to first token
    tpot_seconds: float  # median time per output token
    output_tokens: int  # per request
    errors: int  # requests the runtime ended in error


@dataclass
class ServingRuntimeDouble:
    """Cumulative vLLM series per pod, fed minute by minute (`observe`) into a PrometheusApiDouble."""

    prometheus: PrometheusApiDouble
    namespace: str
    service: str
    pods: Mapping[str, int]  # track -> pods its requests are spread over
    names: RuntimeMetricNames = VLLM
    totals: dict[tuple[str, str], float] = field(default_factory=dict)  # (series name + labels, pod) -> count

    def observe(self, track: str, minute_end: datetime, minute: RuntimeMinute) -> None:
        pods = max(1, self.pods.get(track, 1))
        for index in range(pods):
            share = minute.requests // pods + (1 if index < minute.requests % pods else 0)
            pod = f"{self.service}-{track}-{index}"
            labels = {"namespace": self.namespace, "service": self.service, "track": track, "pod": pod}
            e2e = minute.ttft_seconds + minute.tpot_seconds * max(0, minute.output_tokens - 1)
            for name, median, bounds in (
                (self.names.ttft, minute.ttft_seconds, TTFT_BUCKETS),
                (self.names.tpot, minute.tpot_seconds, TPOT_BUCKETS),
                (self.names.e2e_latency, e2e, E2E_BUCKETS),
            ):
                self._histogram(name, labels, minute_end, share, median, bounds)
            errors = minute.errors // pods + (1 if index < minute.errors % pods else 0)
            reason = self.names.finished_reason_label
            self._count(self.names.finished_requests, {**labels, reason: "stop"}, minute_end, share - errors)
            self._count(self.names.finished_requests, {**labels, reason: "error"}, minute_end, errors)
            self._count(self.names.output_tokens, labels, minute_end, share * minute.output_tokens)

    def _histogram(
        self, name: str, labels: dict[str, str], at: datetime, observations: int, median: float, bounds: tuple
    ) -> None:
        for bound in (*bounds, math.inf):
            below = observations if math.isinf(bound) else round(observations * _lognormal_cdf(bound, median))
            self._count(f"{name}_bucket", {**labels, "le": "+Inf" if math.isinf(bound) else repr(bound)}, at, below)
        self._count(f"{name}_count", labels, at, observations)
        self._count(f"{name}_sum", labels, at, observations * median)

    def _count(self, name: str, labels: dict[str, str], at: datetime, increase: float) -> None:
        key = (name, json.dumps(labels, sort_keys=True))
        self.totals[key] = self.totals.get(key, 0.0) + max(0.0, increase)
        self.prometheus.add(name, labels, at, self.totals[key])


def _lognormal_cdf(value: float, median: float) -> float:
    return 0.5 * (1 + math.erf(math.log(value / median) / (SPREAD * math.sqrt(2))))
