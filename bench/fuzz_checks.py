"""Sends one fuzz request and judges the answer against the app's error contract:

- a response always comes (no reset connection, no timeout);
- no 5xx at all: the fuzz kills no replica and asks for no deadline short enough to pass, so
  even a 503 or 504 means the app broke (tests/system/test_replica_faults.py and test_deadlines.py
  prove those statuses where they belong);
- every 4xx and 5xx carries `{"error": {"message", "type", "param", "code"}}` with code = status;
- 429 and 503 carry a Retry-After of whole seconds;
- a 2xx JSON answer is JSON, and a stream ends with `data: [DONE]`, any error event inside it
  carrying no 5xx.

/readyz is the one route whose 429 and 503 are not error bodies: they report each group's state.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import httpx

from bench.fuzz_strategies import FuzzRequest

ERROR_KEYS = {"message", "type", "param", "code"}
# OpenAI's codes for a 400 that names what the server does not implement; any other error's
# code is its status.
UNSUPPORTED_CODES = ("unsupported_parameter", "unsupported_value")
ALLOWED_5XX: tuple[int, ...] = ()
NEEDS_RETRY_AFTER = (429, 503)
# httpx refuses to send some drawn URLs and headers: nothing reached the server, nothing to judge.
UNSENDABLE = (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError,
              UnicodeEncodeError)


@dataclass
class FuzzResponse:
    status: int = 0  # 0: none came
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names
    body: bytes = b""
    transport_error: str | None = None
    unsendable: str | None = None
    seconds: float = 0.0


def header_bytes(headers: tuple[tuple[str, str], ...]) -> list[tuple[str, bytes]]:
    """The request's headers as sent: repeated ones kept, values as UTF-8 bytes (httpx would
    refuse a str value that is not ASCII)."""
    return [(name, value.encode()) for name, value in headers]


def send(http: httpx.Client, request: FuzzRequest) -> FuzzResponse:
    started = time.perf_counter()
    answer = FuzzResponse()
    try:
        response = http.request(request.method, request.path, content=request.body or None,
                                headers=header_bytes(request.headers))
        answer.status, answer.body = response.status_code, response.content
        answer.headers = {k.lower(): v for k, v in response.headers.items()}
    except UNSENDABLE as exc:
        answer.unsendable = f"{type(exc).__name__}: {exc}"[:200]
    except httpx.TransportError as exc:
        answer.transport_error = f"{type(exc).__name__}: {exc}"[:300]
    answer.seconds = time.perf_counter() - started
    return answer


def problems(request: FuzzRequest, response: FuzzResponse) -> list[str]:
    """What the response does wrong; [] when it keeps the contract."""
    if response.unsendable:
        return []
    if response.transport_error:
        return [f"transport error: {response.transport_error}"]
    status = response.status
    found = []
    if status >= 500 and status not in ALLOWED_5XX:
        found.append(f"HTTP {status}")
    if status in NEEDS_RETRY_AFTER and not _whole_seconds(response.headers.get("retry-after")):
        found.append(f"HTTP {status} without a Retry-After of whole seconds")
    if request.method == "HEAD":
        return found
    if status >= 400 and not (status in (429, 503) and request.path.startswith("/readyz")):
        found += _error_body_problems(response.body, status)
    elif 200 <= status < 300:
        found += _success_body_problems(response)
    return found


def _whole_seconds(value: str | None) -> bool:
    return value is not None and value.strip().isdigit()


def _error_body_problems(body: bytes, status: int) -> list[str]:
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return [f"HTTP {status} without a JSON error body: {body[:120]!r}"]
    if not isinstance(error, dict) or not ERROR_KEYS <= set(error):
        return [f"HTTP {status} error body lacks {sorted(ERROR_KEYS)}: {body[:160]!r}"]
    if error["code"] != status and not (status == 400 and error["code"] in UNSUPPORTED_CODES):
        return [f"HTTP {status} error body says code {error['code']!r}"]
    return []


def _success_body_problems(response: FuzzResponse) -> list[str]:
    media = response.headers.get("content-type", "").split(";")[0].strip()
    if media == "text/event-stream":
        return stream_problems(response.body)
    if media == "application/json":
        try:
            json.loads(response.body)
        except ValueError:
            return [f"HTTP {response.status} application/json body is not JSON"]
    return []


def stream_problems(body: bytes) -> list[str]:
    """A server-sent event stream must end with [DONE]; an error event may not be a 5xx
    (chat: {"error": {...}}, pipeline: {"type": "error", ...})."""
    events = [line[5:].strip() for line in body.decode(errors="replace").splitlines()
              if line.startswith("data:")]
    if not events or events[-1] != "[DONE]":
        return [f"stream does not end with [DONE]: {events[-2:]!r}"]
    found = []
    for event in events[:-1]:
        try:
            payload = json.loads(event)
        except ValueError:
            found.append(f"stream event is not JSON: {event[:120]!r}")
            continue
        code = _error_code(payload)
        if isinstance(code, int) and code >= 500 and code not in ALLOWED_5XX:
            found.append(f"stream error event with code {code}: {event[:160]}")
    return found


def _error_code(payload: object) -> object:
    if not isinstance(payload, dict):
        return None
    if isinstance(payload.get("error"), dict):
        return payload["error"].get("code")
    if payload.get("type") == "error":
        nested = payload.get("error")
        return nested.get("code") if isinstance(nested, dict) else payload.get("code")
    return None
