"""/v1/completions' n, legacy logprobs, presence and frequency penalties and logit_bias through
the official openai client, whole and streamed, on both text engines: the app's transformers
scheduler and vLLM (the second application of vllm/conftest.py). Every answer's JSON is
validated against the openai package's Completion type."""

from __future__ import annotations

import openai
import pytest
from openai.types import Completion

from deployments.engines.token_logprobs import BYTE_DECODER
from tests.integration.vllm.conftest import MODEL

pytestmark = pytest.mark.integration
STORY, OTHER = "Once upon a time, in a small village by the sea,", "The capital of France is"
BYTE_ENCODER = {byte: char for char, byte in BYTE_DECODER.items()}  # bytes -> a BPE piece


def create(engine_client: openai.OpenAI, **fields) -> Completion:
    """The answer, validated from its JSON as it came over the wire."""
    raw = engine_client.completions.with_raw_response.create(model=MODEL, **fields)
    return Completion.model_validate(raw.http_response.json())


def stream(engine_client: openai.OpenAI, **fields) -> list[Completion]:
    """The chunks, each validated (a mid-stream finish_reason is null, which the type's
    literal leaves out, so that one field is set before)."""
    chunks = [chunk.to_dict() for chunk in
              engine_client.completions.create(model=MODEL, stream=True, **fields)]
    return [Completion.model_validate({**chunk, "choices": [
        {**c, "finish_reason": c.get("finish_reason") or "stop"} for c in chunk["choices"]]})
        for chunk in chunks]


def test_greedy_token_logprobs_are_the_top_entries_of_the_chosen_tokens(engine_client):
    answer = create(engine_client, prompt=STORY, max_tokens=10, temperature=0, logprobs=3)
    [choice] = answer.choices
    logprobs = choice.logprobs
    assert choice.finish_reason == "length"
    assert len(logprobs.tokens) == answer.usage.completion_tokens == 10
    for token, logprob, top in zip(logprobs.tokens, logprobs.token_logprobs,
                                   logprobs.top_logprobs, strict=True):
        assert len(top) == 3 and max(top, key=top.get) == token  # greedy: the most likely
        assert logprob == pytest.approx(max(top.values()), abs=1e-4) and logprob <= 0
    assert "".join(logprobs.tokens) == choice.text
    assert logprobs.text_offset == [len("".join(logprobs.tokens[:i])) for i in range(10)]


def test_logprobs_zero_lists_the_chosen_token_alone(engine_client):
    logprobs = create(engine_client, prompt=STORY, max_tokens=4, temperature=0,
                      logprobs=0).choices[0].logprobs
    assert [list(top) for top in logprobs.top_logprobs] == [[t] for t in logprobs.tokens]


def test_no_logprobs_unless_asked(engine_client):
    answer = create(engine_client, prompt=STORY, max_tokens=3, temperature=0)
    assert answer.choices[0].logprobs is None


def test_streamed_logprobs_are_the_whole_answers(engine_client):
    whole = create(engine_client, prompt=STORY, max_tokens=12, temperature=0, logprobs=2).choices[0]
    choices = [c for chunk in stream(engine_client, prompt=STORY, max_tokens=12, temperature=0,
                                      logprobs=2) for c in chunk.choices]
    assert "".join(c.text for c in choices) == whole.text
    streamed = [c.logprobs for c in choices if c.logprobs]
    assert [t for lp in streamed for t in lp.tokens] == whole.logprobs.tokens
    assert [o for lp in streamed for o in lp.text_offset] == whole.logprobs.text_offset
    assert [p for lp in streamed for p in lp.token_logprobs] == pytest.approx(
        whole.logprobs.token_logprobs, abs=1e-3)


def first_words(text: str) -> list[str]:
    """A greedy answer's start: batched beside other rows, vLLM's CPU kernels may turn a near
    tie later in the answer the other way, never its first words."""
    return text.split()[:3]


