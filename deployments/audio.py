"""Whisper deployment: batched speech-to-text across concurrent requests."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from ray import serve

from deployments.engines import load_audio_engine
from deployments.replica_base import BatchedReplica
from serve_app.config import AudioSettings
from serve_app.errors import ServeError

SAMPLE_RATE = 16000


@serve.deployment
class SpeechTranscriber(BatchedReplica):
    batched_methods = ("_transcribe_batch",)

    def __init__(self, settings: dict[str, Any], model_dir: str) -> None:
        super().__init__()
        self.settings = AudioSettings.model_validate(settings)
        self.engine = load_audio_engine(self.settings.engine, model_dir)

    async def transcribe(self, audio: bytes, language: str | None = None) -> dict[str, Any]:
        """{text, language, language_probability, duration, segments[{id, start, end, text}]}"""
        if language is not None and language not in self.engine.supported_languages:
            raise ServeError(400, f"language {language!r} is not supported by this model",
                             "language")
        samples = await asyncio.to_thread(self._decode, audio)
        result = await self._transcribe_batch((samples, language))
        return asdict(result)

    def _decode(self, audio: bytes):
        from deployments.engines.whisper import AudioDecodeError, decode_audio_bytes

        try:
            samples = decode_audio_bytes(audio, SAMPLE_RATE)
        except AudioDecodeError as exc:
            raise ServeError(422, str(exc), "file") from None
        duration = len(samples) / SAMPLE_RATE
        if duration > self.settings.max_duration_s:
            raise ServeError(413, f"the audio lasts {duration:.0f} s; the limit is "
                             f"{self.settings.max_duration_s:.0f} s", "file")
        return samples

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def _transcribe_batch(self, items: list[tuple[Any, str | None]]) -> list:
        audios = [samples for samples, _ in items]
        languages = [language for _, language in items]
        with self.stats.model_call("transcribe", len(items)):
            return await self.run_model(self.engine.transcribe_batch, audios, languages)
