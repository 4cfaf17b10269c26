"""The chat route with several choices and logprobs, over the fake groups of
tests/unit/frontend_fakes.py (no Ray): what the text group is asked for, and the answer and
the stream as the openai package reads them (its own types, and the official client's own
stream assembly)."""

from __future__ import annotations

import json

import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from starlette.testclient import TestClient

from deployments.core.call_protocol import CompletionReply, StreamEnd, TokenDelta
from deployments.core.generation import Completion
from deployments.replicas.text import completion_reply
from serve_app.request_tenant import usage_of
from tests.unit.frontend_fakes import TEXT_MODEL, FakeGroup, app_client, fake_groups

ENTRY = {"token": " a", "logprob": -0.25, "bytes": [32, 97],
         "top_logprobs": [{"token": " a", "logprob": -0.25, "bytes": [32, 97]}]}
EVENTS = [TokenDelta(" a", 0, [ENTRY]), TokenDelta(" a", 1, [ENTRY]), TokenDelta(" a", 0, [ENTRY]),
          StreamEnd(9, 3, "length", ["length", "stop"])]
REPLY = CompletionReply(" a a", 9, 6, "length", [ENTRY, ENTRY],
                        [{"text": " b", "finish_reason": "stop", "logprobs": [ENTRY]},
                         {"text": " c", "finish_reason": "stop", "logprobs": [ENTRY]}])

BODY = {"model": TEXT_MODEL, "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5,
        "n": 3, "logprobs": True, "top_logprobs": 1, "presence_penalty": 0.5,
        "frequency_penalty": 0.25, "logit_bias": {"7": -100}}


@pytest.fixture
def groups() -> tuple[FakeGroup, FakeGroup, FakeGroup]:
    groups = fake_groups()
    groups[0].answers.update(generate=REPLY, stream=EVENTS)
    return groups


@pytest.fixture
def client(groups) -> TestClient:
    return app_client(groups)


def test_the_options_reach_the_text_group(client, groups):
    assert client.post("/v1/chat/completions", json=BODY).status_code == 200
    method, (_, params) = groups[0].calls[-1]
    assert method == "generate"
    assert (params.n, params.logprobs, params.top_logprobs) == (3, True, 1)
    assert (params.presence_penalty, params.frequency_penalty) == (0.5, 0.25)
    assert params.logit_bias == ((7, -100.0),)


def test_every_choice_is_answered_with_its_logprobs(client):
    answer = ChatCompletion.model_validate(client.post("/v1/chat/completions",
                                                       json=BODY).json())
    assert [(c.index, c.message.content, c.finish_reason) for c in answer.choices] == [
        (0, " a a", "length"), (1, " b", "stop"), (2, " c", "stop")]
    assert [len(c.logprobs.content) for c in answer.choices] == [2, 1, 1]
    assert answer.usage.completion_tokens == 6


def test_the_stream_names_each_choice_and_the_client_assembles_them(client):
    body = {**BODY, "n": 2, "stream": True, "stream_options": {"include_usage": True}}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        lines = [line[len("data: "):] for line in response.iter_lines() if line]
    assert lines[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(json.loads(line)) for line in lines[:-1]]
    state = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(chunk)
    final = state.current_completion_snapshot  # parsing refuses a choice cut at length
    assert [(c.index, c.message.content, c.finish_reason) for c in final.choices] == [
        (0, " a a", "length"), (1, " a", "stop")]
    assert [len(c.logprobs.content) for c in final.choices] == [2, 1]
    assert final.usage.completion_tokens == 3


def test_a_tenant_is_charged_every_choices_tokens():
    first = Completion("a", 9, 4, "length", None,
                       [Completion("b", 9, 2, "stop"), Completion("c", 9, 3, "stop")])
    reply = completion_reply(first)
    assert reply.completion_tokens == 9
    assert [c["text"] for c in reply.choices()] == ["a", "b", "c"]
    usage = usage_of("text", "generate", (), reply)
    assert (usage.prompt_tokens, usage.completion_tokens) == (9, 9)