def test_n_greedy_choices_of_each_prompt_come_prompt_major(engine_client):
    alone = [first_words(create(engine_client, prompt=p, max_tokens=6,
                                temperature=0).choices[0].text)
             for p in (STORY, OTHER)]
    assert alone[0] != alone[1]
    answer = create(engine_client, prompt=[STORY, OTHER], max_tokens=6, temperature=0, n=2)
    assert [c.index for c in answer.choices] == [0, 1, 2, 3]
    assert [first_words(c.text) for c in answer.choices] == [alone[0]] * 2 + [alone[1]] * 2
    assert answer.choices[0].text == answer.choices[1].text
    assert answer.choices[2].text == answer.choices[3].text
    one = create(engine_client, prompt=STORY, max_tokens=6, temperature=0)
    three = create(engine_client, prompt=STORY, max_tokens=6, temperature=0, n=3)
    assert three.usage.completion_tokens == 3 * one.usage.completion_tokens
    assert three.usage.prompt_tokens == one.usage.prompt_tokens


def test_n_sampled_choices_differ(engine_client):
    answer = create(engine_client, prompt=STORY, max_tokens=12, temperature=1.0, seed=7, n=3)
    assert len(answer.choices) == 3
    assert len({c.text for c in answer.choices}) > 1


def test_n_streamed_choices_name_their_index_and_finish(engine_client):
    whole = create(engine_client, prompt=[STORY, OTHER], max_tokens=6, temperature=0, n=2,
                   logprobs=1)
    chunks = stream(engine_client, prompt=[STORY, OTHER], max_tokens=6, temperature=0, n=2,
                    logprobs=1, stream_options={"include_usage": True})
    texts, tokens, finishes = {}, {}, {}
    for choice in (c for chunk in chunks for c in chunk.choices):
        texts[choice.index] = texts.get(choice.index, "") + choice.text
        tokens[choice.index] = tokens.get(choice.index, []) + (
            choice.logprobs.tokens if choice.logprobs else [])
        if choice.finish_reason != "stop":  # "stop" stands for null here (stream())
            finishes[choice.index] = choice.finish_reason
    assert texts == {c.index: c.text for c in whole.choices}
    assert tokens == {c.index: c.logprobs.tokens for c in whole.choices}
    assert finishes == dict.fromkeys(range(4), "length")
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens == 24


def repeats(logprobs) -> int:
    """How many of an answer's tokens it had already said."""
    return len(logprobs.tokens) - len(set(logprobs.tokens))


def test_penalties_change_a_repetitive_answer(engine_client):
    plain = create(engine_client, prompt=STORY, max_tokens=32, temperature=0, logprobs=0).choices[0]
    penalised = create(engine_client, prompt=STORY, max_tokens=32, temperature=0, logprobs=0,
                       presence_penalty=2.0, frequency_penalty=2.0).choices[0]
    assert repeats(plain.logprobs) >= 3, plain.text
    assert repeats(penalised.logprobs) < repeats(plain.logprobs), (plain.text, penalised.text)


def test_logit_bias_forces_and_forbids_a_token(engine_client, tokenizer):
    ship = tokenizer.token_to_id("Ġship")
    forced = create(engine_client, prompt=STORY, max_tokens=5, temperature=0,
                    logit_bias={str(ship): 100})
    assert forced.choices[0].text == " ship" * 5
    first = create(engine_client, prompt=STORY, max_tokens=4, temperature=0,
                   logprobs=1).choices[0].logprobs.tokens[0]
    first_id = tokenizer.token_to_id("".join(BYTE_ENCODER[b] for b in first.encode()))
    banned = create(engine_client, prompt=STORY, max_tokens=4, temperature=0, logprobs=1,
                    logit_bias={str(first_id): -100})
    assert banned.choices[0].logprobs.tokens[0] != first


@pytest.mark.parametrize(("fields", "param"), [
    ({"n": 9}, "n"), ({"logprobs": 6}, "logprobs"), ({"echo": True, "logprobs": 1}, "logprobs"),
    ({"presence_penalty": 2.5}, "presence_penalty"), ({"logit_bias": {"1000000": 5}},
                                                      "logit_bias")])
def test_out_of_range_is_a_400_naming_the_field(engine_client, fields, param):
    with pytest.raises(openai.BadRequestError) as raised:
        create(engine_client, prompt=STORY, max_tokens=2, **fields)
    assert raised.value.param == param
