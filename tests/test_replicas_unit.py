"""Each modality's replica class built without Ray, with a small fake engine: the lifecycle
(decode off the model thread, one batch per model call, encode) and what the replica counts."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

import deployments.audio
import deployments.text
import deployments.vision
from deployments.engines.whisper import Transcription
from serve_app.core.config import AudioSettings, TextSettings, VisionSettings
from serve_app.core.generation import Completion, SamplingParams
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


class FakeBatchEngine(Holds):
    """Decodes "w0 w1 ..." for every row, a step at a time, and records each batch's size."""

    batches_itself = False

    def encode_chat(self, messages: list[dict]) -> list[int]:
        return [1] * len(messages[-1]["content"])

    def generate_batch(self, prompts, params, controls):
        self.hold(len(prompts))
        texts = [""] * len(prompts)
        finish = [None] * len(prompts)
        for step in range(max(p.max_tokens for p in params)):
            for i, (p, control) in enumerate(zip(params, controls)):
                if finish[i]:
                    continue
                if control.cancelled.is_set():
                    finish[i] = "abort"
                    continue
                piece = f"w{step} "
                texts[i] += piece
                if control.on_text:
                    control.on_text(piece)
                if step + 1 == p.max_tokens:
                    finish[i] = "length"
            time.sleep(0.01)
        return [Completion(text, len(prompt), len(text.split()), reason or "length")
                for text, prompt, reason in zip(texts, prompts, finish)]


class FakeVisionEngine(Holds):
    input_side = 32

    def embed_images(self, images):
        self.hold(len(images))
        return np.ones((len(images), 4), np.float32) / 2

    def embed_texts(self, texts):
        return np.ones((len(texts), 4), np.float32) / 2


class FakeSpeechEngine(Holds):
    supported_languages = ["en"]

    def transcribe_batch(self, audios, languages):
        self.hold(len(audios))
        return [Transcription("hello", "en", 1.0, len(a) / 16000) for a in audios]


def build(deployment, settings, engine, monkeypatch, loader: str):
    module = {"TextGenerator": deployments.text, "ImageEmbedder": deployments.vision,
              "SpeechTranscriber": deployments.audio}[deployment.name]
    monkeypatch.setattr(module, loader, lambda config, model_dir: engine)
    replica = deployment.func_or_class(settings.model_dump(exclude={"batching"}), "/unused")
    replica.reconfigure({"max_batch_size": 8, "batch_wait_timeout_s": 0.0})
    return replica


@pytest.fixture
def text(monkeypatch):
    engine = FakeBatchEngine()
    replica = build(deployments.text.TextGenerator, TextSettings(), engine, monkeypatch,
                    "load_text_engine")
    return replica, engine


def chat(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_a_stream_and_a_whole_completion_share_one_model_call(text):
    replica, engine = text

    async def collect(stream) -> list[dict]:
        return [item async for item in stream]

    async def scenario():
        first = asyncio.ensure_future(replica.generate(chat("busy"), SamplingParams(max_tokens=2)))
        while not engine.batch_sizes:  # the model is busy with `first`: the next two queue
            await asyncio.sleep(0.01)
        streamed = asyncio.ensure_future(collect(replica.stream(chat("a"),
                                                                SamplingParams(max_tokens=3))))
        whole = asyncio.ensure_future(replica.generate(chat("b"), SamplingParams(max_tokens=3)))
        await release_when_queued(engine, replica.engine.batches, 2)
        await first
        return await streamed, await whole

    streamed, whole = asyncio.run(scenario())
    assert engine.batch_sizes == [1, 2]
    assert [item["text"] for item in streamed[:-1]] == ["w0 ", "w1 ", "w2 "]
    assert streamed[-1]["completion"]["text"] == whole["text"] == "w0 w1 w2 "
    method = replica.batch_stats()["methods"]["generate"]
    assert (method["model_calls"], method["items"]) == (2, 3)


def test_closing_a_stream_frees_its_row_while_the_other_goes_on(text):
    replica, engine = text
    engine.release.set()

    async def scenario():
        stream = replica.stream(chat("a"), SamplingParams(max_tokens=50))
        other = asyncio.ensure_future(replica.generate(chat("b"), SamplingParams(max_tokens=50)))
        await anext(stream)
        await stream.aclose()
        return await other

    other = asyncio.run(scenario())
    assert other["finish_reason"] == "length" and other["completion_tokens"] == 50
    assert replica.batch_stats()["events"].get("stream_aborted") == 1


def test_vision_decodes_off_the_model_thread_and_batches_what_queued(monkeypatch):
    engine = FakeVisionEngine()
    replica = build(deployments.vision.ImageEmbedder, VisionSettings(), engine, monkeypatch,
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
    replica = build(deployments.audio.SpeechTranscriber, AudioSettings(), engine, monkeypatch,
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
    assert [r["text"] for r in results] == ["hello"] * 4 and engine.batch_sizes == [1, 3]
    with pytest.raises(Exception, match="language 'xx'"):
        asyncio.run(replica.transcribe(wav, "xx"))
