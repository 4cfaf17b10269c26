"""The baseline's models: the app's own engines, loaded in one process, one call at a time each.

No Ray, no batching across requests: each model has one instance and a lock, as a plain server
holding one copy of a model serves it; different models still run side by side in threads.
The pipeline builds the LLM prompt exactly as serve_app/pipeline.py does (a unit test checks
that), so both stacks do the same work.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from deployments.engines import load_audio_engine, load_text_engine, load_vision_engine
from deployments.engines.open_clip_engine import decode_image_bytes, zero_shot_scores
from deployments.engines.whisper import decode_audio_bytes
from deployments.thread_bridge import iterate_in_thread
from serve_app.core.config import AudioEngineConfig, TextEngineConfig, VisionEngineConfig
from serve_app.core.generation import SamplingParams
from serve_app.prompts import DEFAULT_LABELS, gather_perception

SAMPLE_RATE = 16000


class BaselineModels:
    def __init__(self, model_dir: str, threads: int = 1) -> None:
        self.text = load_text_engine(TextEngineConfig(threads=threads), model_dir)
        self.vision = load_vision_engine(VisionEngineConfig(threads=threads), model_dir)
        self.audio = load_audio_engine(AudioEngineConfig(threads=threads), model_dir)
        # asyncio locks, so requests waiting for a model hold no thread while they wait.
        self.locks = {name: asyncio.Lock() for name in ("text", "vision", "audio")}
        self.label_vectors: dict[str, np.ndarray] = {}

    async def _locked(self, model: str, fn, *args) -> Any:
        async with self.locks[model]:
            return await asyncio.to_thread(fn, *args)

    async def generate(self, prompt: list[int], params: SamplingParams):
        return (await self._locked("text", self.text.generate_batch, [prompt], [params]))[0]

    async def stream(self, prompt: list[int], params: SamplingParams) -> AsyncIterator:
        async with self.locks["text"]:
            async for delta in iterate_in_thread(
                    lambda cancelled: self.text.stream(prompt, params, cancelled)):
                yield delta

    async def embed_images(self, images: list[bytes]) -> np.ndarray:
        decoded = await asyncio.to_thread(lambda: [decode_image_bytes(i) for i in images])
        return await self._locked("vision", self.vision.embed_images, decoded)

    async def embed_texts(self, texts: list[str]) -> np.ndarray:
        return await self._locked("vision", self.vision.embed_texts, texts)

    async def transcribe(self, audio: bytes, language: str | None = None) -> dict[str, Any]:
        from dataclasses import asdict

        samples = await asyncio.to_thread(decode_audio_bytes, audio, SAMPLE_RATE)
        result = await self._locked("audio", self.audio.transcribe_batch, [samples], [language])
        return asdict(result[0])

    async def classify(self, image: bytes, labels: list[str]) -> list[dict[str, Any]]:
        missing = [label for label in dict.fromkeys(labels) if label not in self.label_vectors]
        if missing:
            vectors = await self.embed_texts([f"a photo of a {label}." for label in missing])
            self.label_vectors.update(zip(missing, vectors))
        image_vector = (await self.embed_images([image]))[0]
        scores = zero_shot_scores(image_vector,
                                  np.stack([self.label_vectors[label] for label in labels]))
        ranked = sorted(zip(labels, scores), key=lambda pair: -pair[1])
        return [{"label": label, "score": float(score)} for label, score in ranked]

    async def perceive(self, audio: bytes | None, image: bytes | None,
                       labels: list[str] | None) -> dict[str, Any]:
        """Audio and image stages side by side, timed as the app's pipeline times them."""
        async def timed(coro) -> tuple[Any, float]:
            started = time.perf_counter()
            return await coro, time.perf_counter() - started

        stages = {}
        if audio is not None:
            stages["audio"] = timed(self.transcribe(audio))
        if image is not None:
            stages["image"] = timed(self.classify(image, labels or DEFAULT_LABELS))
        return await gather_perception(stages)


