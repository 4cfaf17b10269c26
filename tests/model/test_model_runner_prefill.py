"""The model runner's prefill on the real SmolLM2 (float32): the model computes the logits of
the prompt's last position only, which are the ones a whole-prompt forward pass gives there,
with and without a cached prefix."""

from __future__ import annotations

import pytest
import torch

from deployments.core.models import model_path
from deployments.engines.model_runner import ModelRunner
from deployments.engines.prefix_cache import PrefixCache
from deployments.engines.transformers_text import TransformersTextEngine

SYSTEM = "You are a careful assistant for a shipping company. Answer in one short sentence. " * 4


@pytest.fixture(scope="module")
def engine(model_dir):
    return TransformersTextEngine(str(model_path("smollm2-135m-instruct", model_dir)),
                                  dtype="float32", prefix_cache_mib=0)


def prompt(engine, question: str) -> list[int]:
    return engine.encode_chat([{"role": "system", "content": SYSTEM},
                               {"role": "user", "content": question}])


def logits_shapes_of(model: torch.nn.Module, run) -> tuple[list[tuple[int, ...]], object]:
    """The shape of the logits of every forward pass of `model` during `run()`, and its
    result."""
    shapes: list[tuple[int, ...]] = []
    hook = model.register_forward_hook(lambda _m, _a, out: shapes.append(tuple(out.logits.shape)))
    try:
        return shapes, run()
    finally:
        hook.remove()


def whole_prompt_last_logits(engine, tokens: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return engine.model(input_ids=torch.tensor([tokens])).logits[0, -1]


def test_prefill_computes_only_the_last_positions_logits(engine):
    tokens = prompt(engine, "Where is Rotterdam?")
    shapes, (_, logits, cached) = logits_shapes_of(
        engine.model, lambda: ModelRunner(engine.model, None).prefill(tokens))
    vocab = engine.model.config.vocab_size
    assert len(tokens) > 50 and cached == 0
    assert shapes == [(1, 1, vocab)]
    expected = whole_prompt_last_logits(engine, tokens)
    assert torch.allclose(logits, expected, atol=1e-4)
    assert int(logits.argmax()) == int(expected.argmax())


def test_prefill_after_a_cached_prefix_keeps_one_position_too(engine):
    runner = ModelRunner(engine.model, PrefixCache(64 << 20))
    runner.prefill(prompt(engine, "Where is Rotterdam?"))  # caches the system prompt's blocks
    tokens = prompt(engine, "Name a port in Asia.")
    shapes, (_, logits, cached) = logits_shapes_of(engine.model, lambda: runner.prefill(tokens))
    assert cached > 0 and shapes == [(1, 1, engine.model.config.vocab_size)]
    expected = whole_prompt_last_logits(engine, tokens)
    assert torch.allclose(logits, expected, atol=1e-4)
    assert int(logits.argmax()) == int(expected.argmax())
