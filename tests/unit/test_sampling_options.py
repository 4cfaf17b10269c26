"""The sampling options of a chat request: OpenAI's ranges (a 400 naming the field), what the
text group gets, and the responses' shapes with several choices and logprobs, checked against
the openai package's own types."""

from __future__ import annotations

import json

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from deployments.core.errors import ServeError
from deployments.core.generation import SamplingParams
from serve_app import protocol
from serve_app.http import parse_json
from serve_app.http_errors import status_of

BASE = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
ENTRY = {"token": " a", "logprob": -0.25, "bytes": [32, 97],
         "top_logprobs": [{"token": " a", "logprob": -0.25, "bytes": [32, 97]},
                          {"token": " b", "logprob": -1.5, "bytes": [32, 98]}]}


def parsed(**fields) -> protocol.ChatCompletionRequest:
    return parse_json(json.dumps({**BASE, **fields}).encode(), protocol.ChatCompletionRequest)


def test_the_options_reach_the_text_group_as_sampling_params():
    request = parsed(n=3, logprobs=True, top_logprobs=5, presence_penalty=0.5,
                     frequency_penalty=-1.0, logit_bias={"42": 100, "7": -100})
    params = SamplingParams(**request.sampling_fields())
    assert (params.n, params.logprobs, params.top_logprobs) == (3, True, 5)
    assert (params.presence_penalty, params.frequency_penalty) == (0.5, -1.0)
    assert params.logit_bias == ((7, -100.0), (42, 100.0))  # sorted: one cache key per meaning
    hash(params)  # hashable, as a frozen dataclass must stay


def test_unset_and_null_options_are_the_defaults():
    for request in (parsed(), parsed(logprobs=None, top_logprobs=None, presence_penalty=None,
                                     frequency_penalty=None, logit_bias=None)):
        assert SamplingParams(**request.sampling_fields()) == SamplingParams()


@pytest.mark.parametrize(("fields", "param"), [
    ({"n": 9}, "n"), ({"n": 0}, "n"),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ({"top_logprobs": 2}, "top_logprobs"),  # without logprobs: true
    ({"presence_penalty": 2.01}, "presence_penalty"),
    ({"frequency_penalty": -2.5}, "frequency_penalty"),
    ({"logit_bias": {"5": 100.5}}, "logit_bias"),
    ({"logit_bias": {"five": 1}}, "logit_bias"),
    ({"logit_bias": {"-5": 1}}, "logit_bias"),
    ({"logit_bias": {str(i): 1 for i in range(301)}}, "logit_bias"),
])
def test_out_of_range_is_a_400_naming_the_field(fields, param):
    with pytest.raises(ServeError) as error:
        parsed(**fields)
    assert status_of(error.value) == 400 and error.value.param == param


def test_the_edges_of_each_range_are_accepted():
    parsed(n=8, logprobs=True, top_logprobs=20, presence_penalty=-2, frequency_penalty=2,
           logit_bias={str(i): (-100 if i % 2 else 100) for i in range(300)})
    parsed(logprobs=False, top_logprobs=0)


def test_a_completion_of_several_choices_with_logprobs_is_openais_shape():
    body = protocol.chat_completion(
        "chatcmpl-1", "m", "a", "stop", protocol.usage(5, 4), [ENTRY],
        [{"text": "b", "finish_reason": "length", "logprobs": [ENTRY, ENTRY, ENTRY]}])
    completion = ChatCompletion.model_validate(body)
    assert [c.index for c in completion.choices] == [0, 1]
    assert completion.choices[1].finish_reason == "length"
    assert completion.choices[0].logprobs.content[0].top_logprobs[1].token == " b"
    assert len(completion.choices[1].logprobs.content) == 3


def test_a_completion_without_logprobs_says_null():
    body = protocol.chat_completion("chatcmpl-1", "m", "a", "stop", protocol.usage(1, 1))
    assert body["choices"][0]["logprobs"] is None
    ChatCompletion.model_validate(body)


def test_a_chunk_carries_its_choice_and_its_logprobs():
    chunk = ChatCompletionChunk.model_validate(protocol.chat_chunk(
        "chatcmpl-1", "m", {"content": " a"}, index=2, logprobs=[ENTRY]))
    assert chunk.choices[0].index == 2
    assert chunk.choices[0].logprobs.content[0].bytes == [32, 97]
