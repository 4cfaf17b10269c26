"""A stream whose replica dies after its first tokens: the status (200) has gone out, so the
failure comes in-band, as an OpenAI error event before [DONE], and the official openai client
raises it: the client is never left with a stream that silently stops short. The app's routes
run in process over fake groups (tests/unit/frontend_fakes.py); the error is the 503 that
ReplicaGroup makes of a dead replica (tests/model/test_dead_replica_errors.py)."""

from __future__ import annotations

import json

import openai
import pytest

from deployments.core.call_protocol import TokenDelta
from deployments.core.errors import Unavailable
from tests.unit.frontend_fakes import TEXT_MODEL, fake_groups

REPLICA_DIED = "the text replica serving this request failed; retry"


def dying_stream(*args) -> list:
    return [TokenDelta("Hel"), TokenDelta("lo"), Unavailable(REPLICA_DIED, retry_after_s=5)]


@pytest.fixture
def groups():
    groups = fake_groups()
    groups[0].answers["stream"] = dying_stream
    return groups


def openai_client(client) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{client.base_url}/v1", api_key="unused",
                         http_client=client, max_retries=0)


def data_events(body: str) -> list:
    return [line.removeprefix("data: ") for line in body.splitlines()
            if line.startswith("data: ")]


def test_the_chat_stream_ends_with_an_error_event_then_done(client):
    response = client.post("/v1/chat/completions", json={
        "model": TEXT_MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    *chunks, error, done = data_events(response.text)
    assert done == "[DONE]"
    assert json.loads(error)["error"] == {"message": REPLICA_DIED,
                                          "type": "service_unavailable", "param": None,
                                          "code": 503}
    assert "".join(json.loads(c)["choices"][0]["delta"].get("content", "")
                   for c in chunks) == "Hello"


def test_the_openai_client_gets_the_tokens_then_raises_the_error(client):
    stream = openai_client(client).chat.completions.create(
        model=TEXT_MODEL, stream=True, messages=[{"role": "user", "content": "hi"}])
    received = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Hello"
    assert raised.value.message == REPLICA_DIED
    assert raised.value.body["code"] == 503


def test_the_openai_client_raises_the_error_of_a_completions_stream(client):
    stream = openai_client(client).completions.create(model=TEXT_MODEL, prompt="hi",
                                                      stream=True)
    received = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in stream:
            received.append(chunk.choices[0].text)
    assert "".join(received) == "Hello"
    assert raised.value.message == REPLICA_DIED
