"""Each modality's replica class built without Ray, with a small fake engine: the lifecycle
(decode off the model thread, one batch per model call, encode) and what the replica counts."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
import torch
from transformers import DynamicCache

from deployments.core.call_protocol import CallContext, SpeechRequest, StreamEnd, TokenDelta
from deployments.core.config import AudioSettings, TextSettings, VisionSettings
from deployments.core.errors import DeadlineExceeded
from deployments.core.generation import SamplingParams
from deployments.engines.kv_batch import KVBatch
from deployments.engines.sampling import make_generator
from deployments.engines.scheduler import Scheduler
from deployments.engines.sequence import Sequence
from deployments.engines.whisper import Transcription
from deployments.replicas import audio as audio_replicas
from deployments.replicas import text as text_replicas
from deployments.replicas import vision as vision_replicas
from tests.hostile_media import silent_wav
from tests.media import png_image

HOLD_S = 10.0  # the first batch holds the model until the test releases it (or this passes)


class Holds:
    """The first batch waits for `release`, so the requests after it queue, however slow the
    machine; the test releases it once its batcher holds them all."""

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []
        self.release = threading.Event()

    def hold(self, size: int) -> None:
        self.batch_sizes.append(size)
        if len(self.batch_sizes) == 1:
            self.release.wait(HOLD_S)


async def release_when_queued(engine: Holds, batcher, count: int) -> None:
    while len(batcher._queue) < count:
        await asyncio.sleep(0.01)
    engine.release.set()


class FakeRunner(Holds):
    """A model runner whose next token is always the last one + 1, starting at FIRST_TOKEN after
    a prompt; its KV is one zero column per token. Its first prefill holds the model thread."""

    def prefill(self, prompt: list[int]):
        self.hold(1)
        cache = DynamicCache(ddp_cache_data=[(torch.zeros(1, 1, len(prompt), 2),) * 2])
        return cache, next_token_logits(FIRST_TOKEN - 1), 0

    def decode(self, batch: KVBatch, last_tokens: list[int]) -> torch.Tensor:
        mask, _ = batch.step_inputs()
        batch.cache.update(*(torch.zeros(batch.rows, 1, 1, 2),) * 2, 0)
        batch.stepped(mask)
        return torch.stack([next_token_logits(token) for token in last_tokens])


FIRST_TOKEN = 100


def next_token_logits(token: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(token + 1), 1000).float()


class FakeStepEngine:
    """The transformers engine's shape around the real scheduler; "w0 w1 ..." for every row."""

    batches_itself = False
    prefix_cache = None

    def __init__(self, queue_policy: str = "fifo") -> None:
        self.runner = FakeRunner()
        self.scheduler = Scheduler(self.runner, self.detokenize, eos_ids=set(),
                                   queue_policy=queue_policy)

    def detokenize(self, tokens: list[int]) -> str:
        return "".join(f"w{token - FIRST_TOKEN} " for token in tokens)

    def encode_chat(self, messages: list[dict]) -> list[int]:
        return [1] * len(messages[-1]["content"])

    def new_sequence(self, prompt, params, control, on_finish=None):
        return Sequence(prompt, params, make_generator(params), control, on_finish)


class FakeVisionEngine(Holds):
    input_side = 32

    def embed_images(self, images):
        self.hold(len(images))
        return np.ones((len(images), 4), np.float32) / 2

    def embed_texts(self, texts):
        return np.ones((len(texts), 4), np.float32) / 2


class FakeSpeechEngine(Holds):
    supported_languages = ["en"]

    def transcribe_batch(self, audios, languages, tasks=None, word_timestamps=None):
        self.hold(len(audios))
        return [Transcription("hello", "en", 1.0, len(a) / 16000) for a in audios]


def build(deployment, settings, engine, monkeypatch, loader: str):
    module = {"TextGenerator": text_replicas, "ImageEmbedder": vision_replicas,
              "SpeechTranscriber": audio_replicas}[deployment.name]
    monkeypatch.setattr(module, loader, lambda config, model_dir: engine)
    replica = deployment.func_or_class(settings.model_dump(exclude={"batching"}), "/unused")
    replica.reconfigure({"max_batch_size": 8, "batch_wait_timeout_s": 0.0})
    return replica


@pytest.fixture
def text(monkeypatch):
    engine = FakeStepEngine()
    replica = build(text_replicas.TextGenerator, TextSettings(), engine, monkeypatch,
                    "load_text_engine")
    return replica, engine


def greedy(max_tokens: int) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens, temperature=0)


