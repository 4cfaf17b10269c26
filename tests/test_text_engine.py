"""The transformers decode loop on the real SmolLM2: per-row settings inside one batch."""

from __future__ import annotations

import pytest
import torch

from deployments.engines.sampling import make_generator, sample_row
from deployments.engines.text_base import SamplingParams
from deployments.engines.transformers_text import TransformersTextEngine
from serve_app.models import model_path

GREEDY = SamplingParams(max_tokens=24, temperature=0)


@pytest.fixture(scope="module")
def engine(model_dir):
    return TransformersTextEngine(str(model_path("smollm2-135m-instruct", model_dir)))


@pytest.fixture(scope="module")
def prompts(engine):
    return [engine.encode_chat([{"role": "user", "content": text}]) for text in
            ("What is the capital of France?", "Write a poem about the sea.", "Hi")]


def test_batched_greedy_equals_unbatched(engine, prompts):
    batched = engine.generate_batch(prompts, [GREEDY] * 3)
    alone = [engine.generate_batch([p], [GREEDY])[0] for p in prompts]
    assert [c.text for c in batched] == [c.text for c in alone]
    assert "Paris" in batched[0].text


def test_each_row_keeps_its_own_limits_and_stops(engine, prompts):
    params = [SamplingParams(max_tokens=3, temperature=0),
              SamplingParams(max_tokens=30, temperature=0),
              SamplingParams(max_tokens=30, temperature=0, stop=("Paris",))]
    short, long_, stopped = engine.generate_batch([prompts[1], prompts[1], prompts[0]], params)
    assert short.completion_tokens == 3 and short.finish_reason == "length"
    assert long_.completion_tokens > 3
    assert stopped.finish_reason == "stop" and "Paris" not in stopped.text


def test_seeded_sampling_is_independent_of_batch_neighbours(engine, prompts):
    seeded = SamplingParams(max_tokens=12, temperature=0.9, seed=7)
    alone = engine.generate_batch([prompts[1]], [seeded])[0].text
    mixed = engine.generate_batch(
        [prompts[0], prompts[1], prompts[2]],
        [SamplingParams(max_tokens=12, temperature=1.5, top_p=0.5, seed=1), seeded, GREEDY])
    assert mixed[1].text == alone


def test_stream_yields_the_same_text_as_a_whole_completion(engine, prompts):
    deltas = list(engine.stream(prompts[0], GREEDY))
    assert deltas[-1].completion is not None
    assert "".join(d.text for d in deltas) == engine.generate_batch([prompts[0]], [GREEDY])[0].text
    assert sum(1 for d in deltas if d.text) >= 3


def test_stream_stops_when_cancelled(engine, prompts):
    import threading

    cancelled = threading.Event()
    stream = engine.stream(prompts[1], SamplingParams(max_tokens=100, temperature=0), cancelled)
    next(stream)
    cancelled.set()
    final = [d for d in stream if d.completion is not None][0]
    assert final.completion.finish_reason == "abort"
    assert final.completion.completion_tokens < 100


def test_top_p_keeps_only_the_nucleus():
    logits = torch.log(torch.tensor([0.6, 0.3, 0.05, 0.05]))
    params = SamplingParams(temperature=1.0, top_p=0.5, seed=0)
    generator = make_generator(params)
    assert {sample_row(logits, params, generator) for _ in range(50)} == {0}
    params = SamplingParams(temperature=1.0, top_p=0.85, seed=0)
    generator = make_generator(params)
    assert {sample_row(logits, params, generator) for _ in range(200)} == {0, 1}
