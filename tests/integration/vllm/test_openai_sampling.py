"""n, logprobs and top_logprobs, presence and frequency penalties and logit_bias through the
official openai client, whole and streamed, on both text engines: the app's transformers
scheduler and vLLM (the second application of vllm/conftest.py). Every answer's JSON is
validated against the openai package's own response types."""

from __future__ import annotations

import re

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from deployments.engines.token_logprobs import BYTE_DECODER
from tests.integration.vllm.conftest import MODEL

pytestmark = pytest.mark.integration
LONG = [{"role": "user", "content": "Write a long story about a ship at sea."}]
REPEAT = [{"role": "user", "content": "Say the word ship ten times."}]
BYTE_ENCODER = {byte: char for char, byte in BYTE_DECODER.items()}  # bytes -> a BPE piece


def create(engine_client: openai.OpenAI, **fields) -> ChatCompletion:
    """The answer, validated from its JSON as it came over the wire."""
    raw = engine_client.chat.completions.with_raw_response.create(model=MODEL, **fields)
    return ChatCompletion.model_validate(raw.http_response.json())


def stream(engine_client: openai.OpenAI, **fields) -> list[ChatCompletionChunk]:
    chunks = engine_client.chat.completions.create(model=MODEL, stream=True, **fields)
    return [ChatCompletionChunk.model_validate(chunk.to_dict()) for chunk in chunks]


def test_logprobs_with_top_logprobs_describe_every_token(engine_client):
    answer = create(engine_client, messages=LONG, max_tokens=10, temperature=0, logprobs=True,
                    top_logprobs=3)
    [choice] = answer.choices
    entries = choice.logprobs.content
    assert choice.finish_reason == "length"
    assert len(entries) == answer.usage.completion_tokens == 10
    for entry in entries:
        tops = [top.logprob for top in entry.top_logprobs]
        assert len(tops) == 3 and tops == sorted(tops, reverse=True) and tops[0] <= 0
        assert entry.top_logprobs[0].token == entry.token  # greedy: the most likely
        assert entry.logprob == pytest.approx(tops[0], abs=1e-4)
    assert b"".join(bytes(e.bytes) for e in entries) == choice.message.content.encode()


def test_no_logprobs_unless_asked(engine_client):
    answer = create(engine_client, messages=LONG, max_tokens=3, temperature=0)
    assert answer.choices[0].logprobs is None


def test_streamed_logprobs_are_the_whole_answers(engine_client):
    whole = create(engine_client, messages=LONG, max_tokens=12, temperature=0, logprobs=True,
                   top_logprobs=2)
    chunks = stream(engine_client, messages=LONG, max_tokens=12, temperature=0, logprobs=True,
                    top_logprobs=2)
    choices = [chunk.choices[0] for chunk in chunks if chunk.choices]
    text = "".join(choice.delta.content or "" for choice in choices)
    entries = [entry for choice in choices if choice.logprobs
               for entry in choice.logprobs.content]
    assert text == whole.choices[0].message.content
    assert [e.token for e in entries] == [e.token for e in whole.choices[0].logprobs.content]
    assert [e.logprob for e in entries] == pytest.approx(
        [e.logprob for e in whole.choices[0].logprobs.content], abs=1e-3)


def test_n_greedy_choices_are_identical_and_counted_in_usage(engine_client):
    one = create(engine_client, messages=LONG, max_tokens=8, temperature=0)
    three = create(engine_client, messages=LONG, max_tokens=8, temperature=0, n=3)
    assert [c.index for c in three.choices] == [0, 1, 2]
    assert {c.message.content for c in three.choices} == {one.choices[0].message.content}
    assert three.usage.completion_tokens == 3 * one.usage.completion_tokens
    assert three.usage.prompt_tokens == one.usage.prompt_tokens


def test_n_sampled_choices_differ(engine_client):
    answer = create(engine_client, messages=LONG, max_tokens=12, temperature=1.0, seed=7, n=3)
    assert len(answer.choices) == 3
    assert len({c.message.content for c in answer.choices}) > 1


def test_n_streamed_choices_are_assembled_by_the_client(engine_client):
    whole = create(engine_client, messages=LONG, max_tokens=8, temperature=0, n=3, logprobs=True)
    with engine_client.chat.completions.stream(model=MODEL, messages=LONG, max_tokens=8,
                                        temperature=0, n=3, logprobs=True,
                                        stream_options={"include_usage": True}) as events:
        final = events.until_done().current_completion_snapshot  # parsing refuses "length"
    assert [c.index for c in final.choices] == [0, 1, 2]
    assert [c.message.content for c in final.choices] == [
        c.message.content for c in whole.choices]
    assert all(c.finish_reason == "length" for c in final.choices)
    assert [len(c.logprobs.content) for c in final.choices] == [8, 8, 8]
    assert final.usage.completion_tokens == whole.usage.completion_tokens == 24


def test_streamed_chunks_name_their_choice(engine_client):
    chunks = stream(engine_client, messages=LONG, max_tokens=6, temperature=1.0, seed=3, n=2)
    indices = [choice.index for chunk in chunks for choice in chunk.choices]
    assert set(indices) == {0, 1}
    finished = [choice.index for chunk in chunks for choice in chunk.choices
                if choice.finish_reason]
    assert sorted(finished) == [0, 1]


def test_penalties_change_a_repetitive_answer(engine_client):
    plain = create(engine_client, messages=REPEAT, max_tokens=24, temperature=0)
    penalised = create(engine_client, messages=REPEAT, max_tokens=24, temperature=0,
                       presence_penalty=2.0, frequency_penalty=2.0)
    ships = count_ships(plain.choices[0].message.content)
    assert ships >= 3
    assert count_ships(penalised.choices[0].message.content) < ships


def count_ships(text: str) -> int:
    return len(re.findall(r"\bship\b", text.lower()))


def test_logit_bias_forces_and_forbids_a_token(engine_client, tokenizer):
    ship = tokenizer.token_to_id("Ġship")
    forced = create(engine_client, messages=LONG, max_tokens=5, temperature=0,
                    logit_bias={str(ship): 100})
    assert forced.choices[0].message.content == " ship" * 5
    plain = create(engine_client, messages=LONG, max_tokens=4, temperature=0, logprobs=True)
    first = plain.choices[0].logprobs.content[0]
    first_id = tokenizer.token_to_id("".join(BYTE_ENCODER[byte] for byte in first.bytes))
    banned = create(engine_client, messages=LONG, max_tokens=4, temperature=0, logprobs=True,
                    logit_bias={str(first_id): -100})
    assert banned.choices[0].logprobs.content[0].token != first.token


def test_a_bias_on_a_token_outside_the_vocabulary_is_a_400(engine_client):
    with pytest.raises(openai.BadRequestError) as raised:
        create(engine_client, messages=LONG, max_tokens=2, logit_bias={"1000000": 5})
    assert raised.value.param == "logit_bias"


@pytest.mark.parametrize(("fields", "param"), [
    ({"n": 9}, "n"), ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ({"top_logprobs": 2}, "top_logprobs"), ({"presence_penalty": 2.5}, "presence_penalty"),
    ({"frequency_penalty": -3}, "frequency_penalty"),
    ({"logit_bias": {"5": 101}}, "logit_bias")])
def test_out_of_range_is_a_400_naming_the_field(openai_client, fields, param):
    with pytest.raises(openai.BadRequestError) as raised:
        create(openai_client, messages=LONG, max_tokens=2, **fields)
    assert raised.value.param == param
