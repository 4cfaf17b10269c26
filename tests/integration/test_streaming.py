"""Server-sent events: several chunks, in order, ending with [DONE]."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration
BODY = {"model": "smollm2-135m-instruct", "max_tokens": 20, "temperature": 0,
        "messages": [{"role": "user", "content": "Name three colours."}]}


def read_events(client, body):
    events = []
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line:
                assert line.startswith("data: ")
                events.append(line[len("data: "):])
    return events


def test_stream_is_ordered_and_matches_the_whole_answer(client):
    events = read_events(client, {**BODY, "stream": True})
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert len({c["id"] for c in chunks}) == 1
    pieces = [c["choices"][0]["delta"].get("content", "") for c in chunks]
    assert sum(1 for p in pieces if p) >= 3
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    whole = client.post("/v1/chat/completions", json=BODY).json()
    # Greedy decoding: the pieces, joined in arrival order, are exactly the non-streamed answer.
    assert "".join(pieces) == whole["choices"][0]["message"]["content"]


def test_stream_without_usage_option_has_no_usage_chunk(client):
    events = read_events(client, {**BODY, "stream": True})
    assert all("usage" not in json.loads(e) for e in events[:-1])


def test_client_disconnect_aborts_the_generation(client):
    import time

    from tests.conftest import deployment_handle

    def aborted() -> int:
        stats = deployment_handle("TextGenerator").batch_stats.remote().result()
        return stats["events"].get("stream_aborted", 0)

    before = aborted()
    long_story = {**BODY, "max_tokens": 1000, "stream": True,
                  "messages": [{"role": "user", "content": "Tell a very long story."}]}
    with client.stream("POST", "/v1/chat/completions", json=long_story) as response:
        lines = response.iter_lines()
        received = [next(lines) for _ in range(6)]
    assert all(line.startswith("data: ") or not line for line in received)
    deadline = time.monotonic() + 30
    while aborted() == before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert aborted() == before + 1
