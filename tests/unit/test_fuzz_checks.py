"""The fuzzer's judge (bench/fuzz_checks.py) on made-up responses, and its strategies' reach."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from bench.fuzz_checks import FuzzResponse, header_bytes, problems, stream_problems
from bench.fuzz_strategies import (
    HUGE_HEADER_CHARS,
    FuzzRequest,
    Limits,
    any_request,
    header_variants,
)

CHAT = FuzzRequest("chat", "POST", "/v1/chat/completions", b"{}")
JSON = {"content-type": "application/json"}


def error(status: int, code: int | str | None = None, **headers: str) -> FuzzResponse:
    body = {"error": {"message": "m", "type": "t", "param": None,
                      "code": status if code is None else code}}
    return FuzzResponse(status, {**JSON, **headers}, json.dumps(body).encode())


def sse(*events: str) -> FuzzResponse:
    body = "".join(f"data: {event}\n\n" for event in events).encode()
    return FuzzResponse(200, {"content-type": "text/event-stream"}, body)


@pytest.mark.parametrize("response", [
    error(400), error(404), error(413), error(429, **{"retry-after": "3"}),
    error(400, code="unsupported_parameter"), error(400, code="unsupported_value"),
    FuzzResponse(200, JSON, b'{"ok": true}'),
    sse('{"choices": []}', "[DONE]"),
    sse('{"error": {"message": "m", "code": 429}}', "[DONE]"),
    FuzzResponse(unsendable="InvalidURL: bad"),
])
def test_answers_that_keep_the_contract(response):
    assert problems(CHAT, response) == []


@pytest.mark.parametrize(("response", "fragment"), [
    (error(500), "HTTP 500"),
    (error(502), "HTTP 502"),
    (error(503, **{"retry-after": "5"}), "HTTP 503"),  # no replica is killed in a fuzz run
    (error(504), "HTTP 504"),  # and no deadline is short enough to pass
    (sse('{"error": {"message": "m", "code": 503}}', "[DONE]"), "code 503"),
    (FuzzResponse(400, {"content-type": "text/plain"}, b"Bad Request"), "without a JSON error"),
    (FuzzResponse(422, JSON, b'{"detail": "x"}'), "without a JSON error"),
    (FuzzResponse(400, JSON, b'{"error": {"message": "m"}}'), "lacks"),
    (error(400, code=500), "says code 500"),
    (error(404, code="unsupported_parameter"), "says code 'unsupported_parameter'"),
    (error(429), "Retry-After"),
    (error(429, **{"retry-after": "1.5"}), "Retry-After"),
    (FuzzResponse(200, JSON, b"{not json"), "not JSON"),
    (sse('{"choices": []}'), "[DONE]"),
    (sse('{"error": {"message": "boom", "code": 500}}', "[DONE]"), "code 500"),
    (sse('{"type": "error", "message": "boom", "code": 500}', "[DONE]"), "code 500"),
    (FuzzResponse(transport_error="RemoteProtocolError: closed"), "transport error"),
])
def test_answers_that_break_it(response, fragment):
    found = problems(CHAT, response)
    assert found and fragment in " ".join(found)


def test_readyz_answers_with_its_own_body():
    readyz = FuzzRequest("readyz", "GET", "/readyz")
    overloaded = FuzzResponse(429, {**JSON, "retry-after": "5"}, b'{"ready": false}')
    assert problems(readyz, overloaded) == []
    down = FuzzResponse(503, JSON, b'{"ready": false}')
    assert "HTTP 503" in problems(readyz, down)  # a group went down during the fuzz
    assert stream_problems(b"data: [DONE]\n\n") == []


def test_head_answers_are_judged_by_status_alone():
    head = FuzzRequest("models", "HEAD", "/v1/models")
    assert problems(head, FuzzResponse(405, {}, b"")) == []
    assert problems(head, FuzzResponse(500, {}, b"")) == ["HTTP 500"]


def test_the_strategies_reach_every_route_and_past_every_cap():
    limits = Limits(max_body_bytes=4096)
    drawn: list[FuzzRequest] = []

    @settings(max_examples=400, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(any_request(limits))
    def collect(request: FuzzRequest) -> None:
        drawn.append(request)

    collect()
    routes = {r.route for r in drawn}
    assert {"chat", "chat-stream", "embeddings", "transcriptions", "pipeline", "other"} <= routes
    assert any(len(r.body) > limits.max_body_bytes for r in drawn)
    assert any(r.method not in ("GET", "POST") for r in drawn)
    assert any(dict(r.headers).get("x-request-timeout") is not None for r in drawn)


def test_the_header_variants_reach_repeated_huge_and_unicode_values():
    drawn: list[tuple[tuple[str, str], ...]] = []

    @settings(max_examples=400, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(header_variants())
    def collect(headers: tuple[tuple[str, str], ...]) -> None:
        drawn.append(headers)

    collect()
    names = [[name for name, _ in headers] for headers in drawn]
    assert any(found.count("authorization") > 1 for found in names)
    assert any(found.count("x-request-timeout") > 1 for found in names)
    values = [value for headers in drawn for _, value in headers]
    assert any(len(value) > HUGE_HEADER_CHARS for value in values)
    assert any(not value.isascii() for value in values)


def test_headers_are_sent_repeated_and_as_utf8_bytes():
    headers = (("authorization", "Bearer a"), ("authorization", "Bearer ключ"))
    assert header_bytes(headers) == [("authorization", b"Bearer a"),
                                     ("authorization", "Bearer ключ".encode())]
