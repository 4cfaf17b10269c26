"""The baseline's models: the app's replica classes, each model call run in the web server's
threadpool, as a team's first FastAPI server calls its models from sync endpoints.

A call goes straight to the model, alone: no DynamicBatcher, no model thread, no lock. It runs
through Starlette's `run_in_threadpool` (anyio's default thread limiter: 40 threads, the pool
sync endpoints run in), so as many requests as there are threads reach one model at once, and
torch or CTranslate2 takes them as they come. Text goes to the engine's blocking
`generate_batch`, one row per request (bench/baseline_text.py).

With `text_url`, the text replica is not a model here but vLLM's own OpenAI server at that
URL (bench/openai_text_engine.py): the threadpool server of a team that runs `vllm serve` for
its LLM, which its pipeline route calls over HTTP.

`serialize=True` is the bench's earlier baseline, kept for comparison and labelled so: a lock
per model around each call, so each model serves one request at a time.

Every replica counts its model calls (`calls`): how many, how many are running now and the
most that ever ran at once, so a test or a report can see whether requests overlapped.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from bench.baseline_text import OneRowTextEngine
from bench.openai_text_engine import OpenAITextEngine
from deployments.core.config import AppConfig, TextSettings
from deployments.core.deadline import check
from deployments.core.fair_share import ANONYMOUS, Share
from deployments.core.models import resolve
from deployments.engines import load_text_engine
from deployments.replicas.audio import SpeechTranscriber
from deployments.replicas.first_token_forecast import FirstTokenForecast
from deployments.replicas.replica_base import BatchedReplica
from deployments.replicas.text import TextGenerator
from deployments.replicas.vision import ImageEmbedder

T = TypeVar("T")
R = TypeVar("R")


class ModelCalls:
    """The model calls of one replica, counted on the threads that make them."""

    def __init__(self, serialize: bool = False) -> None:
        self.serialize = serialize
        self.total = 0
        self.in_flight = 0
        self.peak = 0  # the most calls in the model at once
        self._counting = threading.Lock()
        self._one_at_a_time = threading.Lock() if serialize else contextlib.nullcontext()

    def run(self, function: Callable[..., R], *args: Any) -> R:
        """`function(*args)` on this thread, counted; alone in the model when serialized."""
        with self._one_at_a_time:
            with self._counting:
                self.total += 1
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
            try:
                return function(*args)
            finally:
                with self._counting:
                    self.in_flight -= 1

    def snapshot(self) -> dict[str, Any]:
        return {"calls": self.total, "in_flight": self.in_flight, "peak_in_flight": self.peak,
                "serialized": self.serialize}


class InThreadpool:
    """Put before a replica class: its model calls run in the server's threadpool."""

    calls: ModelCalls

    async def run_model(self, function: Callable[..., R], *args: Any) -> R:
        return await run_in_threadpool(self.calls.run, function, *args)


class Unbatched:
    """Where a replica holds a DynamicBatcher: each item goes to the model at once, as a batch
    of its own, beside every other caller's."""

    def __init__(self, run_batch: Callable[[list[T]], Awaitable[Sequence[Any]]]) -> None:
        self.run_batch = run_batch

    async def __call__(self, item: T, deadline: float | None = None,
                       objective: float | None = None, share: Share = ANONYMOUS) -> Any:
        check(deadline)  # the threadpool server has no queue: it runs every item at once
        [result] = await self.run_batch([item])
        if isinstance(result, Exception):
            raise result
        return result


class BaselineImageEmbedder(InThreadpool, ImageEmbedder.func_or_class):
    def __init__(self, settings: dict[str, Any], model_dir: str, calls: ModelCalls) -> None:
        super().__init__(settings, model_dir)
        self.calls = calls
        self.image_batches = Unbatched(self._embed_image_batch)
        self.text_batches = Unbatched(self._embed_text_batch)
        self.batchers = []


class BaselineSpeechTranscriber(InThreadpool, SpeechTranscriber.func_or_class):
    def __init__(self, settings: dict[str, Any], model_dir: str, calls: ModelCalls) -> None:
        super().__init__(settings, model_dir)
        self.calls = calls
        self.transcribe_batches = Unbatched(self._transcribe_batch)
        self.batchers = []


class BaselineTextGenerator(InThreadpool, TextGenerator.func_or_class):
    """The text replica's requests (prompt checks, streaming, token counts) over the engine's
    blocking generate_batch: not the app's own engine wrapper, scheduler or batcher."""

    def __init__(self, settings: dict[str, Any], model_dir: str, calls: ModelCalls) -> None:
        BatchedReplica.__init__(self, TextSettings.model_validate(settings))
        self.calls = calls
        self.engine = OneRowTextEngine(load_text_engine(self.settings.engine, model_dir),
                                       self.run_model)
        self.first_tokens = FirstTokenForecast(self.engine.by_objective,
                                               on_event=self.stats.count)


class RemoteTextGenerator(TextGenerator.func_or_class):
    """The text replica's requests over a text server elsewhere (vLLM's OpenAI server): the
    model runs there, batched by that server; this side renders the prompt and relays."""

    def __init__(self, settings: dict[str, Any], model_dir: str, text_url: str) -> None:
        BatchedReplica.__init__(self, TextSettings.model_validate(settings))
        engine = self.settings.engine
        self.calls = ModelCalls()  # no model call runs here: stays at zero
        self.engine = OpenAITextEngine.from_model_folder(
            text_url, engine.served_model_name, str(resolve(engine.model, model_dir)))
        self.first_tokens = FirstTokenForecast(self.engine.by_objective,
                                               on_event=self.stats.count)


def baseline_replicas(config: AppConfig, serialize: bool = False,
                      text_url: str | None = None) -> dict[str, Any]:
    """{"text", "vision", "audio"}: each group's replica, built in this process; with
    `text_url`, the text replica relays to the text server there."""
    built = {}
    for name, replica, settings in (("text", BaselineTextGenerator, config.text),
                                    ("vision", BaselineImageEmbedder, config.vision),
                                    ("audio", BaselineSpeechTranscriber, config.audio)):
        dumped = settings.model_dump(exclude={"batching"})
        if name == "text" and text_url is not None:
            built[name] = RemoteTextGenerator(dumped, config.model_dir, text_url)
        else:
            built[name] = replica(dumped, config.model_dir, ModelCalls(serialize))
    return built
