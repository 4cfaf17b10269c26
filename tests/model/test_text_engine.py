"""The transformers decode loop on the real SmolLM2: per-row settings inside one batch."""

from __future__ import annotations

import time

import pytest
import torch

from deployments.core.errors import DeadlineExceeded, ServeError
from deployments.core.generation import Completion, RowControl, SamplingParams
from deployments.core.models import model_path
from deployments.engines.sampling import make_generator, sample_row
from deployments.engines.transformers_text import TransformersTextEngine
from serve_app.http_errors import status_of

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


def test_a_streamed_row_gets_its_text_in_pieces_beside_a_whole_one(engine, prompts):
    pieces: list[str] = []
    streamed = RowControl(on_text=lambda delta: pieces.append(delta.text))
    alone = [engine.generate_batch([p], [GREEDY])[0] for p in prompts[:2]]
    whole, stream = engine.generate_batch(prompts[:2], [GREEDY, GREEDY],
                                          [RowControl(), streamed])
    assert len(pieces) >= 3 and "".join(pieces) == stream.text == alone[1].text
    assert whole.text == alone[0].text


def test_a_streamed_row_run_again_streams_nothing_twice(engine, prompts):
    pieces: list[str] = []
    control = RowControl(on_text=lambda delta: pieces.append(delta.text))
    first = engine.generate_batch([prompts[0]], [GREEDY], [control])[0]
    again = engine.generate_batch([prompts[0]], [GREEDY], [control])[0]  # as after a failed batch
    assert again.text == first.text and "".join(pieces) == first.text


def test_a_streamed_row_never_shows_part_of_a_stop_string(engine, prompts):
    pieces: list[str] = []
    params = SamplingParams(max_tokens=24, temperature=0, stop=("Paris",))
    control = RowControl(on_text=lambda delta: pieces.append(delta.text))
    [done] = engine.generate_batch([prompts[0]], [params], [control])
    assert done.finish_reason == "stop" and "".join(pieces) == done.text
    assert not any("Par" in piece for piece in pieces)


def test_a_streamed_row_cancelled_by_its_caller_ends_with_abort(engine, prompts):
    control = RowControl()
    control.on_text = lambda piece: control.cancelled.set()  # gone after the first piece
    [done] = engine.generate_batch([prompts[1]], [SamplingParams(max_tokens=100, temperature=0)],
                                   [control])
    assert done.finish_reason == "abort" and done.completion_tokens < 100


class StopsAfter(RowControl):
    """A row control that stops its row once it has decoded `tokens` tokens: the scheduler
    checks it once before the prefill (which samples the first token), then once before each
    decode step."""

    def __init__(self, tokens: int, reason: str) -> None:
        super().__init__()
        self.tokens, self.reason, self.checks = tokens, reason, 0

    def stop_reason(self) -> str | None:
        self.checks += 1
        return self.reason if self.checks > self.tokens else None


def test_a_bad_seed_fails_only_its_own_row(engine, prompts):
    alone = [engine.generate_batch([p], [GREEDY])[0].text for p in prompts[:2]]
    bad = SamplingParams(max_tokens=24, temperature=0.8, seed=2**80)
    first, broken, second = engine.generate_batch([prompts[0], prompts[2], prompts[1]],
                                                  [GREEDY, bad, GREEDY])
    assert isinstance(broken, ServeError) and status_of(broken) == 400 and broken.param == "seed"
    assert [first.text, second.text] == alone


def test_a_cancelled_row_ends_at_the_next_step_and_the_others_go_on(engine, prompts):
    alone = engine.generate_batch([prompts[0]], [GREEDY])[0]
    kept, cancelled = engine.generate_batch(
        [prompts[0], prompts[1]], [GREEDY, SamplingParams(max_tokens=100, temperature=0)],
        [RowControl(), StopsAfter(4, "abort")])
    assert cancelled.finish_reason == "abort" and cancelled.completion_tokens == 4
    assert kept.text == alone.text and kept.finish_reason == alone.finish_reason


def test_a_row_past_its_deadline_mid_decode_fails_alone(engine, prompts):
    alone = engine.generate_batch([prompts[0]], [GREEDY])[0]
    kept, late = engine.generate_batch(
        [prompts[0], prompts[1]], [GREEDY, SamplingParams(max_tokens=100, temperature=0)],
        [RowControl(), StopsAfter(3, "deadline")])
    assert isinstance(late, DeadlineExceeded) and status_of(late) == 504
    assert kept.text == alone.text


def test_rows_already_gone_or_late_never_enter_the_batch(engine, prompts):
    gone = RowControl()
    gone.cancelled.set()
    late = RowControl(deadline=time.time() - 1)
    outcomes = engine.generate_batch(prompts[:2], [GREEDY, GREEDY], [gone, late])
    assert isinstance(outcomes[0], Completion) and outcomes[0].finish_reason == "abort"
    assert outcomes[0].completion_tokens == 0
    assert isinstance(outcomes[1], DeadlineExceeded)


def test_the_loop_ends_early_once_every_row_has_stopped(engine, prompts, monkeypatch):
    calls = []
    for name in ("prefill", "decode"):
        real = getattr(engine.runner, name)
        monkeypatch.setattr(engine.runner, name,
                            lambda *a, real=real, name=name: calls.append(name) or real(*a))
    long_ = SamplingParams(max_tokens=200, temperature=0)
    outcomes = engine.generate_batch(prompts[:2], [long_, long_],
                                     [StopsAfter(2, "abort"), StopsAfter(3, "abort")])
    assert [c.completion_tokens for c in outcomes] == [2, 3]
    # Each prompt's prefill gives its first token; then a step per token but the first.
    assert calls == ["prefill", "prefill", "decode", "decode"]


@pytest.mark.parametrize("seed", [2**64, -(2**63) - 1, 1.5, "7"])
def test_a_seed_torch_cannot_take_is_a_400_naming_seed(seed):
    with pytest.raises(ServeError) as error:
        make_generator(SamplingParams(seed=seed))
    assert (status_of(error.value), error.value.param) == (400, "seed")


@pytest.mark.parametrize("temperature", [5e-324, 2.2e-311, 1e-6])
def test_a_vanishing_temperature_is_greedy_not_nan(temperature):
    logits = torch.tensor([0.1, 3.0, 0.2])
    params = SamplingParams(temperature=temperature, seed=0)
    assert sample_row(logits, params, make_generator(params)) == 1


def test_top_p_keeps_only_the_nucleus():
    logits = torch.log(torch.tensor([0.6, 0.3, 0.05, 0.05]))
    params = SamplingParams(temperature=1.0, top_p=0.5, seed=0)
    generator = make_generator(params)
    assert {sample_row(logits, params, generator) for _ in range(50)} == {0}
    params = SamplingParams(temperature=1.0, top_p=0.85, seed=0)
    generator = make_generator(params)
    assert {sample_row(logits, params, generator) for _ in range(200)} == {0, 1}