def chat(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_a_stream_and_a_whole_completion_share_decode_steps(text):
    replica, engine = text
    runner = engine.runner

    async def collect(stream) -> list[dict]:
        return [item async for item in stream]

    async def scenario():
        first = asyncio.ensure_future(replica.generate(chat("busy"), greedy(2)))
        while not runner.batch_sizes:  # the model is prefilling `first`: the next two wait
            await asyncio.sleep(0.01)
        streamed = asyncio.ensure_future(collect(replica.stream(chat("a"),
                                                                greedy(3))))
        whole = asyncio.ensure_future(replica.generate(chat("b"), greedy(3)))
        while len(engine.scheduler.waiting) < 2:
            await asyncio.sleep(0.01)
        runner.release.set()
        await first
        return await streamed, await whole

    streamed, whole = asyncio.run(scenario())
    assert [item.text for item in streamed[:-1]] == ["w0 ", "w1 ", "w2 "]
    assert whole.text == "w0 w1 w2 "
    assert streamed[-1] == StreamEnd(prompt_tokens=1, completion_tokens=3, finish_reason="length")
    stats = replica.batch_stats()
    # One step admits all three; "busy" leaves after its 2nd token, the others after their 3rd.
    assert stats["methods"]["prefill"]["recent_batches"] == [3]
    assert stats["methods"]["decode"]["recent_batches"] == [3, 2]
    assert stats["events"]["decode_steps_mixing_streams_and_whole"] == 2


def test_requests_waiting_for_the_model_are_admitted_by_their_contexts_objective(monkeypatch):
    engine = FakeStepEngine(queue_policy="slo")
    replica = build(text_replicas.TextGenerator, TextSettings(), engine, monkeypatch,
                    "load_text_engine")
    runner, prompt_lengths = engine.runner, []
    prefill = runner.prefill
    monkeypatch.setattr(runner, "prefill", lambda prompt: (prompt_lengths.append(len(prompt)),
                                                           prefill(prompt))[1])

    async def collect(stream) -> list:
        return [item async for item in stream]

    async def scenario():
        first = asyncio.ensure_future(replica.generate(chat("busy"), greedy(2)))
        while not runner.batch_sizes:  # the model is prefilling `first`: the rest wait
            await asyncio.sleep(0.01)
        now = time.time()
        # Prompts of 1, 2 and 3 tokens, arriving in that order.
        later = replica.generate(chat("a"), greedy(2), CallContext(objective=now + 30))
        unhurried = replica.generate(chat("bb"), greedy(2), CallContext())
        urgent = collect(replica.stream(chat("ccc"), greedy(2), CallContext(objective=now + 10)))
        rest = asyncio.gather(later, unhurried, urgent)
        while len(engine.scheduler.waiting) < 3:
            await asyncio.sleep(0.01)
        runner.release.set()
        await first
        return await rest

    later, unhurried, urgent = asyncio.run(scenario())
    assert prompt_lengths == [4, 3, 1, 2]
    assert later.text == unhurried.text == "w0 w1 " and urgent[-1].completion_tokens == 2


def test_a_lone_request_runs_at_once_and_the_batch_size_is_live(text):
    replica, engine = text
    engine.runner.release.set()
    replica.reconfigure({"max_batch_size": 1, "batch_wait_timeout_s": 5.0})

    async def scenario():
        return await asyncio.gather(*(replica.generate(chat(str(i)), greedy(2))
                                      for i in range(3)))

    assert [r.text for r in asyncio.run(scenario())] == ["w0 w1 "] * 3
    # Never more than one row at a time, and no batch window waited out (5 s above).
    assert set(replica.batch_stats()["methods"]["decode"]["recent_batches"]) == {1}


def test_closing_a_stream_frees_its_row_while_the_other_goes_on(text):
    replica, engine = text
    engine.runner.release.set()

    async def scenario():
        stream = replica.stream(chat("a"), greedy(50))
        other = asyncio.ensure_future(replica.generate(chat("b"), greedy(50)))
        await anext(stream)
        await stream.aclose()
        return await other

    other = asyncio.run(scenario())
    assert other.finish_reason == "length" and other.completion_tokens == 50
    assert replica.batch_stats()["events"].get("stream_aborted") == 1


def test_vision_decodes_off_the_model_thread_and_batches_what_queued(monkeypatch):
    engine = FakeVisionEngine()
    replica = build(vision_replicas.ImageEmbedder, VisionSettings(), engine, monkeypatch,
                    "load_vision_engine")

    async def scenario():
        first = asyncio.ensure_future(replica.embed_images([png_image()]))
        while not engine.batch_sizes:
            await asyncio.sleep(0.01)
        rest = asyncio.gather(*(replica.embed_images([png_image()]) for _ in range(4)))
        await release_when_queued(engine, replica.image_batches, 4)
        return [await first, *await rest]

    vectors = asyncio.run(scenario())
    assert len(vectors) == 5 and engine.batch_sizes == [1, 4]


def test_audio_batches_what_queued_and_refuses_an_unknown_language(monkeypatch):
    engine = FakeSpeechEngine()
    replica = build(audio_replicas.SpeechTranscriber, AudioSettings(), engine, monkeypatch,
                    "load_audio_engine")
    wav = silent_wav(1.0, rate=16000)

    async def scenario():
        first = asyncio.ensure_future(replica.transcribe(wav))
        while not engine.batch_sizes:
            await asyncio.sleep(0.01)
        rest = asyncio.gather(*(replica.transcribe(wav, "en") for _ in range(3)))
        await release_when_queued(engine, replica.transcribe_batches, 3)
        return [await first, *await rest]

    results = asyncio.run(scenario())
    assert [r.text for r in results] == ["hello"] * 4 and engine.batch_sizes == [1, 3]
    with pytest.raises(Exception, match="language 'xx'"):
        asyncio.run(replica.transcribe(wav, "xx"))


def test_a_batch_of_long_audios_runs_as_calls_of_at_most_the_windows_bound(monkeypatch):
    engine = FakeSpeechEngine()
    engine.release.set()
    windows: list[int] = []
    transcribe_batch = engine.transcribe_batch

    def counting(audios, *options):
        windows.append(sum(-(-len(audio) // (30 * 16000)) for audio in audios))
        return transcribe_batch(audios, *options)

    engine.transcribe_batch = counting
    settings = AudioSettings(max_duration_s=90, max_windows_per_call=4)
    replica = build(audio_replicas.SpeechTranscriber, settings, engine, monkeypatch,
                    "load_audio_engine")
    long, short = silent_wav(89.0, rate=16000), silent_wav(1.0, rate=16000)
    items = [(replica._decode(data), SpeechRequest("en"))
             for data in (long, short, long, short, short)]

    results = asyncio.run(replica._transcribe_batch(items))
    assert [round(r.duration) for r in results] == [89, 1, 89, 1, 1]
    assert windows == [4, 4, 1] and engine.batch_sizes == [2, 2, 1]


class LabelCountingVisionEngine(FakeVisionEngine):
    """Records every text it embeds; never holds the model."""

    def __init__(self) -> None:
        super().__init__()
        self.release.set()
        self.texts: list[str] = []

    def embed_texts(self, texts):
        self.texts += texts
        return super().embed_texts(texts)


def test_the_label_cache_keeps_what_a_request_uses_and_evicts_the_least_recent(monkeypatch):
    monkeypatch.setattr(vision_replicas, "_LABEL_CACHE_SIZE", 2)
    engine = LabelCountingVisionEngine()
    replica = build(vision_replicas.ImageEmbedder, VisionSettings(), engine, monkeypatch,
                    "load_vision_engine")

    async def scenario():
        for labels in (["cat", "dog"], ["cat", "bird"], ["cat"], ["fish"], ["cat"]):
            await replica.classify(png_image(), labels)

    # ["cat", "bird"]: cat was counted cached, then bird filled the cache past its size; the
    # least recently used label (dog) goes, never one the request is about to read.
    asyncio.run(scenario())
    assert engine.texts == [f"a photo of a {label}." for label in ("cat", "dog", "bird", "fish")]


def test_a_timed_context_gets_the_stages_in_the_reply_and_an_untimed_one_none(text):
    replica, engine = text
    engine.runner.release.set()

    async def scenario():
        untimed = await replica.generate(chat("a"), greedy(2))
        timed = await replica.generate(chat("a"), greedy(2), CallContext(timed=True))
        return untimed, timed

    untimed, timed = asyncio.run(scenario())
    assert untimed.stages == [] and untimed.text == timed.text == "w0 w1 "
    assert [name for name, _, _ in timed.stages] == ["model", "replica"]
    assert all(seconds >= 0 for _, _, seconds in timed.stages)


def test_a_timed_stream_ends_with_its_stages_in_the_stream_end(text):
    replica, engine = text
    engine.runner.release.set()

    async def scenario():
        return [event async for event in replica.stream(chat("a"), greedy(3),
                                                        CallContext(timed=True))]

    *deltas, end = asyncio.run(scenario())
    assert all(isinstance(delta, TokenDelta) for delta in deltas)
    assert isinstance(end, StreamEnd) and end.completion_tokens == 3
    assert {name for name, _, _ in end.stages} == {"first-token", "decode", "replica"}


def test_a_call_past_the_deadline_in_its_context_is_refused(monkeypatch):
    replica = build(audio_replicas.SpeechTranscriber, AudioSettings(), FakeSpeechEngine(),
                    monkeypatch, "load_audio_engine")
    with pytest.raises(DeadlineExceeded):
        asyncio.run(replica.transcribe(silent_wav(1.0, rate=16000), None,
                                       CallContext(deadline=time.time() - 1)))
