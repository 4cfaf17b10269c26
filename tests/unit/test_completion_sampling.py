"""/v1/completions' sampling options over fake text groups: `n` (choices prompt-major),
the legacy `logprobs`, the penalties and `logit_bias`: what reaches the text group, what is a
400 naming the field, and the answers, whole and streamed, checked against the openai
package's Completion type."""

from __future__ import annotations

import json

import pytest
from openai.types import Completion

from deployments.core.call_protocol import CompletionReply, StreamEnd, TokenDelta
from deployments.core.generation import SamplingParams
from tests.unit.frontend_fakes import TEXT_MODEL, fake_groups


@pytest.fixture
def groups():
    groups = fake_groups()
    groups[0].answers.update(generate=choices_of, stream=streamed_choices_of)
    return groups


def entry(token: str, logprob: float, tops: list[tuple[str, float]]) -> dict:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode()),
            "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())}
                             for t, lp in tops]}


def tokens_of(prompt: str, choice: int) -> list[dict]:
    """Choice `choice` of `prompt`: two tokens, the second not the likeliest."""
    return [entry(f" {prompt}{choice}", -0.5, [(f" {prompt}{choice}", -0.5), (" x", -1.0)]),
            entry(" end", -0.25, [(" y", -0.2), (" end", -0.25)])]


def choices_of(prompt: str, params: SamplingParams) -> CompletionReply:
    """The text group's answer: `n` choices of `prompt`, with entries when asked for."""
    choices = [{"text": "".join(e["token"] for e in tokens_of(prompt, j)),
                "finish_reason": "length",
                "logprobs": tokens_of(prompt, j)
                if params.logprobs else None} for j in range(params.n)]
    first, *others = choices
    return CompletionReply(first["text"], 1, 2 * params.n, "length", first["logprobs"],
                           others)


def streamed_choices_of(prompt: str, params: SamplingParams) -> list:
    """The same choices streamed token by token, the choices interleaved."""
    deltas = [TokenDelta(token["token"], index=j,
                         logprobs=[token] if params.logprobs else None)
              for place in range(2) for j in range(params.n)
              for token in [tokens_of(prompt, j)[place]]]
    return [*deltas, StreamEnd(1, 2 * params.n, "length", ["length"] * params.n)]


def post(client, **fields):
    return client.post("/v1/completions", json={"model": TEXT_MODEL, "max_tokens": 2,
                                                **fields})


def test_the_options_reach_the_text_group_as_chats_sampling_params(client, groups):
    assert post(client, prompt="a", n=3, logprobs=4, presence_penalty=0.5,
                frequency_penalty=-1, logit_bias={"42": 100, "7": -100}).status_code == 200
    params = groups[0].calls[-1][1][1]
    assert (params.n, params.logprobs, params.top_logprobs) == (3, True, 4)
    assert (params.presence_penalty, params.frequency_penalty) == (0.5, -1.0)
    assert params.logit_bias == ((7, -100.0), (42, 100.0))


def test_logprobs_zero_asks_for_the_chosen_tokens_alone_and_null_for_none(client, groups):
    post(client, prompt="a", logprobs=0)
    assert (groups[0].calls[-1][1][1].logprobs, groups[0].calls[-1][1][1].top_logprobs) == (
        True, 0)
    post(client, prompt="a", logprobs=None)
    assert groups[0].calls[-1][1][1] == SamplingParams(max_tokens=2)


@pytest.mark.parametrize(("fields", "param"), [
    ({"n": 9}, "n"), ({"n": 0}, "n"), ({"logprobs": 6}, "logprobs"),
    ({"logprobs": -1}, "logprobs"), ({"logprobs": True}, "logprobs"),
    ({"logprobs": "2"}, "logprobs"), ({"presence_penalty": 2.5}, "presence_penalty"),
    ({"frequency_penalty": -3}, "frequency_penalty"), ({"logit_bias": {"5": 101}}, "logit_bias"),
    ({"logit_bias": {"five": 1}}, "logit_bias"), ({"top_logprobs": 2}, "top_logprobs"),
])
def test_out_of_range_is_a_400_naming_the_field(client, groups, fields, param):
    reply = post(client, prompt="a", **fields)
    assert reply.status_code == 400 and reply.json()["error"]["param"] == param, reply.text
    assert groups[0].calls == []


