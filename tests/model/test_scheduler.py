"""Iteration-level scheduling on the real SmolLM2: rows join a running batch between decode
steps and leave it when they finish, each decoding as it would alone; prompt prefixes computed
once are reused.

In float32 a row's greedy tokens are the same whatever batch it decodes in. In bfloat16 the
batch's shape changes the rounding, so two near-tied tokens may swap: there the tokens must agree
until the first one that differs, and that one must be a near-tie in the logits of the row
decoded alone."""

from __future__ import annotations

import pytest
import torch

from deployments.core.generation import Completion, RowControl, SamplingParams
from deployments.core.models import model_path
from deployments.engines.transformers_text import TransformersTextEngine

SYSTEM = ("You are a careful assistant for a shipping company. Answer in one short sentence, "
          "name the port when you know it, and never invent tracking numbers. ") * 3
QUESTIONS = ("Where is Rotterdam?", "What is a container ship?", "Say hello.",
             "Name a port in Asia.", "What is a bill of lading?")
# How far below the best logit a bfloat16 token may be and still count as the same greedy
# choice: a few bfloat16 steps at this model's logit sizes (one step is 0.0625 at 8-16 and
# 0.125 at 16-32). A token taken from another row's logits misses by several units.
BF16_LOGIT_TOLERANCE = 0.5


@pytest.fixture(scope="module")
def engine(model_dir):
    return TransformersTextEngine(str(model_path("smollm2-135m-instruct", model_dir)))


@pytest.fixture(scope="module")
def uncached(model_dir):
    return TransformersTextEngine(str(model_path("smollm2-135m-instruct", model_dir)),
                                  prefix_cache_mib=0)


@pytest.fixture(scope="module")
def uncached_bf16(model_dir):
    return TransformersTextEngine(str(model_path("smollm2-135m-instruct", model_dir)),
                                  dtype="bfloat16", prefix_cache_mib=0)


