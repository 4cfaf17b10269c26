"""n, logprobs, penalties and logit bias on the transformers scheduler, on the real SmolLM2 in
float32, against a reference written here: the model's full forward pass over the whole text at
every step (no KV cache), with OpenAI's formulas applied to its logits."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import pytest
import torch

from deployments.core.errors import InvalidRequest
from deployments.core.generation import Completion, RowControl, SamplingParams, StreamDelta
from deployments.core.models import model_path
from deployments.engines.transformers_text import TransformersTextEngine

Adjust = Callable[[torch.Tensor, list[int]], torch.Tensor]


@pytest.fixture(scope="module")
def engine(model_dir):
    return TransformersTextEngine(str(model_path("smollm2-135m-instruct", model_dir)),
                                  dtype="float32", prefix_cache_mib=0)


@pytest.fixture(scope="module")
def prompt(engine) -> list[int]:
    return engine.encode_chat([{"role": "user", "content": "Say the word ship five times."}])


def decode(engine, prompt, params, control: RowControl | None = None, max_running: int = 8):
    """(the request's Sequence, its outcome, each step's report), alone on a scheduler."""
    scheduler = engine.new_scheduler(max_running)
    outcomes: list = []
    sequence = engine.new_sequence(prompt, params, control or RowControl(), outcomes.append)
    scheduler.add(sequence)
    reports = []
    while scheduler.has_work():
        reports.append(scheduler.step())
    [outcome] = outcomes
    return sequence, outcome, reports


@torch.inference_mode()
def next_logits(engine, tokens: list[int]) -> torch.Tensor:
    return engine.model(torch.tensor([tokens])).logits[0, -1].float()


def reference_greedy(engine, prompt: list[int], steps: int, adjust: Adjust) -> list[int]:
    tokens: list[int] = []
    for _ in range(steps):
        token = int(torch.argmax(adjust(next_logits(engine, prompt + tokens), tokens)))
        if token in engine.eos_ids:
            break
        tokens.append(token)
    return tokens


def openai_penalties(presence: float, frequency: float) -> Adjust:
    def adjust(logits: torch.Tensor, tokens: list[int]) -> torch.Tensor:
        logits = logits.clone()
        for token, count in Counter(tokens).items():
            logits[token] -= count * frequency + (count > 0) * presence
        return logits
    return adjust


def test_penalties_follow_openais_formula(engine, prompt):
    params = SamplingParams(max_tokens=16, temperature=0, presence_penalty=1.5,
                            frequency_penalty=1.0)
    penalised, _, _ = decode(engine, prompt, params)
    plain, _, _ = decode(engine, prompt, SamplingParams(max_tokens=16, temperature=0))
    assert penalised.tokens == reference_greedy(engine, prompt, 16, openai_penalties(1.5, 1.0))
    assert penalised.tokens != plain.tokens
    assert max(Counter(penalised.tokens).values()) < max(Counter(plain.tokens).values())


def test_logit_bias_forces_and_forbids_tokens(engine, prompt):
    ship = engine.tokenizer.encode(" ship")[0]
    forced, done, _ = decode(engine, prompt, SamplingParams(max_tokens=6, temperature=0,
                                                            logit_bias=((ship, 100.0),)))
    assert forced.tokens == [ship] * 6 and done.text == " ship" * 6
    plain, _, _ = decode(engine, prompt, SamplingParams(max_tokens=6, temperature=0))
    banned = ((plain.tokens[0], -100.0),)
    forbidden, _, _ = decode(engine, prompt, SamplingParams(max_tokens=6, temperature=0,
                                                            logit_bias=banned))

    def bias(logits: torch.Tensor, tokens: list[int]) -> torch.Tensor:
        logits = logits.clone()
        logits[plain.tokens[0]] -= 100.0
        return logits
    assert forbidden.tokens[0] != plain.tokens[0]
    assert forbidden.tokens == reference_greedy(engine, prompt, 6, bias)


def test_a_bias_on_a_token_outside_the_vocabulary_is_refused_before_any_batch(engine, prompt):
    with pytest.raises(InvalidRequest) as raised:
        engine.new_sequence(prompt, SamplingParams(logit_bias=((10**6, 1.0),)), RowControl())
    assert raised.value.param == "logit_bias"


def test_greedy_logprobs_are_the_models_with_the_chosen_token_first(engine, prompt):
    params = SamplingParams(max_tokens=10, temperature=0, logprobs=True, top_logprobs=5)
    sequence, done, _ = decode(engine, prompt, params)
    assert len(done.logprobs) == done.completion_tokens == len(sequence.tokens)
    for place, (token, entry) in enumerate(zip(sequence.tokens, done.logprobs, strict=True)):
        expected = torch.log_softmax(next_logits(engine, prompt + sequence.tokens[:place]), -1)
        assert entry["logprob"] == pytest.approx(float(expected[token]), abs=1e-3)
        tops = [top["logprob"] for top in entry["top_logprobs"]]
        assert len(tops) == 5 and tops == sorted(tops, reverse=True)
        assert entry["top_logprobs"][0]["bytes"] == entry["bytes"]  # greedy: the best one
        assert sum(math.exp(lp) for lp in tops) <= 1 + 1e-4
    assert b"".join(bytes(entry["bytes"]) for entry in done.logprobs) == done.text.encode()


def test_sampled_logprobs_are_of_the_distribution_sampled_from(engine, prompt):
    params = SamplingParams(max_tokens=8, temperature=0.7, top_p=0.9, seed=3, logprobs=True,
                            top_logprobs=20)
    sequence, done, _ = decode(engine, prompt, params)
    for place, (token, entry) in enumerate(zip(sequence.tokens, done.logprobs, strict=True)):
        logits = next_logits(engine, prompt + sequence.tokens[:place])
        probs = torch.softmax(logits / 0.7, -1)
        ordered, order = torch.sort(probs, descending=True)
        kept = order[(torch.cumsum(ordered, -1) - ordered) < 0.9]
        nucleus = probs[kept].sum()
        assert token in kept.tolist()
        assert entry["logprob"] == pytest.approx(math.log(probs[token] / nucleus), abs=1e-3)
        outside = [top for top in entry["top_logprobs"][len(kept):]]
        assert all(top["logprob"] == -9999.0 for top in outside)


def test_n_greedy_choices_share_one_prefill_and_are_identical(engine, prompt):
    alone, one, _ = decode(engine, prompt, SamplingParams(max_tokens=12, temperature=0))
    _, three, reports = decode(engine, prompt, SamplingParams(n=3, max_tokens=12,
                                                              temperature=0))
    assert [choice.text for choice in three.choices] == [one.text] * 3
    assert sum(report.prefilled for report in reports) == 1
    assert max(report.decoded for report in reports) == 3
    assert three.all_completion_tokens == 3 * one.completion_tokens


def test_each_seeded_choice_decodes_as_its_own_request_seeded_seed_plus_index(engine, prompt):
    _, together, _ = decode(engine, prompt, SamplingParams(n=3, max_tokens=10, seed=11))
    alone = [decode(engine, prompt, SamplingParams(max_tokens=10, seed=11 + i))[1].text
             for i in range(3)]
    assert [choice.text for choice in together.choices] == alone
    assert len(set(alone)) > 1


def test_streamed_choices_carry_their_index_text_and_logprobs(engine, prompt):
    deltas: list[StreamDelta] = []
    params = SamplingParams(n=2, max_tokens=12, seed=5, logprobs=True, top_logprobs=2)
    _, done, _ = decode(engine, prompt, params, RowControl(on_text=deltas.append))
    for index, choice in enumerate(done.choices):
        mine = [delta for delta in deltas if delta.index == index]
        assert "".join(delta.text for delta in mine) == choice.text
        assert [entry for delta in mine for entry in delta.logprobs] == choice.logprobs
    assert {delta.index for delta in deltas} == {0, 1}


def test_a_request_of_more_choices_than_rows_runs_alone(engine, prompt):
    _, done, reports = decode(engine, prompt, SamplingParams(n=3, max_tokens=4, temperature=0),
                              max_running=2)
    assert isinstance(done, Completion) and len(done.choices) == 3
    assert max(report.decoded for report in reports) == 3


def test_choices_wait_for_rows_while_others_run(engine, prompt):
    scheduler = engine.new_scheduler(3)
    outcomes: list = []
    first = SamplingParams(max_tokens=6, temperature=0)
    scheduler.add(engine.new_sequence(prompt, first, RowControl(), outcomes.append))
    scheduler.step()
    scheduler.add(engine.new_sequence(prompt, SamplingParams(n=3, max_tokens=3, temperature=0),
                                      RowControl(), outcomes.append))
    prefilled = []
    while scheduler.has_work():
        prefilled.append(scheduler.step().prefilled)
    assert prefilled[0] == 0 and sum(prefilled) == 1  # not beside the running row
    assert [len(outcome.choices) for outcome in outcomes] == [1, 3]


def test_a_cancelled_request_of_several_choices_still_ends(engine, prompt):
    control = RowControl()
    control.cancelled.set()
    _, done, reports = decode(engine, prompt, SamplingParams(n=3, max_tokens=4), control)
    assert [choice.finish_reason for choice in done.choices] == ["abort"] * 3
    assert sum(report.prefilled for report in reports) == 0
