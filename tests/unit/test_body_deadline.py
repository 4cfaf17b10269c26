"""A request body is read until the request's deadline at most: a client that sends it too
slowly gets a 408 JSON error and holds its slot no longer."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from starlette.requests import Request

from deployments.core.errors import ServeError, TooLarge
from serve_app.http import read_body
from serve_app.http_errors import error_response, status_of


class SlowClient:
    """An ASGI receive that sends `chunks`, then waits for more that never come."""

    def __init__(self, *chunks: bytes, stalls: bool = True) -> None:
        self.chunks = list(chunks)
        self.stalls = stalls
        self.stalled_until_cancelled = False

    async def __call__(self) -> dict:
        if self.chunks:
            body = self.chunks.pop(0)
            more = bool(self.chunks) or self.stalls
            return {"type": "http.request", "body": body, "more_body": more}
        try:
            await asyncio.Event().wait()  # the rest of the body never arrives
        except asyncio.CancelledError:
            self.stalled_until_cancelled = True
            raise
        raise AssertionError("unreachable")


def request(receive, content_length: int | None = None) -> Request:
    headers = [] if content_length is None else [(b"content-length",
                                                 str(content_length).encode())]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers},
                   receive)


def test_a_body_that_stops_arriving_is_a_408_at_the_deadline():
    client = SlowClient(b'{"model": ')

    async def read():
        return await read_body(request(client), 1024, deadline=time.time() + 0.2)

    with pytest.raises(ServeError) as caught:
        asyncio.run(read())
    assert status_of(caught.value) == 408
    assert client.stalled_until_cancelled
    response = error_response(caught.value)
    body = json.loads(response.body)
    assert body["error"]["code"] == 408 and "deadline" in body["error"]["message"]
    assert response.headers["connection"] == "close"


def test_a_deadline_already_past_reads_nothing():
    with pytest.raises(ServeError) as caught:
        asyncio.run(read_body(request(SlowClient(b"{}", stalls=False)), 1024,
                              deadline=time.time() - 1))
    assert status_of(caught.value) == 408


def test_a_whole_body_within_the_deadline_is_read():
    client = SlowClient(b'{"a": ', b"1}", stalls=False)
    assert asyncio.run(read_body(request(client), 1024, deadline=time.time() + 60)) \
        == b'{"a": 1}'
    assert asyncio.run(read_body(request(SlowClient(b"{}", stalls=False)), 1024)) == b"{}"


def test_the_size_cap_still_comes_first():
    with pytest.raises(TooLarge):
        asyncio.run(read_body(request(SlowClient(b"x"), content_length=4096), 1024,
                              deadline=time.time() + 60))
    with pytest.raises(TooLarge):
        asyncio.run(read_body(request(SlowClient(b"x" * 600, b"x" * 600, stalls=False)), 1024,
                              deadline=time.time() + 60))