def conversation(question: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


def run_staggered(engine, prompts, params, join_at_step: list[int], max_running: int = 8,
                  sequences: list | None = None):
    """Adds prompt i before step join_at_step[i] of one scheduler; returns (outcomes, rows
    decoded per step). `sequences`, when given, receives each row's Sequence (its tokens)."""
    scheduler = engine.new_scheduler(max_running)
    outcomes: list[Completion | Exception | None] = [None] * len(prompts)
    rows_per_step, step = [], 0
    while step <= max(join_at_step) or scheduler.has_work():
        for i, at in enumerate(join_at_step):
            if at == step:
                sequence = engine.new_sequence(
                    prompts[i], params[i], RowControl(),
                    on_finish=lambda result, i=i: outcomes.__setitem__(i, result))
                scheduler.add(sequence)
                if sequences is not None:
                    sequences.append((i, sequence))
        rows_per_step.append(scheduler.step().decoded)
        step += 1
    return outcomes, rows_per_step


def alone(engine, prompt, params) -> Completion:
    [completion] = engine.generate_batch([prompt], [params])
    return completion


def tokens_alone(engine, prompt, params) -> list[int]:
    scheduler = engine.new_scheduler(1)
    sequence = engine.new_sequence(prompt, params, RowControl())
    scheduler.add(sequence)
    while scheduler.has_work():
        scheduler.step()
    return sequence.tokens


def assert_same_greedy_choices(engine, prompt: list[int], joined: list[int],
                               expected: list[int]) -> None:
    """Equal up to the first token that differs, which must be a near-tie of the row alone."""
    same = next((k for k, (a, b) in enumerate(zip(joined, expected)) if a != b), None)
    if same is None:
        assert len(joined) == len(expected), (joined, expected)
        return
    with torch.inference_mode():
        ids = torch.tensor([prompt + expected[:same]])
        logits = engine.model(input_ids=ids).logits[0, -1].float()
    gap = float(logits[expected[same]] - logits[joined[same]])
    assert gap <= BF16_LOGIT_TOLERANCE, f"token {same}: {joined[same]} is {gap:.3f} below"


@pytest.mark.parametrize("engine_name", ["uncached", "uncached_bf16"])
def test_rows_joining_and_leaving_a_running_batch_decode_as_they_would_alone(request,
                                                                             engine_name):
    uncached = request.getfixturevalue(engine_name)  # float32 with SDPA; bfloat16, eager
    prompts = [uncached.encode_chat(conversation(q)) for q in QUESTIONS]
    params = [SamplingParams(max_tokens=n, temperature=0) for n in (20, 6, 14, 3, 18)]
    sequences: list = []
    outcomes, rows = run_staggered(uncached, prompts, params, join_at_step=[0, 2, 3, 5, 9],
                                   sequences=sequences)
    assert all(isinstance(c, Completion) for c in outcomes)
    if engine_name == "uncached":
        expected = [alone(uncached, p, sp) for p, sp in zip(prompts, params)]
        assert [c.text for c in outcomes] == [c.text for c in expected]
        assert [c.completion_tokens for c in outcomes] == [c.completion_tokens for c in expected]
    else:
        for i, sequence in sequences:
            assert_same_greedy_choices(uncached, prompts[i], sequence.tokens,
                                       tokens_alone(uncached, prompts[i], params[i]))
    # The batch grew as rows joined and shrank as they left, between steps.
    assert max(rows) >= 3 and rows[0] == 1 and rows[-1] == 1


def test_seeded_samples_are_the_same_joined_late_or_alone(uncached):
    prompts = [uncached.encode_chat(conversation(q)) for q in QUESTIONS[:3]]
    params = [SamplingParams(max_tokens=12, temperature=0.9, seed=s) for s in (1, 2, 3)]
    outcomes, _ = run_staggered(uncached, prompts, params, join_at_step=[0, 4, 7])
    assert [c.text for c in outcomes] == [alone(uncached, p, sp).text
                                          for p, sp in zip(prompts, params)]


def test_a_running_row_is_never_prefilled_again(uncached, monkeypatch):
    prefills: list[int] = []
    real = uncached.runner.prefill
    monkeypatch.setattr(uncached.runner, "prefill",
                        lambda prompt: prefills.append(len(prompt)) or real(prompt))
    prompts = [uncached.encode_chat(conversation(q)) for q in QUESTIONS[:3]]
    params = [SamplingParams(max_tokens=10, temperature=0)] * 3
    outcomes, rows = run_staggered(uncached, prompts, params, join_at_step=[0, 3, 5])
    assert prefills == [len(p) for p in prompts]  # once each, whatever joined later
    assert sum(rows) == sum(c.completion_tokens for c in outcomes) - len(prompts)


def test_cancelling_one_row_frees_its_place_while_the_others_go_on(uncached):
    prompts = [uncached.encode_chat(conversation(q)) for q in QUESTIONS[:3]]
    scheduler = uncached.new_scheduler(max_running=8)
    outcomes: dict[int, Completion] = {}
    controls = [RowControl() for _ in prompts]
    for i, (prompt, control) in enumerate(zip(prompts, controls)):
        scheduler.add(uncached.new_sequence(prompt, SamplingParams(max_tokens=12, temperature=0),
                                            control, on_finish=lambda r, i=i: outcomes.update(
                                                {i: r})))
    assert scheduler.step().decoded == 3
    controls[1].cancelled.set()
    assert scheduler.step().decoded == 2 and outcomes[1].finish_reason == "abort"
    while scheduler.has_work():
        scheduler.step()
    for i in (0, 2):
        expected = alone(uncached, prompts[i], SamplingParams(max_tokens=12, temperature=0))
        assert outcomes[i].text == expected.text


def test_a_shared_system_prompt_is_prefilled_once_and_reused(engine, uncached):
    prompts = [engine.encode_chat(conversation(q)) for q in QUESTIONS[:3]]
    greedy = SamplingParams(max_tokens=16, temperature=0)
    scheduler = engine.new_scheduler()
    cached: list[int] = []
    for prompt in prompts:
        sequence = engine.new_sequence(prompt, greedy, RowControl())
        scheduler.add(sequence)
        while scheduler.has_work():
            scheduler.step()
        cached.append(sequence.cached_prompt_tokens)
        assert sequence.text == alone(uncached, prompt, greedy).text
    system_tokens = len(engine.encode_chat([{"role": "system", "content": SYSTEM}]))
    assert cached[0] in (0, cached[1])  # an earlier test may have cached it already
    assert all(c >= system_tokens - engine.prefix_cache.block_tokens for c in cached[1:])
    assert engine.prefix_cache.stats()["hit_tokens"] >= 2 * (system_tokens - 16)


def test_a_burst_of_prompts_is_admitted_within_the_prefill_budget(uncached):
    prompts = [uncached.encode_chat(conversation(q)) for q in QUESTIONS]
    scheduler = uncached.new_scheduler(max_running=8,
                                       max_prefill_tokens_per_step=2 * len(prompts[0]))
    for prompt in prompts:
        scheduler.add(uncached.new_sequence(prompt, SamplingParams(max_tokens=30, temperature=0),
                                            RowControl()))
    admitted = [scheduler.step().prefilled for _ in range(3)]
    assert admitted == [2, 2, 1]
