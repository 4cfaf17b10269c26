"""The transformers engine's own scheduler against transformers' `model.generate`: on the real
SmolLM2 in float32, greedy decoding gives the same tokens, for a request decoded alone and for
the same requests joining and leaving one running batch."""

from __future__ import annotations

import pytest
import torch

from deployments.core.generation import RowControl, SamplingParams
from deployments.core.models import model_path
from deployments.engines.transformers_text import TransformersTextEngine

PROMPTS = ("Where is Rotterdam?", "Write a haiku about the sea.", "Say hello.",
           "List three colours.", "What is two plus two?")
MAX_TOKENS = (24, 16, 8, 20, 12)
JOIN_AT_STEP = (0, 1, 4, 6, 11)


@pytest.fixture(scope="module")
def engine(model_dir):
    return TransformersTextEngine(str(model_path("smollm2-135m-instruct", model_dir)),
                                  dtype="float32", prefix_cache_mib=0)


@pytest.fixture(scope="module")
def prompts(engine) -> list[list[int]]:
    return [engine.encode_chat([{"role": "user", "content": p}]) for p in PROMPTS]


@pytest.fixture(scope="module")
def reference(engine, prompts) -> list[list[int]]:
    """transformers' greedy `generate`, one prompt at a time, cut after the first token the
    engine treats as end-of-sequence."""
    return [generate_greedy(engine, prompt, n) for prompt, n in zip(prompts, MAX_TOKENS)]


def generate_greedy(engine: TransformersTextEngine, prompt: list[int], max_tokens: int
                    ) -> list[int]:
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        out = engine.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                    do_sample=False, max_new_tokens=max_tokens,
                                    eos_token_id=sorted(engine.eos_ids),
                                    pad_token_id=engine.tokenizer.pad_token_id)
    tokens = out[0, len(prompt):].tolist()
    end = next((k for k, token in enumerate(tokens) if token in engine.eos_ids), None)
    return tokens if end is None else tokens[:end + 1]


def greedy(max_tokens: int) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens, temperature=0)


def test_a_request_alone_decodes_the_tokens_generate_gives(engine, prompts, reference):
    for prompt, max_tokens, expected in zip(prompts, MAX_TOKENS, reference):
        scheduler = engine.new_scheduler(1)
        sequence = engine.new_sequence(prompt, greedy(max_tokens), RowControl())
        scheduler.add(sequence)
        while scheduler.has_work():
            scheduler.step()
        assert sequence.tokens == expected


def test_requests_joining_a_running_batch_decode_the_tokens_generate_gives(
        engine, prompts, reference):
    scheduler = engine.new_scheduler(max_running=8)
    sequences = [engine.new_sequence(prompt, greedy(n), RowControl())
                 for prompt, n in zip(prompts, MAX_TOKENS)]
    rows_per_step, step = [], 0
    while step <= max(JOIN_AT_STEP) or scheduler.has_work():
        for sequence, at in zip(sequences, JOIN_AT_STEP):
            if at == step:
                scheduler.add(sequence)
        rows_per_step.append(scheduler.step().decoded)
        step += 1
    assert [s.tokens for s in sequences] == reference
    assert max(rows_per_step) >= 3  # the rows really shared decode steps
