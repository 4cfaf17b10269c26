"""Transcription of real speech (/v1/audio/transcriptions) and the multimodal pipeline
(/v1/pipeline: audio + image + prompt -> streamed answer with per-stage timings)."""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field
from typing import Any

from bench.distributions import Distribution
from bench.images import synthetic_image
from bench.speech import SpeechClip, speech_clips
from bench.workloads.base import PIPELINE, TRANSCRIPTION, RequestSpec, UploadFile


@dataclass
class TranscriptionWorkload:
    model: str = "whisper-base"
    language: str | None = None  # None: the server detects it, as most clients leave it
    clips: list[SpeechClip] = field(default_factory=list, repr=False)
    name: str = "transcription"

    def __post_init__(self) -> None:
        if not self.clips:
            self.clips = speech_clips()

    def next_request(self, rng: random.Random) -> RequestSpec:
        clip = rng.choice(self.clips)
        fields = {"model": self.model, "response_format": "json"}
        if self.language:
            fields["language"] = self.language
        return RequestSpec(self.name, "/v1/audio/transcriptions", TRANSCRIPTION,
                           form_fields=fields,
                           upload=UploadFile("file", "speech.wav", clip.wav, "audio/wav"),
                           reference_text=clip.text, audio_duration_s=clip.duration_s)

    def describe(self) -> dict[str, Any]:
        durations = [c.duration_s for c in self.clips]
        return {"name": self.name, "model": self.model, "language": self.language,
                "clips": len(self.clips), "clip_seconds": [min(durations), max(durations)]}


@dataclass
class PipelineWorkload:
    output_len: Distribution = field(default_factory=lambda: Distribution.parse("32"))
    stream: bool = True
    with_audio: bool = True
    with_image: bool = True
    prompt: str = "Describe what you heard and saw in one sentence."
    seed: int = 0
    clips: list[SpeechClip] = field(default_factory=list, repr=False)
    images: list[str] = field(default_factory=list, repr=False)
    name: str = "pipeline"

    def __post_init__(self) -> None:
        if self.with_audio and not self.clips:
            self.clips = speech_clips()
        if self.with_image and not self.images:
            self.images = [base64.b64encode(synthetic_image(self.seed * 100_003 + i)).decode()
                           for i in range(8)]

    def next_request(self, rng: random.Random) -> RequestSpec:
        body: dict[str, Any] = {"prompt": self.prompt, "stream": self.stream,
                                "max_tokens": self.output_len.sample(rng), "temperature": 0.0,
                                "seed": rng.randrange(2**31)}
        if self.with_audio:
            body["audio"] = base64.b64encode(rng.choice(self.clips).wav).decode()
        if self.with_image:
            body["image"] = rng.choice(self.images)
        # No audio_duration_s: a pipeline's latency includes the LLM, so an RTF would mislead;
        # its audio stage time is in the server's timings instead.
        return RequestSpec(self.name, "/v1/pipeline", PIPELINE, json=body, stream=self.stream)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "stream": self.stream, "output_len": str(self.output_len),
                "audio": self.with_audio, "image": self.with_image, "prompt": self.prompt}
