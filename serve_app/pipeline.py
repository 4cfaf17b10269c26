"""The multimodal DAG: audio -> transcript and image -> CLIP labels run side by side, then
their results and the prompt become the LLM's messages; the answer comes back whole or streamed.

    audio ──> SpeechTranscriber ──┐
                                  ├──> prompt assembly ──> TextGenerator ──> answer
    image ──> ImageEmbedder ──────┘

Each stage is timed from here, so `timings` shows the overlap: total < audio + image + llm.
Every stage gets the request's deadline; the perception stages are idempotent, so a stage whose
replica died is retried once within it when it is cheap (serve_app/retry_rule.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from deployments.core.call_protocol import Reply, StreamEnd, TokenDelta
from deployments.core.errors import InvalidRequest, ServeError
from deployments.core.generation import SamplingParams
from deployments.replicas import metrics
from serve_app.http import decode_base64
from serve_app.http_errors import error_body
from serve_app.prompts import (
    DEFAULT_LABELS,
    gather_perception,
    labels_line,
    pipeline_messages,
    transcript_line,
)
from serve_app.protocol import MediaPart, PipelineRequest
from serve_app.request_metrics import TokenClock
from serve_app.token_stream import TokenStream

if TYPE_CHECKING:  # its Ray imports stay out of what only calls it
    from serve_app.calls import ReplicaGroup

DecodedMedia = list[tuple[MediaPart, bytes]]  # a chat's media parts with their bytes


class MultimodalPipeline:
    def __init__(self, text: ReplicaGroup, vision: ReplicaGroup, audio: ReplicaGroup,
                 default_max_tokens: int) -> None:
        self.text, self.vision, self.audio = text, vision, audio
        self.default_max_tokens = default_max_tokens

    async def run(self, request: PipelineRequest, audio: bytes | None, image: bytes | None,
                  deadline: float | None) -> dict[str, Any]:
        started = time.perf_counter()
        perception = await self._perceive(request, audio, image, deadline)
        llm_started = time.perf_counter()
        completion = await self.text.call(
            "generate", self._messages(request, perception), self._params(request),
            deadline=deadline)
        timings = perception["timings"]
        timings["llm_s"] = _observe("llm", time.perf_counter() - llm_started)
        timings["total_s"] = time.perf_counter() - started
        return {**_public(perception), "text": completion.text,
                "finish_reason": completion.finish_reason,
                "usage": {"prompt_tokens": completion.prompt_tokens,
                          "completion_tokens": completion.completion_tokens},
                "timings": timings}

    async def stream(self, request: PipelineRequest, audio: bytes | None, image: bytes | None,
                     deadline: float | None, idle_timeout_s: float,
                     clock: TokenClock) -> AsyncIterator[dict]:
        """Events: one 'perception', then 'token's, then 'done' with timings and usage."""
        started = time.perf_counter()
        perception = await self._perceive(request, audio, image, deadline)
        events = PipelineEvents(perception["timings"], started, time.perf_counter())
        stream = await TokenStream.open(self.text, self._messages(request, perception),
                                        self._params(request), deadline, idle_timeout_s, clock)
        return _events(perception, events, stream)

    async def _perceive(self, request: PipelineRequest, audio: bytes | None,
                        image: bytes | None, deadline: float | None) -> dict[str, Any]:
        """Runs the audio and image stages concurrently."""
        if audio is None and image is None and not request.prompt:
            raise InvalidRequest("give at least one of audio, image or prompt")
        stages = {}
        if audio is not None:
            stages["audio"] = self._heard(audio, deadline, "audio")
        if image is not None:
            stages["image"] = self._seen(image, request.labels or DEFAULT_LABELS, deadline,
                                         "image")
        return await gather_perception(stages)

    async def perceive_media(self, media: DecodedMedia, deadline: float | None
                             ) -> dict[tuple[int, int], str]:
        """A chat's image and audio parts (decoded: decode_media), perceived side by side:
        per part (message, part), the text that stands for it in the prompt."""
        async def perceive(part: MediaPart, data: bytes) -> str:
            if part.kind == "image":
                labels, _ = await self._seen(data, DEFAULT_LABELS, deadline, part.param)
                return labels_line(labels)
            transcript, _ = await self._heard(data, deadline, part.param)
            return transcript_line(transcript)

        texts = await asyncio.gather(*(perceive(part, data) for part, data in media))
        return {(part.message, part.part): text for (part, _), text in zip(media, texts)}

    async def _heard(self, audio: bytes, deadline: float | None, param: str
                     ) -> tuple[dict[str, Any], float]:
        reply, seconds = await self._timed("audio", self.audio, "transcribe", (audio, None),
                                           deadline, param)
        return reply.payload(), seconds

    async def _seen(self, image: bytes, labels: list[str], deadline: float | None, param: str
                    ) -> tuple[list[dict[str, Any]], float]:
        reply, seconds = await self._timed("image", self.vision, "classify", (image, labels),
                                           deadline, param)
        return reply.labels, seconds

    async def _timed(self, stage: str, group: ReplicaGroup, method: str, args: tuple,
                     deadline: float | None, param: str) -> tuple[Reply, float]:
        """The stage's reply and its seconds, measured from here."""
        started = time.perf_counter()
        try:
            value = await group.call(method, *args, deadline=deadline, idempotent=True)
        except ServeError as error:
            if error.param in ("file", "image"):  # the replica's name for the upload
                error.param = param
            raise
        return value, _observe(stage, time.perf_counter() - started)

    def _messages(self, request: PipelineRequest, perception: dict[str, Any]) -> list[dict]:
        return pipeline_messages(request.prompt, perception)

    def _params(self, request: PipelineRequest) -> SamplingParams:
        return SamplingParams(max_tokens=request.max_tokens or self.default_max_tokens,
                              temperature=request.temperature, seed=request.seed)


