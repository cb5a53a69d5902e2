"""The SigV4-signed query path to the environment's Prometheus workspace (rollout.prometheus): what is signed and
sent, which URLs are refused before anything is signed, and how every kind of bad answer is turned into a retry
or a named refusal instead of a crash or a silent figure."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from datetime import UTC, datetime
from urllib.parse import parse_qs

import pytest
from botocore.credentials import Credentials

from rollout.contract import RuntimeMetrics
from rollout.errors import RolloutError, TransientError
from rollout.prometheus import MAX_RESPONSE_BYTES, HttpAnswer, SigV4Prometheus, query_url_problem
from tests.rollout.prometheus_double import PrometheusApiDouble

REGION = "eu-west-1"
URL = f"https://aps-workspaces.{REGION}.amazonaws.com/workspaces/ws-0a1b2c3d-4e5f/api/v1/query"
SOURCE = RuntimeMetrics(query_url=URL, region=REGION)
AT = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
CREDENTIALS = Credentials("AKIDEXAMPLE", "secret-example", "session-example")


class Recorder:
    """Transport double: keeps each request, answers with the given status and body."""

    def __init__(self, status: int = 200, body: bytes | None = None) -> None:
        vector = {"status": "success", "data": {"resultType": "vector", "result": []}}
        self.answer = HttpAnswer(status, json.dumps(vector).encode() if body is None else body)
        self.requests: list[urllib.request.Request] = []

    def __call__(self, request: urllib.request.Request) -> HttpAnswer:
        self.requests.append(request)
        return self.answer


def reader(transport: object, source: RuntimeMetrics = SOURCE) -> SigV4Prometheus:
    return SigV4Prometheus(source, credentials=lambda: CREDENTIALS, transport=transport)  # type: ignore[arg-type]


def test_a_query_is_a_sigv4_signed_form_post_for_the_aps_service_in_the_workspace_region() -> None:
    transport = Recorder()
    reader(transport).query('sum(vllm:num_requests_waiting{track="stable"})', at=AT)

    [request] = transport.requests
    assert request.get_method() == "POST"
    assert request.full_url == URL
    headers = {name.lower(): value for name, value in request.header_items()}
    credential = re.search(r"Credential=AKIDEXAMPLE/(\d{8})/([^/]+)/([^/]+)/aws4_request", headers["authorization"])
    assert credential is not None, headers["authorization"]
    date, region, service = credential.groups()
    assert (region, service) == (REGION, "aps")
    assert headers["x-amz-date"].startswith(date)  # the scope's day is the signing day
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 ")
    assert "SignedHeaders=" in headers["authorization"]
    assert "Signature=" in headers["authorization"]
    assert re.fullmatch(r"\d{8}T\d{6}Z", headers["x-amz-date"])
    assert headers["x-amz-security-token"] == "session-example"  # the role's session credentials
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    form = parse_qs(request.data.decode())  # type: ignore[union-attr]
    assert form == {"query": ['sum(vllm:num_requests_waiting{track="stable"})'], "time": [f"{AT.timestamp():.3f}"]}


def test_the_signature_covers_the_body_a_changed_query_changes_it() -> None:
    transport = Recorder()
    reader(transport).query("sum(a)", at=AT)
    reader(transport).query("sum(b)", at=AT)
    first, second = (dict(request.header_items())["Authorization"] for request in transport.requests)
    assert first.split("Signature=")[1] != second.split("Signature=")[1]


def test_the_workspace_double_refuses_an_unsigned_request_as_the_workspace_does() -> None:
    double = PrometheusApiDouble(region=REGION)
    unsigned = urllib.request.Request(URL, data=b"query=up&time=0", method="POST")
    assert double(unsigned).status == 403


@pytest.mark.parametrize(
    ("url", "region", "problem"),
    [
        ("http://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1/api/v1/query", REGION, "expected https://"),
        ("https://attacker.example/workspaces/ws-1/api/v1/query", REGION, "expected https://"),
        ("https://aps-workspaces.eu-west-1.amazonaws.com.example/workspaces/ws-1/api/v1/query", REGION, "expected"),
        ("https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1/api/v1/admin", REGION, "expected"),
        ("https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1/api/v1/query", REGION, "in region us-east-1"),
        ("x" * 100_000, REGION, "expected"),
    ],
)
def test_a_url_that_is_not_a_workspace_query_endpoint_in_the_settings_region_is_refused_before_signing(
    url: str, region: str, problem: str
) -> None:
    transport = Recorder()
    source = RuntimeMetrics(query_url=url, region=region)
    found = query_url_problem(source)
    assert found is not None
    assert problem in found
    assert len(found) < 400  # a hostile URL is shown cut short
    with pytest.raises(RolloutError, match=r"runtime_metrics\.query_url"):
        reader(transport, source)
    assert transport.requests == []  # nothing was signed or sent


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_server_errors_are_transient(status: int) -> None:
    with pytest.raises(TransientError):
        reader(Recorder(status, b"{}")).query("up", at=AT)


def test_an_unreachable_workspace_is_transient() -> None:
    def unreachable(request: urllib.request.Request) -> HttpAnswer:
        raise urllib.error.URLError("connection refused")

    with pytest.raises(TransientError, match="unreachable"):
        reader(unreachable).query("up", at=AT)


def test_a_refused_query_names_the_query_and_prometheus_error() -> None:
    body = json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error at char 5"}).encode()
    with pytest.raises(RolloutError, match=r"refused 'sum\(\(' \(400\): parse error at char 5"):
        reader(Recorder(400, body)).query("sum((", at=AT)


def _vector_body(result: list) -> bytes:
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>gateway</html>", "not JSON"),
        (_nested(100_000), "not JSON"),  # deeper than the JSON parser recurses
        (b"x" * (MAX_RESPONSE_BYTES + 1), "over 1000000 bytes"),
        (json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}).encode(), "instant vector"),
        (json.dumps({"status": "success", "data": []}).encode(), "instant vector"),
        (json.dumps([1, 2]).encode(), "refused"),
        (_vector_body([1]), "not an object"),
        (_vector_body([{"metric": {"a": 1}, "value": [0, "1"]}]), "labels that are not strings"),
        (_vector_body([{"metric": {}, "value": 5}]), 'no \\[time, "value"\\] pair'),
        # A huge number is read (its first 64 digits), not a crash.
        (_vector_body([{"metric": {}, "value": [0, "9" * 400]}]), None),
        (_vector_body([{"metric": {}, "value": [0, "many"]}]), "not a number"),
        (_vector_body([{"metric": {}, "value": [0, "1"]}] * 1001), "1001 series"),
    ],
)
def test_a_hostile_or_malformed_answer_is_a_named_refusal_never_a_crash(body: bytes, message: str | None) -> None:
    query = reader(Recorder(200, body))
    if message is None:
        [sample] = query.query("up", at=AT)
        assert sample.value == float("9" * 64)
        return
    with pytest.raises(RolloutError, match=message):
        query.query("up", at=AT)


def test_nan_and_infinite_values_are_passed_on_for_the_caller_to_read() -> None:
    result = [{"metric": {"le": "1"}, "value": [0, "NaN"]}, {"metric": {}, "value": [0, "+Inf"]}]
    nan, infinite = reader(Recorder(200, _vector_body(result))).query("up", at=AT)
    assert nan.value != nan.value
    assert infinite.value == float("inf")
