"""Reads instant PromQL queries from the environment's Amazon Managed Service for Prometheus workspace, signed with
SigV4 (service `aps`) as the function's role. Written with botocore's signer and urllib because boto3 has no
client for the workspace's Prometheus-compatible query API.

The query URL comes from the service's rollout settings (an SSM parameter), and whoever can write that parameter
is not thereby trusted: a URL that is not a workspace query endpoint in the settings' region is refused before
anything is signed, so the function's credentials are never sent elsewhere. The answer is read defensively: at
most MAX_RESPONSE_BYTES, a vector of finite or NaN numbers with string labels, anything else a RolloutError
naming what was wrong.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Protocol
from urllib.parse import urlencode

from rollout.contract import RuntimeMetrics
from rollout.errors import RolloutError, TransientError

SERVICE = "aps"
TIMEOUT_SECONDS = 10
MAX_RESPONSE_BYTES = 1_000_000
MAX_SERIES = 1_000  # the judge's queries aggregate to a few series; more means the query matched the wrong thing
_QUERY_URL = re.compile(
    r"https://aps-workspaces\.(?P<region>[a-z0-9-]{1,30})\.amazonaws\.com/workspaces/ws-[a-zA-Z0-9-]{1,64}/api/v1/query"
)
_SHOWN = 200


@dataclass(frozen=True)
class Sample:
    """One series of an instant vector: its labels and its value (NaN or infinite as Prometheus answered it: a
    quantile of no observations is NaN, one above the highest finite bucket can be +Inf)."""

    labels: Mapping[str, str]
    value: float


class PrometheusReader(Protocol):
    def query(self, promql: str, *, at: datetime) -> list[Sample]:
        """The instant vector `promql` evaluates to at `at`."""
        ...


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes


# Sends a prepared request and returns the status and at most MAX_RESPONSE_BYTES + 1 of the body; raises
# OSError (urllib.error.URLError, TimeoutError) when the endpoint cannot be reached.
Transport = Callable[[urllib.request.Request], HttpAnswer]


def urllib_transport(request: urllib.request.Request) -> HttpAnswer:
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - URL checked: https only
            return HttpAnswer(response.status, response.read(MAX_RESPONSE_BYTES + 1))
    except urllib.error.HTTPError as error:
        return HttpAnswer(error.code, error.read(MAX_RESPONSE_BYTES + 1))


def query_url_problem(source: RuntimeMetrics) -> str | None:
    """Why the settings' query URL must not be signed for, or None when it is a workspace's in their region."""
    match = _QUERY_URL.fullmatch(source.query_url)
    if match is None:
        return (
            f"runtime_metrics.query_url: expected https://aps-workspaces.<region>.amazonaws.com/workspaces/<id>"
            f"/api/v1/query, got {source.query_url[:_SHOWN]!r}"
        )
    if match["region"] != source.region:
        return (
            f"runtime_metrics.query_url: in region {match['region']}, but the settings say {source.region[:_SHOWN]!r}"
        )
    return None


class SigV4Prometheus:
    """PrometheusReader of one workspace. `credentials` gives botocore credentials (a boto3 session's)."""

    def __init__(self, source: RuntimeMetrics, *, credentials: Callable[[], Any], transport: Transport) -> None:
        problem = query_url_problem(source)
        if problem:
            raise RolloutError(problem)
        self._source = source
        self._credentials = credentials
        self._transport = transport

    def query(self, promql: str, *, at: datetime) -> list[Sample]:
        # Imported here: botocore's signer is only needed by a rollout that reads runtime metrics.
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        body = urlencode({"query": promql, "time": f"{at.timestamp():.3f}"})
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        signed = AWSRequest(method="POST", url=self._source.query_url, data=body, headers=headers)
        SigV4Auth(self._credentials(), SERVICE, self._source.region).add_auth(signed)
        request = urllib.request.Request(  # noqa: S310 - the URL was checked: a workspace's, over https
            self._source.query_url, data=body.encode(), headers=dict(signed.headers.items()), method="POST"
        )
        try:
            answer = self._transport(request)
        except OSError as error:
            raise TransientError(f"Prometheus workspace unreachable: {error}") from error
        return _vector(answer, promql)


def _vector(answer: HttpAnswer, promql: str) -> list[Sample]:
    if answer.status == 429 or answer.status >= 500:
        raise TransientError(f"Prometheus workspace answered {answer.status}; retry")
    if len(answer.body) > MAX_RESPONSE_BYTES:
        raise RolloutError(f"Prometheus answer to {promql[:_SHOWN]!r} is over {MAX_RESPONSE_BYTES} bytes")
    try:
        document = json.loads(answer.body)
    except (ValueError, RecursionError):
        raise RolloutError(
            f"Prometheus answered {answer.status} with a body that is not JSON: {answer.body[:_SHOWN]!r}"
        ) from None
    if answer.status != 200 or not isinstance(document, dict) or document.get("status") != "success":
        error = document.get("error") if isinstance(document, dict) else None
        raise RolloutError(f"Prometheus refused {promql[:_SHOWN]!r} ({answer.status}): {str(error)[:_SHOWN]}")
    data = document.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
        raise RolloutError(f"Prometheus answered {promql[:_SHOWN]!r} with something other than an instant vector")
    if len(data["result"]) > MAX_SERIES:
        raise RolloutError(f"Prometheus answered {promql[:_SHOWN]!r} with {len(data['result'])} series")
    return [_sample(item, promql) for item in data["result"]]


def _sample(item: object, promql: str) -> Sample:
    where = f"a series of the answer to {promql[:_SHOWN]!r}"
    if not isinstance(item, dict):
        raise RolloutError(f"{where} is not an object")
    labels, value = item.get("metric", {}), item.get("value")
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise RolloutError(f"{where} has labels that are not strings")
    if not isinstance(value, list) or len(value) != 2 or not isinstance(value[1], str):
        raise RolloutError(f'{where} has no [time, "value"] pair')
    try:
        number = float(value[1][:64])
    except ValueError:
        raise RolloutError(f"{where} has a value that is not a number: {value[1][:_SHOWN]!r}") from None
    return Sample(labels, number)


@cache
def aws_prometheus(source: RuntimeMetrics) -> PrometheusReader:
    """The reader the function uses: SigV4 with the function role's credentials, over HTTPS. One per workspace and
    execution environment: a boto3 session is built once, not at every judgement (its credentials refresh)."""
    import boto3

    session = boto3.Session()
    return SigV4Prometheus(source, credentials=session.get_credentials, transport=urllib_transport)