class PipelineEvents:
    """The pipeline stream's events (token_stream.Renderer), with the LLM stage's timings."""

    def __init__(self, timings: dict[str, float], started: float, llm_started: float) -> None:
        self.timings, self.started, self.llm_started = timings, started, llm_started

    def token(self, delta: TokenDelta) -> dict[str, Any]:
        self.timings.setdefault("llm_ttft_s", time.perf_counter() - self.llm_started)
        return {"type": "token", "text": delta.text}

    def end(self, end: StreamEnd) -> dict[str, Any]:
        self.timings["llm_s"] = _observe("llm", time.perf_counter() - self.llm_started)
        self.timings["total_s"] = time.perf_counter() - self.started
        return {"type": "done", "finish_reason": end.finish_reason,
                "usage": {"prompt_tokens": end.prompt_tokens,
                          "completion_tokens": end.completion_tokens},
                "timings": self.timings}

    def error(self, error: ServeError) -> dict[str, Any]:
        return {"type": "error", **error_body(error)["error"]}


async def _events(perception: dict[str, Any], events: PipelineEvents,
                  stream: TokenStream) -> AsyncIterator[dict]:
    yield {"type": "perception", **_public(perception)}
    async for event in stream.relay(events):
        yield event


def decode_media(part: MediaPart) -> bytes:
    if part.kind == "image" and not part.data.startswith("data:"):
        raise InvalidRequest(f"{part.param}: only data: URLs are supported (this server fetches "
                             "no URL); send data:image/png;base64,...", part.param)
    return decode_base64(part.data, part.param)


def _observe(stage: str, seconds: float) -> float:
    metrics.pipeline_stage().observe(seconds, tags={"stage": stage})
    return seconds


def _public(perception: dict[str, Any]) -> dict[str, Any]:
    transcript = perception["transcript"]
    return {"transcript": None if transcript is None else
            {key: transcript[key] for key in ("text", "language", "duration")},
            "labels": perception["labels"]}