def test_logprobs_of_an_echoed_prompt_are_refused_as_an_unsupported_value(client, groups):
    reply = post(client, prompt="a", echo=True, logprobs=1)
    error = reply.json()["error"]
    assert (reply.status_code, error["param"], error["code"]) == (
        400, "logprobs", "unsupported_value")
    assert post(client, prompt="a", echo=True, logprobs=None).status_code == 200


def test_n_choices_of_each_prompt_come_prompt_major_with_legacy_logprobs(client):
    reply = post(client, prompt=["a", "b"], n=2, logprobs=1)
    completion = Completion.model_validate(reply.json())
    assert [(c.index, c.text) for c in completion.choices] == [
        (0, " a0 end"), (1, " a1 end"), (2, " b0 end"), (3, " b1 end")]
    logprobs = completion.choices[3].logprobs
    assert logprobs.tokens == [" b1", " end"]
    assert logprobs.token_logprobs == [-0.5, -0.25]
    assert logprobs.top_logprobs == [{" b1": -0.5}, {" y": -0.2, " end": -0.25}]
    assert logprobs.text_offset == [0, 3]
    assert completion.usage.completion_tokens == 2 * 2 * 2


def test_without_logprobs_every_choice_says_null(client):
    completion = Completion.model_validate(post(client, prompt=["a", "b"], n=2).json())
    assert len(completion.choices) == 4
    assert all(c.logprobs is None for c in completion.choices)


def sse_chunks(reply) -> list[dict]:
    events = [line[len("data: "):] for line in reply.text.splitlines()
              if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    for chunk in chunks:  # mid-stream finish_reason is null, which the type leaves out
        Completion.model_validate({**chunk, "choices": [
            {**c, "finish_reason": c["finish_reason"] or "stop"} for c in chunk["choices"]]})
    return chunks


def test_streamed_choices_are_named_prompt_major_and_carry_their_logprobs(client):
    reply = post(client, prompt=["a", "b"], n=2, logprobs=1, stream=True,
                 stream_options={"include_usage": True})
    *chunks, usage = sse_chunks(reply)
    texts, tokens, offsets, finishes = {}, {}, {}, {}
    for chunk in chunks:
        [choice] = chunk["choices"]
        index = choice["index"]
        texts[index] = texts.get(index, "") + choice["text"]
        tokens[index] = tokens.get(index, []) + choice["logprobs"]["tokens"]
        offsets[index] = offsets.get(index, []) + choice["logprobs"]["text_offset"]
        if choice["finish_reason"]:
            finishes[index] = choice["finish_reason"]
    assert texts == {0: " a0 end", 1: " a1 end", 2: " b0 end", 3: " b1 end"}
    assert tokens[2] == [" b0", " end"] and offsets[2] == [0, 3]
    assert finishes == dict.fromkeys(range(4), "length")
    assert usage["usage"]["completion_tokens"] == 8


def test_a_streamed_answer_is_the_whole_ones(client):
    whole = Completion.model_validate(post(client, prompt="a", n=2, logprobs=1).json())
    chunks = sse_chunks(post(client, prompt="a", n=2, logprobs=1, stream=True))
    for choice in whole.choices:
        mine = [c for chunk in chunks for c in chunk["choices"] if c["index"] == choice.index]
        assert "".join(c["text"] for c in mine) == choice.text
        assert [lp for c in mine for lp in c["logprobs"]["top_logprobs"]] == (
            choice.logprobs.top_logprobs)


def test_streamed_echo_opens_every_choice_of_its_prompt(client):
    chunks = sse_chunks(post(client, prompt=["p", "q"], n=2, echo=True, stream=True))
    firsts = {}
    for chunk in chunks:
        [choice] = chunk["choices"]
        firsts.setdefault(choice["index"], choice["text"])
    assert firsts == {0: "p", 1: "p", 2: "q", 3: "q"}
