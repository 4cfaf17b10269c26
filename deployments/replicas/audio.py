"""Whisper deployment: batched speech-to-text across concurrent requests, each batch run as
model calls of at most `max_windows_per_call` 30 s windows (deployments/core/audio_windows.py),
so that none outlasts model_call_timeout_s."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from ray import serve

from deployments.core.audio_media import SAMPLE_RATE, decode_audio_bytes
from deployments.core.audio_windows import split_by_windows, windows_in
from deployments.core.call_protocol import (
    NO_CONTEXT,
    CallContext,
    SpeechRequest,
    TranscriptReply,
)
from deployments.core.config import AudioSettings
from deployments.core.deadline import check
from deployments.core.errors import InvalidRequest, TooLarge, Undecodable, UnsupportedMediaType
from deployments.engines import load_audio_engine
from deployments.engines.audio_base import AudioEngine
from deployments.replicas.batcher import DynamicBatcher, run_valid_rows
from deployments.replicas.replica_base import BatchedReplica
from deployments.replicas.timed_calls import reports_timing


@serve.deployment
class SpeechTranscriber(BatchedReplica):
    def __init__(self, settings: dict[str, Any], model_dir: str,
                 metrics_enabled: bool = True) -> None:
        super().__init__(AudioSettings.model_validate(settings), metrics_enabled)
        self.engine: AudioEngine = load_audio_engine(self.settings.engine, model_dir)
        self.choices = getattr(self.engine, "choices", {})
        self.transcribe_batches = DynamicBatcher(self._transcribe_batch,
                                                 **self.stats.batcher_hooks("transcribe"))
        self.batchers = [self.transcribe_batches]

    async def transcribe(self, audio: bytes, language: str | None = None,
                         ctx: CallContext = NO_CONTEXT) -> TranscriptReply:
        """The audio's text in its language (the pipeline's audio stage)."""
        return await self.speech(audio, SpeechRequest(language), ctx)

    @reports_timing
    async def speech(self, audio: bytes, request: SpeechRequest,
                     ctx: CallContext = NO_CONTEXT) -> TranscriptReply:
        """The audio transcribed or translated, as `request` asks, batched with the others."""
        check(ctx.deadline, "the transcription")
        self._check_language(request.language)
        samples = await asyncio.to_thread(self._decode, audio)
        result = await self.transcribe_batches((samples, request), ctx.deadline,
                                               ctx.objective, ctx.share)
        return TranscriptReply(**asdict(result))

    def _decode(self, audio: bytes):
        try:  # the duration is checked from the container, and while decoding
            return decode_audio_bytes(audio, SAMPLE_RATE, self.settings.max_duration_s,
                                      self.settings.audio_formats)
        except (TooLarge, Undecodable, UnsupportedMediaType) as exc:
            raise type(exc)(str(exc), "file") from None

    def _check_language(self, language: str | None) -> None:
        if language is not None and language not in self.engine.supported_languages:
            raise InvalidRequest(f"language {language!r} is not supported by this model",
                                 "language")

    async def _transcribe_batch(self, items: list[tuple[Any, SpeechRequest]]) -> list:
        # The language was checked on entry; checked again per row, so one bad row can never
        # fail the engine's call for the whole batch.
        return await run_valid_rows(items, lambda item: self._check_language(item[1].language),
                                    self._transcribe_valid)

    async def _transcribe_valid(self, items: list[tuple[Any, SpeechRequest]]) -> list:
        """The batch as consecutive model calls of at most windows_per_call() windows each."""
        windows = [windows_in(len(samples), SAMPLE_RATE) for samples, _ in items]
        results: list = []
        for call in split_by_windows(windows, self.settings.windows_per_call()):
            results += await self._transcribe_call([items[index] for index in call])
        return results

    async def _transcribe_call(self, items: list[tuple[Any, SpeechRequest]]) -> list:
        audios = [samples for samples, _ in items]
        requests = [request for _, request in items]
        with self.stats.model_call("transcribe", len(items)):
            return list(await self.run_model(
                self.engine.transcribe_batch, audios, [r.language for r in requests],
                [r.task for r in requests], [r.words for r in requests]))
